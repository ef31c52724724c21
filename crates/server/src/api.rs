//! The JSON control API: spaces and tokens, health and metrics.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::{AppState, CreateError};
use crate::auth::{Claims, Role, TokenError, key_matches, random_id};
use crate::error::{ApiError, ApiResult};
use crate::space::Space;

/// Who is calling, from the `Authorization: Bearer …` header.
pub enum Caller {
    Operator,
    Participant(Claims),
}

impl Caller {
    /// Operator, or the host of `space`.
    pub fn may_moderate(&self, space: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Participant(c) => c.space == space && c.role.may_moderate(),
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

/// Authenticate: the operator key or a valid token; 401 otherwise.
pub fn authenticate(app: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    let Some(token) = bearer(headers) else {
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

/// The space `id`, or 404.
pub fn find_space(app: &AppState, id: &str) -> ApiResult<Arc<Space>> {
    app.spaces
        .get(id)
        .ok_or_else(|| ApiError::not_found("space"))
}

/// The caller, if it is the operator or the host of `space`; 401 or 403 otherwise.
fn moderator(app: &AppState, headers: &HeaderMap, space: &str, what: &str) -> ApiResult<Caller> {
    let caller = authenticate(app, headers)?;
    if !caller.may_moderate(space) {
        return Err(ApiError::forbidden(format!(
            "only the operator or this space's host may {what}"
        )));
    }
    Ok(caller)
}

fn require_operator(app: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    match authenticate(app, headers)? {
        Caller::Operator => Ok(()),
        Caller::Participant(_) => Err(ApiError::forbidden("this needs the operator key")),
    }
}

/// `GET /healthz`
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /metrics`
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// Body of `POST /api/spaces`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CreateSpace {
    pub id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub host_name: Option<String>,
}

/// `POST /api/spaces` (operator): create a live space; returns its id and a host token.
pub async fn create_space(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Option<Json<serde_json::Value>>,
) -> ApiResult<Response> {
    require_operator(&app, &headers)?;
    let req: CreateSpace = match body {
        Some(Json(v)) => serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?,
        None => CreateSpace::default(),
    };
    let title = req.title.unwrap_or_else(|| "Untitled space".into());
    let created = app
        .create_space(
            req.id.as_deref(),
            &title,
            req.description.as_deref().unwrap_or(""),
            req.host_name.as_deref().unwrap_or("Host"),
        )
        .map_err(|e| match e {
            CreateError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            CreateError::InvalidId(_) => ApiError::bad_request(e.to_string()),
            CreateError::Io(e) => ApiError::internal(e),
        })?;
    let mut v = serde_json::to_value(created.space.summary("")).map_err(ApiError::internal)?;
    v["host_token"] = json!(created.host_token);
    v["host_sub"] = json!(created.host_sub);
    let location = format!("/api/spaces/{}", created.space.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(v)).into_response())
}

/// `GET /api/spaces`
pub async fn list_spaces(State(app): State<AppState>) -> impl IntoResponse {
    let list: Vec<_> = app.spaces.all().iter().map(|s| s.summary("")).collect();
    Json(json!({ "spaces": list }))
}

/// `GET /api/spaces/{id}`
pub async fn get_space(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    Ok(Json(space.summary("")).into_response())
}

/// Body of `POST /api/spaces/{id}/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    pub role: Role,
    #[serde(default)]
    pub name: Option<String>,
    /// Participant id; a new one is made when absent (one token per participant).
    #[serde(default)]
    pub sub: Option<String>,
}

/// `POST /api/spaces/{id}/tokens` (operator, or the space's host): mint a role token.
/// The host may mint co-host, speaker and listener tokens; only the operator mints hosts.
pub async fn mint_token(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<serde_json::Value>>,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let caller = moderator(&app, &headers, &id, "mint tokens")?;
    let Some(Json(v)) = body else {
        return Err(ApiError::bad_request(
            "send a JSON body: {\"role\": \"speaker\", \"name\": \"…\"}",
        ));
    };
    let req: MintToken = serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    if req.role == Role::Host && !matches!(caller, Caller::Operator) {
        return Err(ApiError::forbidden("only the operator mints host tokens"));
    }
    let sub = req.sub.unwrap_or_else(|| format!("p-{}", random_id(10)));
    if sub.is_empty() || sub.len() > 128 {
        return Err(ApiError::bad_request("sub must be 1-128 characters"));
    }
    let name = req.name.unwrap_or_else(|| sub.clone());
    let (token, exp) = app.mint(&space.id, &sub, &name, req.role);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "sub": sub, "name": name, "role": req.role, "exp": exp, "space": space.id })),
    )
        .into_response())
}

/// `POST /api/spaces/{id}/end` (operator or host): end the space; the recording stays.
pub async fn end_space(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    moderator(&app, &headers, &id, "end it")?;
    space.end();
    tracing::info!(space = %id, "space ended");
    Ok(Json(space.summary("")).into_response())
}
