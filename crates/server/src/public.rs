//! The public face of a space, the same bytes for every listener, so that an HTTP cache can
//! answer a whole audience: `GET /spaces/{id}/snapshot.json`, and the anonymous, sampled count
//! beacon `POST /api/spaces/{id}/beacon` (see [`tribune_room::viewers`]).
//!
//! The snapshot is made at most every [`REFRESH_MS`], whatever the number of requests, and
//! served as one [`Text`] (its gzip encoding compressed once, a strong `ETag` that is a hash
//! of the bytes, so a revalidation is a 304 until something changes). It is
//! `public, max-age=1` while the space can change and `public, max-age=300` once it has ended.
//! [`live_state`] is also what the LL-HLS parts carry in-band ([`crate::hls::meta`]), so a
//! listener's page moves with what it hears without asking anyone.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tribune_room::Lifecycle;
use tribune_room::viewers::BEACON_INTERVAL_S;

use crate::api::find_space;
use crate::app::AppState;
use crate::body::OptJson;
use crate::error::{ApiError, ApiResult};
use crate::hls::Text;
use crate::space::{Space, now_ms};

/// A snapshot older than this is remade by the next request for it.
pub const REFRESH_MS: u64 = 250;
/// How often a page that is not playing (so gets no in-band metadata) polls the snapshot.
pub const POLL_S: u64 = 5;

const LIVE_CACHE: &str = "public, max-age=1";
const ENDED_CACHE: &str = "public, max-age=300";

/// One made snapshot.
pub struct Public {
    text: Text,
    built_ms: u64,
    ended: bool,
}

/// What changes while a space runs, as listeners see it: lifecycle, host, the stage roster
/// with roles and mute state, open invitations (subs only), the listener count, reaction
/// totals and the count beacons' sampling.
pub fn live_state(space: &Space) -> Map<String, Value> {
    let room = space.room_view();
    let listeners = space.listener_count();
    let sample_log2 = space.viewers.lock().sample_log2();
    let mut m = Map::new();
    m.insert("lifecycle".into(), json!(room.lifecycle));
    m.insert("host".into(), json!(room.host));
    m.insert("stage".into(), json!(room.stage));
    m.insert("invited".into(), json!(room.invited));
    m.insert("listeners".into(), json!(listeners));
    m.insert("reactions".into(), json!(space.reactions.totals()));
    m.insert(
        "count".into(),
        json!({ "sample_log2": sample_log2, "interval_s": BEACON_INTERVAL_S }),
    );
    m
}

/// The whole snapshot document.
pub fn snapshot_json(space: &Space) -> Value {
    let id = &space.id;
    let mut m = Map::new();
    m.insert("v".into(), json!(1));
    m.insert("id".into(), json!(id));
    m.insert("title".into(), json!(space.title));
    m.insert("description".into(), json!(space.description));
    m.insert("created_at".into(), json!(space.created_at));
    m.insert("starts_at".into(), json!(space.starts_at));
    m.extend(live_state(space));
    m.insert(
        "urls".into(),
        json!({
            "live": format!("/spaces/{id}/live.opus"),
            "hls": format!("/spaces/{id}/hls/index.m3u8"),
            "recording": format!("/spaces/{id}/recording.opus"),
            "replay": format!("/spaces/{id}/replay"),
            "whip": format!("/api/spaces/{id}/whip"),
            "events": format!("/api/spaces/{id}/events"),
            "beacon": format!("/api/spaces/{id}/beacon"),
            "reactions": format!("/api/spaces/{id}/reactions"),
            "join": format!("/api/spaces/{id}/join"),
        }),
    );
    m.insert("poll_s".into(), json!(POLL_S));
    Value::Object(m)
}

/// The current snapshot of `space`, remade if older than [`REFRESH_MS`] (bytes that did not
/// change keep their compressed copy).
pub fn current(space: &Space) -> Arc<Public> {
    let now = now_ms();
    let mut slot = space.public.lock();
    if let Some(p) = slot.as_ref()
        && now.saturating_sub(p.built_ms) < REFRESH_MS
    {
        return p.clone();
    }
    let body = snapshot_json(space).to_string();
    let ended = space.lifecycle() == Lifecycle::Ended;
    let text = match slot.as_ref() {
        Some(p) if p.text.body == body.as_bytes() => p.text.clone(),
        _ => Text::new(body),
    };
    let p = Arc::new(Public {
        text,
        built_ms: now,
        ended,
    });
    *slot = Some(p.clone());
    p
}

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
    let cache = if p.ended { ENDED_CACHE } else { LIVE_CACHE };
    Ok(crate::hls_http::serve_text(
        &headers,
        &p.text,
        "application/json",
        cache,
        p.built_ms,
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
    if space.lifecycle() == Lifecycle::Ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ended",
            "the space has ended",
        ));
    }
    if space.viewers.lock().beacon(&b.viewer, now_ms()) {
        app.metrics
            .beacons
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
