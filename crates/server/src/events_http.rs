//! `GET /api/spaces/{id}/events`: the space's server-sent events, and the tickets that open it.
//!
//! The credential comes in `Authorization: Bearer` where the client can send headers. A browser's
//! `EventSource` cannot, so it first trades its token for a ticket (`POST …/events/ticket`, with
//! the token in the header) and opens `…/events?ticket=…`: the URL, which proxies log, then holds
//! a credential that opens only this space's event stream, only for a minute
//! ([`crate::auth::TICKET_TTL`]), never the participant's long-lived token. `?token=` is refused.
//! A new subscriber first gets a `snapshot` event (the whole state), or, reconnecting with
//! `Last-Event-ID` (header, or `?last_event_id=`), exactly the events it missed. Frames are the
//! hub's shared bytes; a subscriber that falls too far behind is disconnected.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream;
use serde::Serialize;
use std::time::SystemTime;
use tokio::sync::broadcast::error::RecvError;
use tribune_room::Command;

use crate::api::{Caller, authenticate_token, bearer, check_member, find_space, refused};
use crate::app::AppState;
use crate::auth::{TICKET_TTL, TokenError};
use crate::error::{ApiError, ApiResult};
use tribune_engine::events::{Frame, frame};
use tribune_engine::space::Space;
use tribune_metrics::Metrics;

/// Tells the space and the metrics when a subscriber leaves.
struct Guard {
    space: Arc<Space>,
    sub: Option<String>,
    metrics: Arc<Metrics>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(sub) = &self.sub {
            self.space.stream_closed(sub);
        }
        self.metrics.events_subscribers.fetch_sub(1, Relaxed);
    }
}

/// What a ticket says when it is handed out.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Open the stream with `GET /api/spaces/{id}/events?ticket=…`.
    pub ticket: String,
    /// Seconds the ticket may be used to open the stream (an open stream is not cut).
    pub expires_in: u64,
}

/// `POST /api/spaces/{id}/events/ticket`: a one-minute, one-space ticket for the event stream.
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/events/ticket",
    tag = "events",
    params(("id" = String, Path, description = "Space id")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The ticket", body = Ticket),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Token of another space, or participant removed or banned", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn ticket(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<Ticket>)> {
    let space = find_space(&app, &id)?;
    let caller = authenticate_token(&app, bearer(&headers))?;
    check_member(&caller, &space)?;
    let who = match &caller {
        Caller::Participant(c) => Some(c),
        Caller::Operator => None,
    };
    let ticket = app.keys.mint_ticket(&space.id, who, SystemTime::now());
    Ok((
        StatusCode::CREATED,
        Json(Ticket {
            ticket,
            expires_in: TICKET_TTL.as_secs(),
        }),
    ))
}

/// Who opens the stream: a ticket in the query, or a credential in the header.
pub(crate) fn stream_caller(
    app: &AppState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> ApiResult<Caller> {
    if q.contains_key("token") {
        return Err(ApiError::bad_request(
            "a credential in the URL ends up in logs: send Authorization: Bearer, or get a \
             ticket from POST /api/spaces/{id}/events/ticket and open ?ticket=…",
        ));
    }
    let Some(ticket) = q.get("ticket") else {
        return authenticate_token(app, bearer(headers));
    };
    match app.keys.verify_ticket(ticket, SystemTime::now()) {
        Ok(c) if c.operator => Ok(Caller::Operator),
        Ok(c) => Ok(Caller::Participant(c)),
        Err(TokenError::Expired) => Err(ApiError::unauthorized(
            "ticket expired: get a new one from POST /api/spaces/{id}/events/ticket",
        )),
        Err(TokenError::Invalid(_)) => Err(ApiError::unauthorized("invalid ticket")),
    }
}

/// `GET /api/spaces/{id}/events`
#[utoipa::path(
    get,
    path = "/api/spaces/{id}/events",
    tag = "events",
    params(
        ("id" = String, Path, description = "Space id"),
        ("ticket" = Option<String>, Query, description = "An event-stream ticket from \
            `POST /api/spaces/{id}/events/ticket`, for `EventSource` (or send `Authorization: Bearer`)"),
        ("last_event_id" = Option<u64>, Query, description = "Resume after this event id"),
        ("once" = Option<u8>, Query, description = "`1`: only the snapshot (its id in \
            `Tribune-Event-Id`; `Tribune-Final: 1` once the space has ended), then the body ends"),
        ("last-event-id" = Option<u64>, Header, description = "Resume after this event id"),
    ),
    security(("ticket_query" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Server-sent events: a `snapshot` first (or the events \
            missed since `Last-Event-ID`), then changes; an ended space sends one snapshot",
            body = String, content_type = "text/event-stream"),
        (status = 400, description = "A credential in the query (`?token=`): use a ticket or the header", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, expired or invalid credentials or ticket", body = crate::openapi::ErrorBody),
        (status = 403, description = "Token or ticket of another space, or participant removed or banned", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn events(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let caller = stream_caller(&app, &q, &headers)?;
    check_member(&caller, &space)?;
    space
        .command(&caller.actor(), Command::Subscribe)
        .map_err(refused)?;
    // `once=1`: the snapshot alone, its event id in `Tribune-Event-Id` (and `Tribune-Final` once
    // the space has ended). Another node of the cluster asks this way for each subscriber it
    // serves from this space's log; a client may too (a poll instead of a stream).
    if q.get("once").is_some_and(|v| v == "1") {
        if let Caller::Participant(c) = &caller {
            space.seen(&c.sub, &c.name);
        }
        let at = space.events.last_id();
        let snap = frame(at.unwrap_or(0), "snapshot", &space.snapshot().to_string());
        let mut resp = sse_response(Body::from(snap));
        let h = resp.headers_mut();
        h.insert("tribune-event-id", HeaderValue::from(at.unwrap_or(0)));
        if at.is_none() {
            h.insert("tribune-final", HeaderValue::from_static("1"));
        }
        return Ok(resp);
    }
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("last_event_id").map(String::as_str))
        .and_then(|v| v.trim().parse::<u64>().ok());
    let Some(start) = space.events.subscribe(last_id) else {
        // Ended: one snapshot (with the final state), then the stream ends.
        let snap = space.snapshot();
        let body = frame(0, "snapshot", &snap.to_string());
        return Ok(sse_response(Body::from(body)));
    };
    let sub = match &caller {
        Caller::Participant(c) => {
            space.seen(&c.sub, &c.name);
            space.stream_opened(&c.sub);
            Some(c.sub.clone())
        }
        Caller::Operator => None,
    };
    app.metrics.events_subscribers.fetch_add(1, Relaxed);
    let guard = Guard {
        space: space.clone(),
        sub,
        metrics: app.metrics.clone(),
    };
    let mut first: Vec<Bytes> = Vec::new();
    if start.needs_snapshot {
        first.push(frame(
            start.at_id,
            "snapshot",
            &space.snapshot().to_string(),
        ));
    }
    first.extend(start.backlog.into_iter().map(|f: Frame| f.bytes));
    let state = (first.into_iter(), start.rx, guard, start.at_id);
    let body = stream::unfold(state, |(mut first, mut rx, guard, at)| async move {
        if let Some(b) = first.next() {
            return Some((Ok::<Bytes, Infallible>(b), (first, rx, guard, at)));
        }
        loop {
            match rx.recv().await {
                // Frames published before the snapshot was taken are already in it.
                Ok(f) if f.id != 0 && f.id <= at => continue,
                Ok(f) => return Some((Ok(f.bytes), (first, rx, guard, at))),
                Err(RecvError::Lagged(_)) => {
                    guard.metrics.events_dropped_slow.fetch_add(1, Relaxed);
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(sse_response(Body::from_stream(body)))
}

pub fn sse_response(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    // Tell nginx-style proxies not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}
