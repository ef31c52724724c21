//! `GET /spaces/{id}/hls/…`: the LL-HLS playlists, init section, parts and segments.
//!
//! Cache rules, so an HTTP cache or CDN can serve every listener:
//! - parts, segments and `init.mp4` never change: `public, max-age=31536000, immutable`, with a
//!   strong `ETag` that is a hash of the bytes. Numbering goes on across restarts
//!   ([`tribune_engine::hls`]), so a URL names one object for the life of the space, and an object read
//!   back from disk is served only if its hash is the one the journal recorded;
//! - one object, one URL: numbers in paths are canonical (`seg/1.m4s`, never `seg/01.m4s` or
//!   `seg/+1.m4s`: 404), as are the blocking-reload directives (`_HLS_msn=01`: 400), so an edge
//!   never holds two copies of one object or two answers to one reload;
//! - playlists are sent gzipped to clients that accept it (`Vary: Accept-Encoding`; the gzip
//!   encoding's `ETag` differs from the identity one's, RFC 9110 §8.8.3), compressed once per
//!   playlist version, not per request;
//! - `live.m3u8` without directives changes every part: `max-age=1`; with `_HLS_msn` it is the
//!   answer to that exact query and may be cached as such for a while (`max-age=60`); caches key
//!   on the full URL, query included;
//! - `dvr.m3u8` changes every segment while live, never once ended.
//!
//! A blocking request (`_HLS_msn`/`_HLS_part`, or a part named by the preload hint) is held
//! until what it asks for exists, for at most three target durations, then answered 503.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tribune_media::hls::{Block, Directives};

use crate::api::find_space;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use tribune_engine::gzip::{accepts_gzip, fnv1a};
use tribune_engine::hls::object::{self, Playlist, Stored};
use tribune_engine::hls::{Hls, Lookup, Text};

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
/// Audio-only CMAF (RFC 6381 §3.1, RFC 4337: `audio/mp4` for MP4 files without video).
const MP4: &str = "audio/mp4";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The live rendition, or, for a space restored after a restart, the directory its replay was
/// written to when it ended.
enum Source {
    Live(Arc<Hls>),
    Disk(std::path::PathBuf),
}

fn source(app: &AppState, id: &str) -> ApiResult<Source> {
    let space = find_space(app, id)?;
    Ok(match space.hls() {
        Some(h) => Source::Live(h),
        None => Source::Disk(app.cfg.data_dir.join("hls").join(&space.id)),
    })
}

fn hls_of(app: &AppState, id: &str) -> ApiResult<Arc<Hls>> {
    match source(app, id)? {
        Source::Live(h) => Ok(h),
        Source::Disk(_) => Err(ApiError::not_found("live rendition (the space has ended)")),
    }
}

/// Serve a playlist of an ended space's stored replay.
async fn stored(
    dir: std::path::PathBuf,
    playlist: Playlist,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    // The replay's playlists were written with their gzip encodings (`*.m3u8.gz`).
    crate::file::serve_file(
        req,
        &Stored::Playlist(playlist).path(&dir),
        true,
        "replay file",
        &[
            (header::CONTENT_TYPE, HeaderValue::from_static(PLAYLIST)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ],
    )
    .await
}

/// A media object of an ended space's stored replay (`init.mp4` or a segment), read whole and
/// served like a live one, its `ETag` the hash of what was read.
async fn stored_object(path: std::path::PathBuf, headers: &HeaderMap) -> ApiResult<Response> {
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => Bytes::from(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found("replay file"));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let modified = modified_ms(&path).await;
    let etag = format!("{:016x}", fnv1a(&bytes));
    Ok(serve_bytes(headers, bytes, MP4, IMMUTABLE, &etag, modified))
}

/// A file's modification time in Unix ms (0 if unknown).
async fn modified_ms(path: &std::path::Path) -> u64 {
    tokio::fs::metadata(path)
        .await
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// Serve a playlist in the encoding the client accepts: gzip (made once per playlist version)
/// when it accepts it and it is smaller, else identity; `Vary: Accept-Encoding` either way, and
/// an `ETag` per encoding (RFC 9110 §8.8.3: a strong validator names one representation).
fn serve_playlist(
    headers: &HeaderMap,
    text: &Text,
    cache: &'static str,
    modified_ms: u64,
) -> Response {
    serve_text(headers, text, PLAYLIST, cache, modified_ms)
}

/// Serve a text made once ([`Text`]: a playlist, the public snapshot) in the encoding the
/// client accepts, as [`serve_playlist`] describes.
pub fn serve_text(
    headers: &HeaderMap,
    text: &Text,
    ctype: &'static str,
    cache: &'static str,
    modified_ms: u64,
) -> Response {
    let gz = accepts_gzip(headers)
        .then(|| text.gzip())
        .filter(|gz| gz.len() < text.body.len());
    let mut resp = match gz {
        Some(gz) => {
            let etag = format!("{:016x}-gz", text.hash);
            let mut r = serve_bytes(headers, gz, ctype, cache, &etag, modified_ms);
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        None => {
            let etag = format!("{:016x}", text.hash);
            serve_bytes(headers, text.body.clone(), ctype, cache, &etag, modified_ms)
        }
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    resp
}

/// Serve bytes made once (at `modified_ms`, Unix ms), with a strong `ETag`, `Last-Modified`,
/// conditional requests (`If-None-Match`, else `If-Modified-Since`) and single `Range` support.
pub fn serve_bytes(
    headers: &HeaderMap,
    bytes: Bytes,
    ctype: &'static str,
    cache: &'static str,
    etag: &str,
    modified_ms: u64,
) -> Response {
    let etag = format!("\"{etag}\"");
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_secs(modified_ms / 1000);
    let not_modified_since = headers.get(header::IF_NONE_MATCH).is_none()
        && headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| modified <= since);
    let mut resp = if not_modified_since
        || headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            Some(r) => match parse_range(r, bytes.len() as u64) {
                Some((start, end)) => {
                    let mut resp = (
                        StatusCode::PARTIAL_CONTENT,
                        bytes.slice(start as usize..=end as usize),
                    )
                        .into_response();
                    if let Ok(v) =
                        HeaderValue::from_str(&format!("bytes {start}-{end}/{}", bytes.len()))
                    {
                        resp.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    resp
                }
                None => {
                    let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", bytes.len())) {
                        resp.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    resp
                }
            },
            None => (StatusCode::OK, bytes).into_response(),
        }
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    resp
}

/// One `bytes=` range of a resource of `len` bytes, inclusive; `None` if unsatisfiable or not a
/// single range.
pub fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let suffix: u64 = b.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

/// Wait until `ready()` says yes, the rendition changes enough, or the bound passes.
async fn wait_for(hls: &Hls, mut ready: impl FnMut() -> bool) -> bool {
    let mut rx = hls.watch();
    let deadline = tokio::time::Instant::now() + hls.max_block();
    loop {
        if ready() {
            return true;
        }
        if hls.is_ended() || hls.is_stopped() {
            return ready();
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => return ready(),
        }
    }
}

/// A part or segment name that names nothing: 404, saying what a name looks like.
fn name_error(e: object::NameError) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "not produced in time; retry",
    )
    .with_header(header::RETRY_AFTER, "1")
}

/// `GET /spaces/{id}/hls/index.m3u8`
#[utoipa::path(
    get,
    path = "/spaces/{id}/hls/index.m3u8",
    operation_id = "hls_index",
    tag = "hls",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The multivariant playlist (one Opus variant: live.m3u8)", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 404, description = "No such space, rendition or object", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn index(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let hls = match source(&app, &id)? {
        Source::Live(h) => h,
        Source::Disk(dir) => return stored(dir, Playlist::Index, req).await,
    };
    // A captioned space lists its WebVTT subtitles rendition beside the audio.
    let space = find_space(&app, &id)?;
    let captioned = crate::captions_http::index_text(&space, hls.bandwidth);
    Ok(serve_playlist(
        &headers,
        captioned.as_ref().unwrap_or(&hls.index),
        "public, max-age=60",
        hls.born_ms,
    ))
}

/// `GET /spaces/{id}/hls/init.mp4`
#[utoipa::path(
    get,
    path = "/spaces/{id}/hls/init.mp4",
    operation_id = "hls_init",
    tag = "hls",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The fMP4 initialization section", body = Vec<u8>, content_type = "audio/mp4"),
        (status = 404, description = "No such space, rendition or object", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn init(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let hls = match source(&app, &id)? {
        Source::Live(h) => h,
        Source::Disk(dir) => return stored_object(Stored::Init.path(&dir), &headers).await,
    };
    Ok(serve_bytes(
        &headers,
        hls.init.clone(),
        MP4,
        IMMUTABLE,
        &format!("{:016x}", hls.init_hash),
        hls.born_ms,
    ))
}

/// `GET /spaces/{id}/hls/live.m3u8[?_HLS_msn=&_HLS_part=&_HLS_skip=YES]`
#[utoipa::path(
    get,
    path = "/spaces/{id}/hls/live.m3u8",
    operation_id = "hls_live",
    tag = "hls",
    params(("id" = String, Path, description = "Space id"),
        ("_HLS_msn" = Option<u64>, Query, description = "Block until this segment exists"),
        ("_HLS_part" = Option<u32>, Query, description = "With _HLS_msn: block until this part exists"),
        ("_HLS_skip" = Option<String>, Query, description = "YES or v2: a delta update")),
    responses(
        (status = 200, description = "The LL-HLS media playlist", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 400, description = "Invalid delivery directive, or one too far ahead", body = crate::openapi::ErrorBody),
        (status = 503, description = "Not produced within three target durations", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space, rendition or object", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn live(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let hls = match source(&app, &id)? {
        Source::Live(h) => h,
        Source::Disk(dir) => return stored(dir, Playlist::Live, req).await,
    };
    let d = Directives::parse(q.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let cache = if let Some(msn) = d.msn {
        match hls.block(msn, d.part) {
            Block::TooFar => {
                return Err(ApiError::bad_request(format!(
                    "_HLS_msn={msn} is further ahead than the playlist allows"
                )));
            }
            Block::Ready => {}
            Block::Wait => {
                let ok = wait_for(&hls, || !matches!(hls.block(msn, d.part), Block::Wait)).await;
                if !ok {
                    return Err(unavailable());
                }
            }
        }
        "public, max-age=60"
    } else {
        "public, max-age=1"
    };
    app.metrics.hls_playlists.fetch_add(1, Relaxed);
    if d.msn.is_some() {
        app.metrics.hls_blocking_reloads.fetch_add(1, Relaxed);
    }
    let p = hls.playlists();
    let text = if d.skip { &p.live_skip } else { &p.live };
    Ok(serve_playlist(&headers, text, cache, p.updated_ms))
}

/// `GET /spaces/{id}/hls/dvr.m3u8`: every segment since the start; the replay once ended.
#[utoipa::path(
    get,
    path = "/spaces/{id}/hls/dvr.m3u8",
    operation_id = "hls_dvr",
    tag = "hls",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "Every segment since the start (EVENT; VOD with ENDLIST once ended)", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 404, description = "No such space, rendition or object", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn dvr(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let hls = match source(&app, &id)? {
        Source::Live(h) => h,
        Source::Disk(dir) => return stored(dir, Playlist::Dvr, req).await,
    };
    let p = hls.playlists();
    let cache = if hls.is_ended() {
        "public, max-age=86400"
    } else {
        "public, max-age=1"
    };
    Ok(serve_playlist(&headers, p.dvr.text(), cache, p.updated_ms))
}

/// `GET /spaces/{id}/hls/part/{msn}.{part}.m4s`
#[utoipa::path(
    get,
    path = "/spaces/{id}/hls/part/{name}",
    operation_id = "hls_part",
    tag = "hls",
    params(("id" = String, Path, description = "Space id"),
        ("name" = String, Path, description = "`{msn}.{part}.m4s`")),
    responses(
        (status = 200, description = "A part (one CMAF fragment); a hinted part is held until it exists", body = Vec<u8>, content_type = "audio/mp4"),
        (status = 206, description = "A byte range of it", body = Vec<u8>, content_type = "audio/mp4"),
        (status = 503, description = "Not produced in time", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space, rendition or object", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn part(
    State(app): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let hls = hls_of(&app, &id)?;
    // One object, one URL: `01.2.m4s` or `1.+2.m4s` name nothing.
    let pid = object::part(&name).map_err(name_error)?;
    let mut found = None;
    let ready = wait_for(&hls, || match hls.part(pid) {
        Lookup::Ready(b, t, h) => {
            found = Some((b, t, h));
            true
        }
        Lookup::Wait => false,
        _ => true,
    })
    .await;
    match found {
        Some((b, t, h)) => {
            app.metrics.hls_parts.fetch_add(1, Relaxed);
            Ok(serve_bytes(
                &headers,
                b,
                MP4,
                IMMUTABLE,
                &format!("{h:016x}"),
                t,
            ))
        }
        None if ready => Err(ApiError::not_found("part")),
        None => Err(unavailable()),
    }
}

/// `GET /spaces/{id}/hls/seg/{msn}.m4s`
#[utoipa::path(
    get,
    path = "/spaces/{id}/hls/seg/{name}",
    operation_id = "hls_segment",
    tag = "hls",
    params(("id" = String, Path, description = "Space id"),
        ("name" = String, Path, description = "`{msn}.m4s`")),
    responses(
        (status = 200, description = "A segment (its parts, in order)", body = Vec<u8>, content_type = "audio/mp4"),
        (status = 206, description = "A byte range of it", body = Vec<u8>, content_type = "audio/mp4"),
        (status = 503, description = "Not produced in time", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space, rendition or object", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn segment(
    State(app): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // One object, one URL: `01.m4s` or `+1.m4s` name nothing (and no other file of the
    // directory is reachable through this path: the file is named from the number).
    let msn = object::segment(&name).map_err(name_error)?;
    let hls = match source(&app, &id)? {
        Source::Live(h) => h,
        Source::Disk(dir) => return stored_object(Stored::Segment(msn).path(&dir), &headers).await,
    };
    let mut found = None;
    let ready = wait_for(&hls, || match hls.segment(msn) {
        Lookup::Wait => false,
        other => {
            found = Some(other);
            true
        }
    })
    .await;
    match found {
        Some(Lookup::Ready(b, t, h)) => Ok({
            app.metrics.hls_segments.fetch_add(1, Relaxed);
            serve_bytes(&headers, b, MP4, IMMUTABLE, &format!("{h:016x}"), t)
        }),
        Some(Lookup::Disk(path, hash)) => {
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => Bytes::from(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ApiError::not_found("segment"));
                }
                Err(e) => return Err(ApiError::internal(e)),
            };
            // Only the bytes the journal recorded (and so the ones served before) go out
            // under this URL; a damaged file is a 404, never a second body.
            if fnv1a(&bytes) != hash {
                tracing::error!(path = %path.display(), "HLS segment on disk differs from its journal hash");
                return Err(ApiError::not_found("segment"));
            }
            app.metrics.hls_segments.fetch_add(1, Relaxed);
            let modified = modified_ms(&path).await;
            Ok(serve_bytes(
                &headers,
                bytes,
                MP4,
                IMMUTABLE,
                &format!("{hash:016x}"),
                modified,
            ))
        }
        _ if ready => Err(ApiError::not_found("segment")),
        _ => Err(unavailable()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), Some((0, 3)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-4", 10), Some((6, 9)));
        assert_eq!(parse_range("bytes=8-100", 10), Some((8, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=3-2", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }

    proptest! {
        #[test]
        fn never_out_of_bounds(s in "\\PC{0,40}", len in 0u64..10_000) {
            if let Some((a, b)) = parse_range(&s, len) {
                prop_assert!(a <= b && b < len);
            }
        }
    }
}
