//! The shield's HTTP endpoints: the challenge of a space (public, cacheable) and the operator's
//! status and switch.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{Caller, authenticate, find_space};
use crate::app::AppState;
use crate::body::OptJson;
use crate::config::ShieldMode;
use crate::error::{ApiError, ApiResult};

/// How long an edge or browser may reuse a challenge answer: short next to the 60-second
/// window, long enough that a cache in front of the origin answers a flood of them.
const CHALLENGE_MAX_AGE: HeaderValue = HeaderValue::from_static("public, max-age=5");

/// `200` of `GET /api/spaces/{id}/challenge`.
#[derive(Serialize, ToSchema)]
pub struct ChallengeAnswer {
    #[serde(flatten)]
    pub challenge: super::Challenge,
    /// Whether the shield is on now (new listeners need a ticket).
    pub shield: bool,
}

/// A shield mode as in JSON.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// On above `--shield-joins-per-s`, off after a calm minute.
    Auto,
    /// Always on.
    On,
    /// Never on.
    Off,
}

impl From<ShieldMode> for Mode {
    fn from(m: ShieldMode) -> Mode {
        match m {
            ShieldMode::Auto => Mode::Auto,
            ShieldMode::On => Mode::On,
            ShieldMode::Off => Mode::Off,
        }
    }
}

impl From<Mode> for ShieldMode {
    fn from(m: Mode) -> ShieldMode {
        match m {
            Mode::Auto => ShieldMode::Auto,
            Mode::On => ShieldMode::On,
            Mode::Off => ShieldMode::Off,
        }
    }
}

/// `200` of `GET`/`POST /api/admin/shield`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// The operator's mode.
    pub mode: Mode,
    /// Whether new listeners need a ticket now.
    pub on: bool,
    /// Leading zero bits a ticket needs.
    pub bits: u32,
    /// Join attempts per second that switch an `auto` shield on.
    pub joins_per_s: u32,
    /// Join attempts counted in the current second.
    pub joins_this_s: u64,
    /// Solved tickets remembered against reuse (current and previous window).
    pub tickets_remembered: usize,
}

/// Body of `POST /api/admin/shield`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMode {
    pub mode: Mode,
}

/// `GET /api/spaces/{id}/challenge`: the proof-of-work challenge of a space for the current
/// window (see the shield's module documentation for how to solve it).
#[utoipa::path(
    get,
    path = "/api/spaces/{id}/challenge",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The challenge (the same for every client of the space \
            for a minute; `Cache-Control: public, max-age=5`)", body = ChallengeAnswer),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn challenge(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    find_space(&app, &id)?;
    let now = app.cfg.clock.now_s();
    app.shield.settle(now);
    let answer = ChallengeAnswer {
        challenge: app.shield.challenge(&id, now),
        shield: app.shield.is_on(),
    };
    let mut resp = Json(answer).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, CHALLENGE_MAX_AGE);
    Ok(resp)
}

fn operator(app: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    match authenticate(app, headers)? {
        Caller::Operator => Ok(()),
        Caller::Participant(_) => Err(ApiError::forbidden("the shield needs the operator key")),
    }
}

fn status(app: &AppState) -> Response {
    let now = app.cfg.clock.now_s();
    let s = &app.shield;
    s.settle(now);
    let mut resp = Json(Status {
        mode: s.mode().into(),
        on: s.is_on(),
        bits: s.bits(),
        joins_per_s: app.cfg.shield.joins_per_s,
        joins_this_s: s.joins_in(now),
        tickets_remembered: s.remembered(),
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /api/admin/shield` (operator): the shield's mode and state.
#[utoipa::path(
    get,
    path = "/api/admin/shield",
    tag = "ops",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The shield's state", body = Status),
        (status = 401, description = "Missing or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the operator key", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn get_shield(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    operator(&app, &headers)?;
    Ok(status(&app))
}

/// `POST /api/admin/shield` (operator): set the mode (`on`, `off`, or back to `auto`) at
/// runtime. Listeners already in are untouched either way.
#[utoipa::path(
    post,
    path = "/api/admin/shield",
    tag = "ops",
    security(("bearer" = [])),
    request_body(content = SetMode, content_type = "application/json"),
    responses(
        (status = 200, description = "The shield's new state", body = Status),
        (status = 400, description = "Missing or invalid body", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the operator key", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn set_shield(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: OptJson,
) -> ApiResult<Response> {
    operator(&app, &headers)?;
    let Some(v) = body.0 else {
        return Err(ApiError::bad_request(
            "send {\"mode\": \"on\" | \"off\" | \"auto\"}",
        ));
    };
    let req: SetMode = serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    app.shield.set_mode(req.mode.into());
    Ok(status(&app))
}
