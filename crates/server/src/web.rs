//! The web app, embedded in the binary: the HTML shell for `/`, `/spaces/{id}` and
//! `/spaces/{id}/replay`, and its assets under `/app/{file}`.
//!
//! The sources live in `crates/server/web/` and are served as written (plain ES modules, no
//! build step); the one third-party file, hls.js, is vendored with its licence in `web/vendor/`.
//! Nothing is loaded from elsewhere, so the app works on a closed network.
//!
//! Caching, so that a million page opens are a million edge hits and a handful of origin
//! fetches: every file is served under a versioned path, `/app/{build}/{file}`, where `{build}`
//! ([`build_id`]) is a hash of all the embedded files together, `public, max-age=31536000,
//! immutable`; the modules import each other relatively (`./ui.js`), so a page loads one
//! build's files and an upgrade never mixes old and new modules. The HTML shell names the
//! current build and is `public, max-age=5` (a 404 shell for an unknown space is `no-cache`,
//! so a space created a moment later is not hidden behind a cached 404). The unversioned
//! `/app/{file}` still serves the current files, `no-cache` (revalidated with a strong `ETag`).
//! Each file is gzipped once, on first request, and served compressed to clients that accept it.

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use tribune_engine::gzip::{self, accepts_gzip, fnv1a};

/// The vendored hls.js version (see `web/vendor/README.md`).
pub const HLS_JS_VERSION: &str = "1.7.4";

/// One embedded file.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($name:literal $mime:literal $path:literal,)*) => {
        const ASSETS: &[Asset] = &[$(Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!("../web/", $path)),
        },)*];
    };
}

assets! {
    "index.html" "text/html; charset=utf-8" "index.html",
    "app.css" "text/css; charset=utf-8" "app.css",
    "app.js" "text/javascript; charset=utf-8" "app.js",
    "api.js" "text/javascript; charset=utf-8" "api.js",
    "ui.js" "text/javascript; charset=utf-8" "ui.js",
    "home.js" "text/javascript; charset=utf-8" "home.js",
    "space.js" "text/javascript; charset=utf-8" "space.js",
    "player.js" "text/javascript; charset=utf-8" "player.js",
    "stage.js" "text/javascript; charset=utf-8" "stage.js",
    "host.js" "text/javascript; charset=utf-8" "host.js",
    "view.js" "text/javascript; charset=utf-8" "view.js",
    "moments.js" "text/javascript; charset=utf-8" "moments.js",
    "replay.js" "text/javascript; charset=utf-8" "replay.js",
    "pow.js" "text/javascript; charset=utf-8" "pow.js",
    "public.js" "text/javascript; charset=utf-8" "public.js",
    "icon.svg" "image/svg+xml" "icon.svg",
    "hls.light.min.mjs" "text/javascript; charset=utf-8" "vendor/hls.light.min.mjs",
    "hls.js-LICENSE.txt" "text/plain; charset=utf-8" "vendor/hls.js-LICENSE.txt",
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SHELL_CACHE: &str = "public, max-age=5";

/// The build: 16 hex digits of a hash over every embedded file (name and bytes), so it changes
/// exactly when any file does.
pub fn build_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut all = Vec::new();
        for a in ASSETS {
            all.extend_from_slice(a.name.as_bytes());
            all.push(0);
            all.extend_from_slice(&(a.body.len() as u64).to_le_bytes());
            all.extend_from_slice(a.body);
        }
        format!("{:016x}", fnv1a(&all))
    })
}

/// The bytes served for asset `i`: the HTML shell names the current build's files.
fn body_of(i: usize) -> &'static [u8] {
    static SHELL: OnceLock<Vec<u8>> = OnceLock::new();
    let a = &ASSETS[i];
    if a.name != "index.html" {
        return a.body;
    }
    SHELL.get_or_init(|| {
        String::from_utf8_lossy(a.body)
            .replace("\"/app/", &format!("\"/app/{}/", build_id()))
            .into_bytes()
    })
}

/// Per asset: its gzip encoding and the ETags of both encodings, computed on first use (a
/// strong ETag names one representation, so the two differ: RFC 9110 §8.8.3).
struct Prepared {
    gzip: Vec<u8>,
    etag: String,
    etag_gzip: String,
}

fn prepared(i: usize) -> &'static Prepared {
    static CELLS: OnceLock<Vec<OnceLock<Prepared>>> = OnceLock::new();
    let cells = CELLS.get_or_init(|| ASSETS.iter().map(|_| OnceLock::new()).collect());
    cells[i].get_or_init(|| {
        let body = body_of(i);
        let hash = fnv1a(body);
        Prepared {
            gzip: gzip::compress(body),
            etag: format!("\"{hash:016x}\""),
            etag_gzip: format!("\"{hash:016x}-gz\""),
        }
    })
}

fn serve(i: usize, status: StatusCode, headers: &HeaderMap, cache: &'static str) -> Response {
    let a = &ASSETS[i];
    let p = prepared(i);
    let gz = accepts_gzip(headers) && !p.gzip.is_empty();
    let etag = if gz { &p.etag_gzip } else { &p.etag };
    let mut resp = if status == StatusCode::OK
        && headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gz {
        let mut r = (status, &p.gzip[..]).into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        (status, body_of(i)).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if a.mime.starts_with("text/html") {
        // The page loads only its own scripts and styles, and talks only to its own origin
        // (media: blob: for MSE; data: for an empty text track hls.js creates).
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; media-src 'self' blob: data:; img-src 'self' data:; \
                 worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
                 frame-ancestors 'none'",
            ),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    resp
}

fn index_of(name: &str) -> Option<usize> {
    ASSETS.iter().position(|a| a.name == name)
}

fn shell(status: StatusCode, headers: &HeaderMap) -> Response {
    let cache = if status == StatusCode::OK {
        SHELL_CACHE
    } else {
        "no-cache"
    };
    // index.html is in the table by construction.
    serve(index_of("index.html").unwrap_or(0), status, headers, cache)
}

/// `GET /`: the home page.
#[utoipa::path(
    get,
    path = "/",
    tag = "web",
    responses((status = 200, description = "The web app (home: live, scheduled and ended spaces)",
        content_type = "text/html")),
)]
pub async fn home(headers: HeaderMap) -> Response {
    shell(StatusCode::OK, &headers)
}

/// `GET /spaces/{id}`: a space's page (listen, speak, host). 404 (with the same app, which
/// says so) for an unknown space.
#[utoipa::path(
    get,
    path = "/spaces/{id}",
    tag = "web",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The web app (space page)", content_type = "text/html"),
        (status = 404, description = "No such space (the app shows it)", content_type = "text/html"),
    ),
)]
pub async fn space_page(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let status = if app.spaces.get(&id).is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    shell(status, &headers)
}

/// `GET /spaces/{id}/replay`: a space's replay page (recording and timeline).
#[utoipa::path(
    get,
    path = "/spaces/{id}/replay",
    tag = "web",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The web app (replay page)", content_type = "text/html"),
        (status = 404, description = "No such space (the app shows it)", content_type = "text/html"),
    ),
)]
pub async fn replay_page(
    state: State<AppState>,
    path: Path<String>,
    headers: HeaderMap,
) -> Response {
    space_page(state, path, headers).await
}

/// `GET /app/{file}`: the app's scripts, style sheet and vendored library.
#[utoipa::path(
    get,
    path = "/app/{file}",
    tag = "web",
    params(("file" = String, Path, description = "Asset name, e.g. `app.js`")),
    responses(
        (status = 200, description = "The file (gzip when accepted)"),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 404, description = "No such asset", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match index_of(&file) {
        Some(i) if file != "index.html" => serve(i, StatusCode::OK, &headers, "no-cache"),
        _ => crate::error::ApiError::not_found("asset").into_response(),
    }
}

/// `GET /app/{build}/{file}`: a file of one build, immutable. Only the current build is here:
/// another build's name is a 404 (`no-store`), and the page that asked offers a reload.
#[utoipa::path(
    get,
    path = "/app/{build}/{file}",
    tag = "web",
    params(
        ("build" = String, Path, description = "The build (16 hex digits) the HTML shell names"),
        ("file" = String, Path, description = "Asset name, e.g. `app.js`"),
    ),
    responses(
        (status = 200, description = "The file (gzip when accepted), `public, max-age=31536000, immutable`"),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 404, description = "No such asset, or not this server's build", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn versioned_asset(
    Path((build, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match index_of(&file) {
        Some(i) if file != "index.html" && build == build_id() => {
            serve(i, StatusCode::OK, &headers, IMMUTABLE)
        }
        _ => {
            let mut r = crate::error::ApiError::not_found("asset of this build").into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_present_and_compresses_back() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
            let p = prepared(i);
            let mut d = flate2::read::GzDecoder::new(&p.gzip[..]);
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut d, &mut back).unwrap();
            assert_eq!(back, body_of(i), "{}", a.name);
        }
    }

    #[test]
    fn the_shell_names_this_build_only() {
        let shell = String::from_utf8(body_of(index_of("index.html").unwrap()).to_vec()).unwrap();
        let id = build_id();
        assert_eq!(id.len(), 16);
        for f in ["app.css", "app.js", "icon.svg"] {
            assert!(
                shell.contains(&format!("\"/app/{id}/{f}\"")),
                "{f} in {shell}"
            );
        }
        assert!(
            !shell.contains("\"/app/app"),
            "an unversioned path is left: {shell}"
        );
    }
}
