//! The public face of a space over HTTP, the same bytes for every listener, so that an HTTP
//! cache can answer a whole audience: `GET /spaces/{id}/snapshot.json` (made by
//! [`tribune_engine::public`]), and the anonymous, sampled count beacon
//! `POST /api/spaces/{id}/beacon` (see [`tribune_room::viewers`]).
//!
//! The snapshot is `public, max-age=1` while the space can change and `public, max-age=300` once
//! it has ended; its strong `ETag` is a hash of the bytes, so a revalidation is a 304 until
//! something changes.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tribune_engine::public::{ENDED_CACHE, LIVE_CACHE, current};

use crate::api::find_space;
use crate::app::AppState;
use crate::body::OptJson;
use crate::error::{ApiError, ApiResult};

/// `GET /spaces/{id}/snapshot.json`: the public snapshot of a space.
#[utoipa::path(
    get,
    path = "/spaces/{id}/snapshot.json",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The space as every listener sees it: title, lifecycle, \
            start time, stage roster with roles and mute state, open invitations, listener \
            count, reaction totals, the count beacons' sampling, the URLs. The same bytes for \
            everyone: `public, max-age=1` (300 once ended), strong ETag, gzip when accepted",
            content_type = "application/json"),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn snapshot(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    app.metrics
        .snapshots
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = current(&space);
    let cache = if p.ended() { ENDED_CACHE } else { LIVE_CACHE };
    Ok(crate::hls_http::serve_text(
        &headers,
        p.text(),
        "application/json",
        cache,
        p.built_ms(),
    ))
}

/// Body of `POST /api/spaces/{id}/beacon`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Beacon {
    /// The page's random viewer id: 32 lowercase hex digits.
    pub viewer: String,
}

/// `POST /api/spaces/{id}/beacon`: an anonymous page is listening. Only pages whose viewer id's
/// level is at least the snapshot's `count.sample_log2` send it, every `count.interval_s`.
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/beacon",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    request_body(content = Beacon, content_type = "application/json"),
    responses(
        (status = 204, description = "Received (counted when the id is in the current sample)"),
        (status = 400, description = "Invalid body or viewer id", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
        (status = 409, description = "The space has ended", body = crate::openapi::ErrorBody),
        (status = 429, description = "Shed under load: try at the next interval", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn beacon(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: OptJson,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let b: Beacon = match body.0 {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?,
        None => {
            return Err(ApiError::bad_request(
                "a body {\"viewer\": ...} is required",
            ));
        }
    };
    if tribune_room::viewers::level(&b.viewer).is_none() {
        return Err(ApiError::bad_request(
            "viewer must be 32 lowercase hexadecimal digits",
        ));
    }
    if space.lifecycle() == tribune_room::Lifecycle::Ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ended",
            "the space has ended",
        ));
    }
    if space
        .viewers
        .lock()
        .beacon(&b.viewer, app.cfg.clock.now_ms())
    {
        app.metrics
            .beacons
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Marks a request that came in on the HTTPS listener (`--tls-listen`): the server adds it, a
/// client cannot, so links the server writes (the calendar's) name `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secure;

/// The origin a client reached this server at, for absolute links: `--public-url` in a
/// cluster; else the request's `Host` with `https` when it came in over TLS, or from a trusted
/// proxy that says `X-Forwarded-Proto: https`. A missing or malformed `Host` gives
/// `http://localhost`.
pub fn origin(
    app: &AppState,
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
    secure: bool,
) -> String {
    if let Some(m) = &app.cluster {
        return m.cfg.public_url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let trusted = app
        .cfg
        .trusted_proxies
        .iter()
        .any(|t| t.to_canonical() == peer.ip().to_canonical());
    let forwarded_https = trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let scheme = if secure || forwarded_https {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// `GET /spaces/{id}/calendar.ics`: the space as an iCalendar event (RFC 5545) to add to a
/// calendar: its start (scheduled, or when it went live), its end (when it ended, else an hour
/// later), title, description, link, and a reminder ten minutes before.
#[utoipa::path(
    get,
    path = "/spaces/{id}/calendar.ics",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "A VCALENDAR with one VEVENT; `public, max-age=60`",
            content_type = "text/calendar"),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn calendar(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    secure: Option<axum::Extension<Secure>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let origin = origin(&app, &headers, peer, secure.is_some());
    let url = format!("{origin}/spaces/{}", space.id);
    let domain = origin
        .split_once("://")
        .map_or("localhost", |(_, h)| h)
        .split(':')
        .next()
        .unwrap_or("localhost")
        .to_owned();
    // The planned start while it is to come or on; the real one once it has ended.
    let start = match space.ended_at() {
        Some(_) => space.started_at().or(space.starts_at),
        None => space.starts_at.or(space.started_at()),
    }
    .unwrap_or(space.created_at);
    let end = space
        .ended_at()
        .unwrap_or(start + tribune_engine::calendar::DEFAULT_LENGTH_S);
    let body = tribune_engine::calendar::ics(&tribune_engine::calendar::Event {
        id: &space.id,
        title: &space.title,
        description: &space.description,
        created_at: space.created_at,
        start,
        end,
        url: &url,
        domain: &domain,
    });
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/calendar; charset=utf-8".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.ics\"", space.id),
            ),
            (
                axum::http::header::CACHE_CONTROL,
                "public, max-age=60".to_owned(),
            ),
        ],
        body,
    )
        .into_response())
}
