//! Public audio: `GET /spaces/{id}/live.opus` (the live Ogg/Opus stream, Icecast-style) and
//! `GET /spaces/{id}/recording.opus` (the recording, with Range, during and after the space).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::refusal::IntoHttp as _;
use crate::refusal::{Class, Reason, Refusal};
use tribune_admission::Pass;
use tribune_admission::waiting::Door;
pub use tribune_engine::live::ListenerGuard;
use tribune_engine::live::{LivePage, LiveStream};
use tribune_engine::space::Space;
use tribune_metrics::Metrics;
use tribune_room::Lifecycle;

/// Every live.opus answer closes its connection afterwards: the stream only ends when the space
/// does, and a refused player reconnects later anyway. Both paths (hyper's and the lean one of
/// [`crate::plain`]) say so, so they answer byte for byte the same.
const CLOSE: HeaderValue = HeaderValue::from_static("close");

/// `410 Gone` for an ended space, with a `Link` to its recording (live.opus and WHIP say the
/// same; see [`gone`] for live.opus).
pub fn ended(id: &str) -> ApiError {
    let url = format!("/spaces/{id}/recording.opus");
    ApiError::gone(format!("this space has ended; its recording is at {url}")).with_header(
        header::LINK,
        &format!("<{url}>; rel=\"alternate\"; type=\"audio/ogg\""),
    )
}

/// [`ended`], closing the connection as every live.opus answer does.
pub fn gone(id: &str) -> ApiError {
    ended(id).with_header(header::CONNECTION, "close")
}

/// Whether a new live.opus listener may come in. In order: `404` unknown space, `410` ended;
/// the shield's proof of work when it is on (`403`, see [`crate::shield`]); then this node's
/// listener cap, behind its waiting room ([`crate::waiting`]): past the cap the listener gets
/// `503 waiting_room` with its place in line, a ticket to come back with, a jittered
/// `Retry-After` and a `Link` to the HLS playlist (which edges serve). The caller then subscribes
/// (and answers [`gone`] if the stream closed meanwhile). Refusals are whole responses, so
/// both paths answer the same bytes.
// The refusal is a whole response (both paths write it as is); it is the cold path.
#[allow(clippy::result_large_err)]
pub fn admit(app: &AppState, id: &str, pass: &Pass) -> Result<Arc<Space>, Response> {
    let space = crate::api::find_space(app, id)
        .map_err(|e| e.with_header(header::CONNECTION, "close").into_response())?;
    if space.lifecycle() == Lifecycle::Ended {
        return Err(gone(id).into_response());
    }
    door(app, id, pass, |now| space.turned_away.lock().add(now))?;
    Ok(space)
}

/// This node's door for a live.opus listener of space `id` (owned here or relayed): the shield
/// and the listener cap behind the waiting room, as [`admit`] describes; `on_wait` is told (with
/// the time) of a listener sent to the waiting room. Another node of the cluster relaying the
/// stream (its credential in `Tribune-Node`) passes: it stands for that node's listeners, each
/// of which passed that node's door.
// The refusal is a whole response (both paths write it as is); it is the cold path.
#[allow(clippy::result_large_err)]
pub fn door(
    app: &crate::app::App,
    id: &str,
    pass: &Pass,
    on_wait: impl FnOnce(u64),
) -> Result<(), Response> {
    if let (Some(m), Some(node)) = (&app.cluster, &pass.node)
        && m.is_node_credential(node.as_bytes())
    {
        return Ok(());
    }
    let now = app.cfg.clock.now_s();
    app.shield.note_join(now);
    let close = |r: Refusal| {
        app.metrics.refused(r.reason, Class::Join);
        r.header(header::CONNECTION, "close").into_response()
    };
    // A listener whose waiting-room ticket is being called now showed its proof of work when
    // it got the ticket; anyone else (no ticket, a made-up one, one already used) shows one now.
    let called = pass
        .ticket
        .as_deref()
        .is_some_and(|t| app.waiting.lock().is_called(t, now));
    if !called {
        app.shield
            .check(id, pass.pow.as_deref(), now)
            .map_err(close)?;
    }
    let max = app.cfg.max_listeners;
    let free = max.saturating_sub(app.metrics.listeners.load(Relaxed).max(0) as u64);
    let door = {
        let mut room = app.waiting.lock();
        let door = room.door(now, pass.ticket.as_deref(), free, rand::random::<f64>());
        app.metrics.waiting.store(room.waiting() as i64, Relaxed);
        door
    };
    match door {
        Door::Enter => Ok(()),
        Door::Wait {
            ticket,
            position,
            retry_after_s,
        } => {
            on_wait(now);
            app.metrics.listeners_refused_full.fetch_add(1, Relaxed);
            let hls = format!("/spaces/{id}/hls/index.m3u8");
            Err(close(
                Refusal::new(
                    Reason::WaitingRoom,
                    format!(
                        "this server has its maximum of {max} listeners: you are number \
                         {position} in line; come back in {retry_after_s} s with your ticket \
                         (?ticket=…), or listen over HLS at {hls} now"
                    ),
                )
                .retry_after(retry_after_s)
                .field("position", position)
                .field("ticket", ticket.clone())
                .field("hls", hls.clone())
                .header(HeaderName::from_static("tribune-ticket"), &ticket)
                .header(
                    HeaderName::from_static("tribune-position"),
                    &position.to_string(),
                )
                .header(
                    header::LINK,
                    &format!("<{hls}>; rel=\"alternate\"; type=\"application/vnd.apple.mpegurl\""),
                ),
            ))
        }
    }
}

/// The headers of a live.opus stream (Icecast-style `icy-*` ones included), the same for every
/// listener of a space.
pub fn live_headers(title: &str, description: &str, bitrate: u32) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    let kbps = (bitrate / 1000).to_string();
    let icy = [
        ("icy-name", title.to_owned()),
        ("icy-description", description.to_owned()),
        ("icy-pub", "0".into()),
        ("icy-br", kbps.clone()),
        (
            "ice-audio-info",
            format!("channels=1;samplerate=48000;bitrate={kbps}"),
        ),
    ];
    for (k, v) in icy {
        // Titles with characters a header cannot carry are simply left out.
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    h.insert(header::CONNECTION, CLOSE);
    h
}

/// `GET /spaces/{id}/live.opus`
///
/// This handler serves the stream over HTTPS (HTTP/2 or HTTP/1.1) and to in-process callers; on
/// the plain `--listen` port the lean path of [`crate::plain`] answers the same request with
/// the same bytes, without hyper's per-connection buffers.
#[utoipa::path(
    get,
    path = "/spaces/{id}/live.opus",
    operation_id = "live_stream",
    tag = "audio",
    params(("id" = String, Path, description = "Space id"),
        ("ticket" = Option<String>, Query, description = "A waiting-room ticket"),
        ("pow" = Option<String>, Query, description = "A proof of work, when the shield is on")),
    responses(
        (status = 200, description = "The live mix, an endless Ogg/Opus stream (Icecast-style \
            `icy-*` headers)", body = Vec<u8>, content_type = "audio/ogg"),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
        (status = 410, description = "The space has ended; `Link` names the recording", body = crate::openapi::ErrorBody,
            headers(("link" = String, description = "<recording>; rel=\"alternate\""))),
        (status = 403, description = "The shield is on: bring a proof of work (`pow=` or \
            `Tribune-Pow`; the body's `challenge` says which)", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many joins from this address", body = crate::openapi::ErrorBody,
            headers(("retry-after" = String, description = "Seconds"))),
        (status = 503, description = "This node has its maximum of listeners: the waiting room \
            gives a `position`, a `ticket` to come back with (`ticket=` or `Tribune-Ticket`) and \
            the HLS playlist named by `Link`", body = crate::openapi::ErrorBody,
            headers(("retry-after" = String, description = "Seconds (jittered)"),
                ("tribune-ticket" = String, description = "The ticket"),
                ("tribune-position" = String, description = "Place in line, 1 = next"),
                ("link" = String, description = "<HLS playlist>; rel=\"alternate\""))),
    ),
)]
pub async fn live(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<Response, Response> {
    // A `HEAD` (monitoring, a player probing) learns what a GET would get, but is not a
    // listener: it takes no place, spends no ticket and counts as no join.
    if method == axum::http::Method::HEAD {
        let space = crate::api::find_space(&app, &id).map_err(IntoResponse::into_response)?;
        if space.lifecycle() == Lifecycle::Ended {
            return Err(gone(&id).into_response());
        }
        let mut resp = Response::new(Body::empty());
        *resp.headers_mut() = live_headers(&space.title, &space.description, app.cfg.bitrate);
        return Ok(resp);
    }
    let pass = Pass::from_request(query.as_deref(), &headers);
    let space = admit(&app, &id, &pass)?;
    let body =
        live_body(&space.live, app.metrics.clone()).ok_or_else(|| gone(&id).into_response())?;
    let mut resp = Response::new(body);
    *resp.headers_mut() = live_headers(&space.title, &space.description, app.cfg.bitrate);
    Ok(resp)
}

/// A listener's body of `stream` (on hyper's path): the header pages and the burst, then pages
/// as they come, counted in as a listener while it lasts; `None` once the stream has ended.
pub fn live_body(stream: &Arc<LiveStream>, metrics: Arc<Metrics>) -> Option<Body> {
    let sub = stream.subscribe()?;
    let guard = ListenerGuard::count_in(stream.clone(), metrics);
    // First the headers and the burst, then pages as they come.
    let mut first: Vec<Bytes> = Vec::with_capacity(sub.burst.len() + 1);
    first.push(sub.head);
    first.extend(sub.burst.into_iter().map(|p: LivePage| p.bytes));
    let state = (first.into_iter(), sub.rx, guard);
    let body = stream::unfold(state, |(mut first, mut rx, guard)| async move {
        let bytes = match first.next() {
            Some(b) => b,
            None => match rx.recv().await {
                Ok(p) => p.bytes,
                Err(RecvError::Lagged(_)) => {
                    guard.metrics().listeners_dropped_slow.fetch_add(1, Relaxed);
                    return None;
                }
                Err(RecvError::Closed) => return None,
            },
        };
        guard
            .metrics()
            .listener_bytes_sent
            .fetch_add(bytes.len() as u64, Relaxed);
        Some((Ok::<Bytes, Infallible>(bytes), (first, rx, guard)))
    });
    Some(Body::from_stream(body))
}

/// Longest a request for a just-ended space's recording waits for its last pages.
const RECORDING_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /spaces/{id}/recording.opus` — served from disk with `Range` support.
#[utoipa::path(
    get,
    path = "/spaces/{id}/recording.opus",
    tag = "audio",
    params(
        ("id" = String, Path, description = "Space id"),
        ("range" = Option<String>, Header, description = "Byte range"),
    ),
    responses(
        (status = 200, description = "The recording (still growing while the space is on)",
            body = Vec<u8>, content_type = "audio/ogg"),
        (status = 206, description = "Part of the recording", body = Vec<u8>, content_type = "audio/ogg"),
        (status = 304, description = "Not modified (conditional request)"),
        (status = 404, description = "No such space, or no recording yet", body = crate::openapi::ErrorBody),
        (status = 416, description = "Range not satisfiable"),
        (status = 500, description = "Reading the file failed", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn recording(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let space = crate::api::find_space(&app, &id)?;
    let mut headers = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg")),
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
    ];
    let mut complete = space.lifecycle() == Lifecycle::Ended;
    if complete {
        // Just ended: the recorder writes its last pages after the answer to `/end`; wait for
        // them (bounded), so nobody, an edge least of all, keeps a cut file as the whole.
        let until = tokio::time::Instant::now() + RECORDING_SETTLE;
        while !space.media_stopped() && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        complete = space.media_stopped();
    }
    if !complete {
        // Still growing: caches must not keep a stale length.
        headers.push((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    }
    crate::file::serve_file(req, &space.recording, false, "recording", &headers).await
}
