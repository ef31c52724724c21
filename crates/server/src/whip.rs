//! WHIP ingest (RFC 9725): `POST` an SDP offer to `/api/spaces/{id}/whip`, get `201 Created`,
//! a `Location` for the session and the SDP answer; `DELETE` the session to leave.
//!
//! - ICE-lite on one shared UDP port; the answer carries every candidate (no trickle), in the
//!   audio section; other sections are rejected, and an offer without BUNDLE is accepted
//!   ([`tribune_engine::sdp::bundle`]).
//! - DTLS on OpenSSL, so RSA as well as ECDSA peer certificates work ([`tribune_engine::rtc::dtls`]).
//! - An ended space answers `410 Gone` with a `Link` to its recording, as live.opus does.
//! - A `sendonly` offer (OBS, GStreamer, FFmpeg) gets a `recvonly` answer, as the RFC requires.
//! - **Extension**: a `sendrecv` offer (the browser app, `tribune speak`) gets a `sendrecv`
//!   answer and receives the speaker's mix-minus (everyone on stage but themselves) on the same
//!   connection, so a speaker needs one connection to talk and to hear.
//! - Neither trickle ICE nor ICE restarts are supported, so `PATCH` answers `405` with an `Allow`
//!   header without PATCH. `GET` answers `204` (RFC 9725 §4.1: 2xx, no content).
//! - CORS: preflight `OPTIONS` needs no credentials and answers `Accept-Post: application/sdp`;
//!   `Location` and `ETag` are exposed to scripts.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use str0m::{Candidate, Rtc};
use tokio_util::sync::CancellationToken;

use crate::api::{Caller, authenticate, check_member, refused};
use crate::app::AppState;
use crate::auth::random_id;
use crate::error::{ApiError, ApiResult};
use tribune_engine::mixer::Control;
use tribune_engine::rtc::session::Session;
use tribune_engine::sdp::{Direction, inspect_offer};
use tribune_engine::space::SessionEntry;
use tribune_room::{Command, Lifecycle, Role};

/// Mix-minus frames a session may have waiting (200 ms); more are dropped by the mixer.
const MIX_MINUS_QUEUE: usize = 10;

/// Audio packets str0m holds back to reorder before releasing with a gap; small, because the
/// mixer's jitter buffer reorders too and every held packet is latency.
const STR0M_REORDER: usize = 3;

const ENDPOINT_ALLOW: &str = "OPTIONS, POST, GET, HEAD";
const SESSION_ALLOW: &str = "OPTIONS, DELETE, GET, HEAD";

fn cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, Accept-Post"),
    );
}

fn preflight(allow: &'static str, accept_post: bool) -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    cors(h);
    h.insert(header::ALLOW, HeaderValue::from_static(allow));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(allow),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    if accept_post {
        h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    }
    r
}

/// `OPTIONS` on the endpoint (CORS preflight; no credentials needed).
#[utoipa::path(
    options,
    path = "/api/spaces/{id}/whip",
    operation_id = "whip_options_endpoint",
    tag = "whip",
    params(("id" = String, Path, description = "Space id")),
    responses((status = 200, description = "CORS preflight; `Accept-Post: application/sdp`",
        headers(("allow" = String), ("accept-post" = String), ("access-control-allow-methods" = String)))),
)]
pub async fn options_endpoint() -> Response {
    preflight(ENDPOINT_ALLOW, true)
}

/// `OPTIONS` on a session.
#[utoipa::path(
    options,
    path = "/api/spaces/{id}/whip/{session}",
    operation_id = "whip_options_session",
    tag = "whip",
    params(("id" = String, Path, description = "Space id"), ("session" = String, Path, description = "WHIP session id (from the `Location` of the POST)")),
    responses((status = 200, description = "CORS preflight",
        headers(("allow" = String), ("access-control-allow-methods" = String)))),
)]
pub async fn options_session() -> Response {
    preflight(SESSION_ALLOW, false)
}

/// `GET`/`HEAD` on endpoint or session: 2xx without content (RFC 9725 §4.1).
#[utoipa::path(
    get,
    path = "/api/spaces/{id}/whip",
    operation_id = "whip_get_endpoint",
    tag = "whip",
    params(("id" = String, Path, description = "Space id")),
    responses((status = 204, description = "No content (RFC 9725 §4.1); CORS headers set")),
)]
pub async fn get_empty() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    cors(r.headers_mut());
    r
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("allowed here: {allow}"),
    )
    .with_header(header::ALLOW, allow)
    .into_response();
    cors(r.headers_mut());
    r
}

/// Any other method on the endpoint.
pub async fn endpoint_not_allowed() -> Response {
    not_allowed(ENDPOINT_ALLOW)
}

/// Any other method on a session.
pub async fn session_not_allowed() -> Response {
    not_allowed(SESSION_ALLOW)
}

/// `PATCH` on a session: neither trickle ICE nor ICE restart is supported.
#[utoipa::path(
    patch,
    path = "/api/spaces/{id}/whip/{session}",
    operation_id = "whip_patch",
    tag = "whip",
    params(("id" = String, Path, description = "Space id"), ("session" = String, Path, description = "WHIP session id (from the `Location` of the POST)")),
    responses((status = 405, description = "Trickle ICE and ICE restarts are not supported",
        body = crate::openapi::ErrorBody, headers(("allow" = String, description = "OPTIONS, DELETE, GET, HEAD")))),
)]
pub async fn patch() -> Response {
    not_allowed(SESSION_ALLOW)
}

fn with_cors(r: ApiResult<Response>) -> Response {
    let mut r = match r {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    cors(r.headers_mut());
    r
}

/// `POST /api/spaces/{id}/whip`
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/whip",
    operation_id = "whip_post",
    tag = "whip",
    params(("id" = String, Path, description = "Space id")),
    security(("bearer" = [])),
    request_body(content = String, content_type = "application/sdp",
        description = "The SDP offer: `sendonly` (gets `recvonly`) or `sendrecv` (also receives \
            the mix-minus)"),
    responses(
        (status = 201, description = "The SDP answer", body = String, content_type = "application/sdp",
            headers(
                ("location" = String, description = "The session: /api/spaces/{id}/whip/{session}"),
                ("etag" = String, description = "The ICE username fragment, quoted"),
            )),
        (status = 400, description = "The offer is not UTF-8, malformed or not acceptable", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Operator key, another space's token, removed or banned, or \
            not on stage", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
        (status = 409, description = "The space is not live yet (scheduled) or not now (interrupted)", body = crate::openapi::ErrorBody),
        (status = 410, description = "The space has ended; `Link` names its recording", body = crate::openapi::ErrorBody,
            headers(("link" = String, description = "`</spaces/{id}/recording.opus>; rel=\"alternate\"; type=\"audio/ogg\"`"))),
        (status = 413, description = "The offer is larger than the body limit", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not application/sdp", body = crate::openapi::ErrorBody,
            headers(("accept" = String, description = "application/sdp"))),
        (status = 500, description = "Internal failure", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn post(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    with_cors(post_inner(app, id, headers, body).await)
}

async fn post_inner(
    app: AppState,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let space = crate::api::find_space(&app, &id)?;
    let caller = authenticate(&app, &headers)?;
    let claims = match &caller {
        Caller::Participant(c) => c.clone(),
        Caller::Operator => {
            return Err(ApiError::forbidden(
                "publish with a participant token (the operator key names nobody)",
            ));
        }
    };
    check_member(&caller, &space)?;
    // An ended space is gone for good, and its recording is where to go instead (RFC 9110
    // §15.5.11), as live.opus answers; scheduled or interrupted ones stay 409 (not yet, or not
    // now).
    if space.lifecycle() == Lifecycle::Ended {
        return Err(crate::streams::ended(&id));
    }
    // The participant's current role in the room decides, not the role written in its token:
    // a speaker moved back to the audience cannot publish with its old token.
    space
        .command(&caller.actor(), Command::Publish)
        .map_err(refused)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type must be application/sdp, not {ct:?}"),
        )
        .with_header(header::ACCEPT, "application/sdp"));
    }
    // `body::read_whole` has already read the body whole and refused one over the limit (413).
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the offer: {e}")))?;
    let sdp = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad_request("the SDP offer is not UTF-8"))?;
    let direction = inspect_offer(sdp).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mixer = space.mixer().ok_or_else(|| crate::streams::ended(&id))?;

    let speaker: u64 = rand::random::<u64>() >> 1;
    let creds = str0m::IceCreds::new();
    let now = Instant::now();
    let mut rtc = Rtc::builder()
        .set_crypto_provider(tribune_engine::rtc::dtls::provider())
        .clear_codecs()
        .enable_opus(true, false)
        .set_ice_lite(true)
        .set_local_ice_credentials(creds.clone())
        .set_reordering_size_audio(STR0M_REORDER)
        .build(now);
    for c in &app.candidates {
        match Candidate::host(*c, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => return Err(ApiError::internal(format!("candidate {c}: {e}"))),
        }
    }
    let answer =
        tribune_engine::sdp::bundle::negotiate(&mut rtc, sdp).map_err(ApiError::bad_request)?;

    let session_id = random_id(24);
    let close = CancellationToken::new();
    let inbox = app.mux.register(speaker, &creds.ufrag);
    let (mm_tx, mm_rx) = match direction {
        Direction::SendRecv => {
            let (tx, rx) = tokio::sync::mpsc::channel(MIX_MINUS_QUEUE);
            (Some(tx), Some(rx))
        }
        Direction::SendOnly => (None, None),
    };
    mixer.control(Control::Add {
        id: speaker,
        mix_minus: mm_tx,
    });
    space.add_session(SessionEntry {
        session_id: session_id.clone(),
        sub: claims.sub.clone(),
        name: claims.name.clone(),
        speaker,
        close: close.clone(),
    });
    app.metrics.speakers.fetch_add(1, Relaxed);
    app.metrics.whip_sessions_total.fetch_add(1, Relaxed);
    let space2 = Arc::clone(&space);
    let sid = session_id.clone();
    let sub = claims.sub.clone();
    let session = Session {
        speaker,
        rtc,
        inbox,
        mix_minus: mm_rx,
        close,
        mux: app.mux.clone(),
        mixer,
        metrics: app.metrics.clone(),
        ice_timeout: app.cfg.ice_timeout,
        candidates: app.candidates.clone(),
        on_exit: Box::new(move |_| space2.remove_session(&sid, &sub)),
    };
    app.media.spawn(session.run());
    tracing::info!(space = %id, sub = %claims.sub, session = %session_id, ?direction, "whip session created");

    let location = format!("/api/spaces/{id}/whip/{session_id}");
    let mut resp = (StatusCode::CREATED, answer).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", creds.ufrag)) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `DELETE /api/spaces/{id}/whip/{session}`: by the session's participant, the host, or the
/// operator.
#[utoipa::path(
    delete,
    path = "/api/spaces/{id}/whip/{session}",
    operation_id = "whip_delete",
    tag = "whip",
    params(("id" = String, Path, description = "Space id"), ("session" = String, Path, description = "WHIP session id (from the `Location` of the POST)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session is closed"),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Neither the session's participant, the host, a co-host nor \
            the operator", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space or session", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn delete(
    State(app): State<AppState>,
    Path((id, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_cors(delete_inner(app, id, session, headers))
}

fn delete_inner(
    app: AppState,
    id: String,
    session: String,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = crate::api::find_space(&app, &id)?;
    let caller = authenticate(&app, &headers)?;
    let owner = space
        .session_owner(&session)
        .ok_or_else(|| ApiError::not_found("session"))?;
    let allowed = match &caller {
        Caller::Operator => true,
        Caller::Participant(c) => {
            c.space == id
                && (c.sub == owner
                    || matches!(
                        space.current_role(&c.sub, c.role),
                        Ok(Role::Host | Role::Cohost)
                    ))
        }
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "only the session's owner or the host may end it",
        ));
    }
    space.close_session(&session);
    Ok(StatusCode::OK.into_response())
}
