//! The JSON control API: spaces, tokens, joining, the stage, reactions, health and metrics.
//!
//! Who may do what is decided by the room's one permission table
//! ([`tribune_room::permissions`]); handlers only authenticate, parse and translate refusals
//! into statuses: 403 naming the rule, 409 on an ended space or a full stage, 404 for an unknown
//! target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tribune_room::permissions::{Action, check};
use tribune_room::{Actor, Command, EMOJI, Lifecycle, Refusal, Role};

use crate::app::{AppState, CreateError};
use crate::auth::{Claims, TokenError, key_matches, random_id};
use crate::body::OptJson;
use crate::error::{ApiError, ApiResult};
use crate::refusal::IntoHttp as _;
use tribune_engine::space::Space;

pub use tribune_engine::space::ANON_PREFIX;

mod reactions;
mod spaces;
mod stage;
mod tokens;

pub use reactions::*;
pub use spaces::*;
pub use stage::*;
pub use tokens::*;

/// Longest display name, in characters as people see them (extended grapheme clusters).
pub const MAX_NAME: usize = 64;
/// Longest title, in characters as people see them.
pub const MAX_TITLE: usize = 120;
/// Longest description, in characters as people see them.
pub const MAX_DESCRIPTION: usize = 2000;
/// Bytes per character a text may use on average: a family emoji (seven code points, 25
/// bytes) is one character, but a field cannot grow without bound by stacking marks.
pub const MAX_BYTES_PER_CHAR: usize = 32;

/// Who is calling, from the `Authorization: Bearer …` header (or `?token=`).
pub enum Caller {
    Operator,
    Participant(Claims),
}

impl Caller {
    /// The room's view of the caller.
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Operator => Actor::operator(),
            Caller::Participant(c) => Actor::new(c.sub.clone(), c.name.clone(), c.role),
        }
    }
}

/// The bearer credential of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticate a credential: the operator key or a valid token; 401 otherwise.
pub fn authenticate_token(app: &AppState, token: Option<&str>) -> ApiResult<Caller> {
    let Some(token) = token else {
        return Err(ApiError::unauthorized(
            "missing credentials: send Authorization: Bearer <token>",
        ));
    };
    if key_matches(token, &app.cfg.admin_key) {
        return Ok(Caller::Operator);
    }
    match app.keys.verify(token, SystemTime::now()) {
        Ok(c) => Ok(Caller::Participant(c)),
        Err(TokenError::Expired) => Err(ApiError::unauthorized("token expired")),
        Err(TokenError::Invalid(_)) => Err(ApiError::unauthorized("invalid token")),
    }
}

/// Authenticate from the `Authorization` header.
pub fn authenticate(app: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    authenticate_token(app, bearer(headers))
}

/// Authenticate for a space: the operator, or a participant of this space who has not been
/// removed or banned (403 otherwise).
pub fn caller_in(app: &AppState, headers: &HeaderMap, space: &Space) -> ApiResult<Caller> {
    let caller = authenticate(app, headers)?;
    check_member(&caller, space)?;
    Ok(caller)
}

/// A participant's token must be for this space, and the participant still welcome.
pub fn check_member(caller: &Caller, space: &Space) -> ApiResult<()> {
    if let Caller::Participant(c) = caller {
        if c.space != space.id {
            return Err(ApiError::forbidden("this token is for another space"));
        }
        space.current_role(&c.sub, c.role).map_err(refused)?;
    }
    Ok(())
}

/// A room refusal as an HTTP error.
pub fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Forbidden { rule, reason } => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("refused by rule {rule}: {reason}"),
        ),
        Refusal::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        Refusal::NotFound(m) => ApiError::not_found(&m),
        Refusal::Gone(m) => ApiError::forbidden(format!("participant {m}")),
    }
}

/// The space `id`, or 404.
pub fn find_space(app: &AppState, id: &str) -> ApiResult<Arc<Space>> {
    app.spaces
        .get(id)
        .ok_or_else(|| ApiError::not_found("space"))
}

/// Validate user text: trimmed, at most `max` characters as people see them (extended
/// grapheme clusters, UAX #29, so 20 family emoji are 20) and `max` × [`MAX_BYTES_PER_CHAR`]
/// bytes, no control characters.
pub fn clean_text(field: &str, s: &str, max: usize) -> ApiResult<String> {
    use unicode_segmentation::UnicodeSegmentation as _;
    let s = s.trim();
    if s.len() > max * MAX_BYTES_PER_CHAR || s.graphemes(true).count() > max {
        return Err(ApiError::bad_request(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\n')
        || (field != "description" && s.contains('\n'))
    {
        return Err(ApiError::bad_request(format!(
            "{field} contains control characters"
        )));
    }
    Ok(s.to_owned())
}

/// `GET /healthz`
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses((status = 200, description = "The server is up", body = crate::openapi::Health)),
)]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /metrics`: free on the control listener (`--control-listen`, off the public network),
/// and for the operator key only on the audience listeners, where anyone can reach it: the
/// counters tell an attacker which of their floods hurt.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus metrics", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "On an audience listener, without the operator key", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn metrics(
    State(app): State<AppState>,
    control: Option<axum::Extension<crate::app::ControlListener>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if control.is_none() && !bearer(&headers).is_some_and(|t| key_matches(t, &app.cfg.admin_key)) {
        return Err(ApiError::unauthorized(
            "/metrics needs the operator key here: send Authorization: Bearer <admin key>, \
             or scrape the control listener (--control-listen), where it is free",
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response())
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned + Default>(body: OptJson) -> ApiResult<T> {
    match body.0 {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}"))),
        None => Ok(T::default()),
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn limits_count_what_people_see() {
        let family = "👨‍👩‍👧‍👦";
        assert_eq!(family.chars().count(), 7);
        let title = family.repeat(20);
        assert_eq!(clean_text("title", &title, MAX_TITLE).ok(), Some(title));
        let long = "é".repeat(MAX_TITLE + 1);
        let e = clean_text("title", &long, MAX_TITLE).unwrap_err();
        assert!(
            e.message.contains("longer than 120 characters"),
            "{}",
            e.message
        );
        // "e" with 200 combining marks is one grapheme, but not a free pass for bytes.
        let stacked = format!("e{}", "\u{301}".repeat(2000));
        assert!(clean_text("name", &stacked, MAX_NAME).is_err());
        assert!(clean_text("name", "a\u{7}b", MAX_NAME).is_err());
        assert_eq!(
            clean_text("name", "  Ana  ", MAX_NAME).ok().as_deref(),
            Some("Ana")
        );
    }
}
