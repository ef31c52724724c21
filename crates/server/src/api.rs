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
use crate::client_addr::client_ip;
use crate::error::{ApiError, ApiResult};
use crate::space::{Space, now_ms, unix_now};

/// Participant ids of anonymous joiners start with this (address bans apply only to them).
pub const ANON_PREFIX: &str = "anon-";

/// Longest display name, in characters.
pub const MAX_NAME: usize = 64;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 120;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2000;

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

/// Validate user text: trimmed, at most `max` characters, no control characters.
pub fn clean_text(field: &str, s: &str, max: usize) -> ApiResult<String> {
    let s = s.trim();
    if s.chars().count() > max {
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

/// `GET /metrics`
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus metrics", body = String,
        content_type = "text/plain; version=0.0.4")),
)]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// Body of `POST /api/spaces`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CreateSpace {
    pub id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub host_name: Option<String>,
    /// Scheduled start, Unix seconds: the space is `scheduled` until its host starts it.
    pub starts_at: Option<u64>,
}

fn json_body<T: serde::de::DeserializeOwned + Default>(body: OptJson) -> ApiResult<T> {
    match body.0 {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}"))),
        None => Ok(T::default()),
    }
}

/// `POST /api/spaces` (operator): create a live or scheduled space; returns its id and a host
/// token.
#[utoipa::path(
    post,
    path = "/api/spaces",
    tag = "spaces",
    security(("bearer" = [])),
    request_body(content = Option<CreateSpace>, content_type = "application/json",
        description = "Optional: without a body the space is live, untitled, with a random id"),
    responses(
        (status = 201, description = "Created; `Location` names the space", body = crate::openapi::CreatedSpace,
            headers(("location" = String, description = "/api/spaces/{id}"))),
        (status = 400, description = "Invalid body, text or id", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the operator key", body = crate::openapi::ErrorBody),
        (status = 409, description = "A space with this id exists", body = crate::openapi::ErrorBody),
        (status = 500, description = "Starting the space failed", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn create_space(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: OptJson,
) -> ApiResult<Response> {
    if !matches!(authenticate(&app, &headers)?, Caller::Operator) {
        return Err(ApiError::forbidden(
            "creating a space needs the operator key",
        ));
    }
    let req: CreateSpace = json_body(body)?;
    let title = clean_text(
        "title",
        req.title.as_deref().unwrap_or("Untitled space"),
        MAX_TITLE,
    )?;
    let description = clean_text(
        "description",
        req.description.as_deref().unwrap_or(""),
        MAX_DESCRIPTION,
    )?;
    let host_name = clean_text(
        "host_name",
        req.host_name.as_deref().unwrap_or("Host"),
        MAX_NAME,
    )?;
    let created = app
        .create_space(
            req.id.as_deref(),
            &title,
            &description,
            &host_name,
            req.starts_at,
        )
        .map_err(|e| match e {
            CreateError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            CreateError::InvalidId(_) => ApiError::bad_request(e.to_string()),
            CreateError::Io(e) => ApiError::internal(e),
        })?;
    let mut v = serde_json::to_value(created.space.summary()).map_err(ApiError::internal)?;
    v["host_token"] = json!(created.host_token);
    v["host_sub"] = json!(created.host_sub);
    let location = format!("/api/spaces/{}", created.space.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(v)).into_response())
}

/// `GET /api/spaces`
#[utoipa::path(
    get,
    path = "/api/spaces",
    tag = "spaces",
    responses((status = 200, description = "Every space", body = crate::openapi::SpaceList)),
)]
pub async fn list_spaces(State(app): State<AppState>) -> impl IntoResponse {
    let list: Vec<_> = app.spaces.all().iter().map(|s| s.summary()).collect();
    Json(json!({ "spaces": list }))
}

/// `GET /api/spaces/{id}`
#[utoipa::path(
    get,
    path = "/api/spaces/{id}",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The space", body = crate::space::Summary),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn get_space(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(find_space(&app, &id)?.summary()).into_response())
}

/// `GET /api/spaces/{id}/timeline`: who spoke when (milliseconds into the recording).
#[utoipa::path(
    get,
    path = "/api/spaces/{id}/timeline",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "Who spoke when", body = crate::openapi::Timeline),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
        (status = 500, description = "Reading the timeline failed", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn timeline(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let mut rows = {
        let store = app.store.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || store.timeline(&id))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?
    };
    rows.extend(space.timeline_now());
    rows.sort_by_key(|r| r.start_ms);
    rows.dedup_by(|a, b| a.sub == b.sub && a.start_ms == b.start_ms);
    Ok(Json(json!({ "space": id, "segments": rows })).into_response())
}

/// Body of `POST /api/spaces/{id}/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    #[schema(value_type = crate::openapi::RoleName)]
    pub role: Role,
    #[serde(default)]
    pub name: Option<String>,
    /// Participant id; a new one is made when absent (one token per participant).
    #[serde(default)]
    pub sub: Option<String>,
}

/// `POST /api/spaces/{id}/tokens`: mint a role token (the permission table says who may mint
/// which role: the operator any, the host co-host/speaker/listener).
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/tokens",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    security(("bearer" = [])),
    request_body(content = MintToken, content_type = "application/json"),
    responses(
        (status = 201, description = "The token", body = crate::openapi::Token),
        (status = 400, description = "Missing or invalid body, sub or name", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Token of another space, participant removed or banned, or \
            the permission table refuses this role", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn mint_token(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: OptJson,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let caller = caller_in(&app, &headers, &space)?;
    let Some(v) = body.0 else {
        return Err(ApiError::bad_request(
            "send a JSON body: {\"role\": \"speaker\", \"name\": \"…\"}",
        ));
    };
    let req: MintToken = serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    let (role, operator) = match &caller {
        Caller::Operator => (Role::Host, true),
        Caller::Participant(c) => (space.current_role(&c.sub, c.role).map_err(refused)?, false),
    };
    check(Action::MintToken(req.role), role, operator).map_err(refused)?;
    let sub = req.sub.unwrap_or_else(|| format!("p-{}", random_id(10)));
    if sub.is_empty() || sub.len() > 128 || sub.starts_with(ANON_PREFIX) {
        return Err(ApiError::bad_request(format!(
            "sub must be 1-128 characters and not start with {ANON_PREFIX}"
        )));
    }
    let sub = clean_text("sub", &sub, 128)?;
    let name = clean_text("name", req.name.as_deref().unwrap_or(&sub), MAX_NAME)?;
    let (token, exp) = app.mint(&space.id, &sub, &name, req.role);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "sub": sub, "name": name, "role": req.role, "exp": exp, "space": space.id })),
    )
        .into_response())
}

/// Body of `POST /api/spaces/{id}/join`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Join {
    pub name: Option<String>,
}

/// `POST /api/spaces/{id}/join`: a short-lived listener token. With a valid token of this space
/// in `Authorization`, the same participant's token is renewed (with a new display name if the
/// body has one). Writes nothing to the database.
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/join",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    security((), ("bearer" = [])),
    request_body(content = Option<Join>, content_type = "application/json",
        description = "Optional. `name`: the display name (when renewing: a new name for the \
            same participant)"),
    responses(
        (status = 200, description = "A listener token (renewed for the same participant when \
            a token of this space was sent)", body = crate::openapi::Joined),
        (status = 400, description = "Invalid body or name, or the operator key was sent", body = crate::openapi::ErrorBody),
        (status = 401, description = "Expired or invalid token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Token of another space, or participant removed or banned; \
            or, for a new listener while the shield is on, `proof_of_work_required`, \
            `proof_of_work_invalid` or `proof_of_work_reused` with a `challenge` to solve (send \
            the ticket as `Tribune-Pow`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
        (status = 409, description = "The space has ended", body = crate::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`: too many joins from this address; \
            `Retry-After` says when to try again", body = crate::openapi::ErrorBody,
            headers(("retry-after" = String, description = "Seconds"))),
        (status = 503, description = "`overloaded`: the server is at its share for joins; \
            `Retry-After` says when to try again", body = crate::openapi::ErrorBody,
            headers(("retry-after" = String, description = "Seconds"))),
    ),
)]
pub async fn join(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: OptJson,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    if space.lifecycle() == Lifecycle::Ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("this space has ended; its recording is at /spaces/{id}/recording.opus"),
        ));
    }
    let req: Join = json_body(body)?;
    let (sub, name) = match bearer(&headers) {
        Some(tok) => match authenticate_token(&app, Some(tok))? {
            Caller::Participant(c) if c.space == id => {
                space.current_role(&c.sub, c.role).map_err(refused)?;
                // Renewing may change the display name (same participant).
                let name = match req.name.as_deref() {
                    Some(n) => match clean_text("name", n, MAX_NAME)? {
                        n if n.is_empty() => c.name,
                        n => n,
                    },
                    None => c.name,
                };
                (c.sub, name)
            }
            Caller::Participant(_) => {
                return Err(ApiError::forbidden("this token is for another space"));
            }
            Caller::Operator => {
                return Err(ApiError::bad_request(
                    "the operator does not join; mint a token instead",
                ));
            }
        },
        None => {
            if space.is_addr_banned(client_ip(&app.cfg.trusted_proxies, addr, &headers)) {
                return Err(ApiError::forbidden("participant banned"));
            }
            // A new listener: the shield may ask for proof of work (renewals never do, so
            // those already in are untouched).
            let now = crate::admission::now_s();
            app.shield.note_join(now);
            let pass = crate::admission::Pass::from_request(None, &headers);
            if let Err(r) = app.shield.check(&id, pass.pow.as_deref(), now) {
                app.metrics.refused(r.reason, crate::refusal::Class::Join);
                return Ok(r.into_response());
            }
            let name = clean_text("name", req.name.as_deref().unwrap_or("Listener"), MAX_NAME)?;
            let name = if name.is_empty() {
                "Listener".to_owned()
            } else {
                name
            };
            (format!("{ANON_PREFIX}{}", random_id(12)), name)
        }
    };
    if sub.starts_with(ANON_PREFIX) {
        space.note_addr(&sub, client_ip(&app.cfg.trusted_proxies, addr, &headers));
    }
    space.seen(&sub, &name);
    app.metrics.joins.fetch_add(1, Relaxed);
    let (token, claims) = app.keys.mint(
        &id,
        &sub,
        &name,
        Role::Listener,
        app.cfg.join_ttl,
        SystemTime::now(),
    );
    Ok(Json(json!({
        "token": token, "sub": sub, "name": name, "role": "listener", "exp": claims.exp, "space": id,
        "renew_after": unix_now() + app.cfg.join_ttl.as_secs() / 2,
        "live_url": format!("/spaces/{id}/live.opus"),
        "events_url": format!("/api/spaces/{id}/events"),
    }))
    .into_response())
}

/// `POST /api/spaces/{id}/presence`: a light beacon that keeps a listener counted (listeners
/// behind edges never connect to this node otherwise).
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/presence",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Counted as present"),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Token of another space, or participant removed or banned", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn presence(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    app.metrics.presence.fetch_add(1, Relaxed);
    if let Caller::Participant(c) = caller_in(&app, &headers, &space)? {
        space.seen(&c.sub, &c.name);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of stage actions that name a participant.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Target {
    pub sub: Option<String>,
}

/// `POST /api/spaces/{id}/{start|resume|end}`: lifecycle (host or operator).
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/{verb}",
    tag = "spaces",
    params(
        ("id" = String, Path, description = "Space id"),
        ("verb" = crate::openapi::LifecycleVerb, Path, description = "What to do"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The space after the change", body = crate::space::Summary),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the host or the operator (or removed, banned, another \
            space's token)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space, or unknown verb", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not possible in the space's state (e.g. it has ended)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn lifecycle(
    State(app): State<AppState>,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let caller = caller_in(&app, &headers, &space)?;
    let cmd = match verb.as_str() {
        "start" => Command::Start,
        "resume" => Command::Resume,
        "end" => Command::End,
        _ => return Err(ApiError::not_found("action")),
    };
    space.command(&caller.actor(), cmd).map_err(refused)?;
    tracing::info!(space = %id, verb, "lifecycle");
    Ok(Json(space.summary()).into_response())
}

/// `POST /api/spaces/{id}/stage/{action}`: the stage and moderation.
///
/// | action | body | who (see the permission table) |
/// |---|---|---|
/// | `raise-hand`, `lower-hand` | – | a listener |
/// | `approve`, `decline`, `invite` | `{"sub"}` | host, co-host |
/// | `accept`, `decline-invite` | – | the invited listener |
/// | `token` | – | an approved participant: returns its speaker token |
/// | `mute`, `unmute` | `{"sub"}` or none (self) | host/co-host for others; speakers for themselves |
/// | `audience`, `remove`, `ban` | `{"sub"}` | host, co-host |
/// | `cohost`, `uncohost` | `{"sub"}` | host |
/// | `takeover` | – | a co-host, once the host is gone |
/// | `leave` | – | a speaker or co-host steps down to the audience |
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/stage/{action}",
    tag = "stage",
    params(
        ("id" = String, Path, description = "Space id"),
        ("action" = crate::openapi::StageAction, Path, description = "See the table above"),
    ),
    security(("bearer" = [])),
    request_body(content = Option<Target>, content_type = "application/json",
        description = "`{\"sub\"}` for actions on another participant; optional otherwise"),
    responses(
        (status = 201, description = "`token`: the caller's speaker token", body = crate::openapi::StageToken),
        (status = 204, description = "Done"),
        (status = 400, description = "Invalid body, or the action needs a `sub`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Refused by the permission table (or removed, banned, \
            another space's token)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space, unknown action, or the target is not \
            where the action needs it", body = crate::openapi::ErrorBody),
        (status = 409, description = "The space has ended, or the stage is full", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn stage(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: OptJson,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let caller = caller_in(&app, &headers, &space)?;
    let actor = caller.actor();
    let t: Target = json_body(body)?;
    let target = || {
        t.sub
            .clone()
            .ok_or_else(|| ApiError::bad_request("this action needs {\"sub\": <participant id>}"))
    };
    let self_or = |t: &Option<String>| t.as_deref().is_none_or(|s| s == actor.sub);
    let cmd = match action.as_str() {
        "raise-hand" => Command::RaiseHand,
        "lower-hand" => Command::LowerHand,
        "approve" => Command::Approve { target: target()? },
        "decline" => Command::Decline { target: target()? },
        "invite" => Command::Invite { target: target()? },
        "accept" => Command::AcceptInvite,
        "decline-invite" => Command::DeclineInvite,
        "token" => Command::StageToken,
        "mute" if self_or(&t.sub) => Command::MuteSelf,
        "unmute" if self_or(&t.sub) => Command::UnmuteSelf,
        "mute" => Command::Mute { target: target()? },
        "unmute" => Command::Unmute { target: target()? },
        "audience" => Command::MoveToAudience { target: target()? },
        "remove" => Command::Remove { target: target()? },
        "ban" => Command::Ban { target: target()? },
        "cohost" => Command::NameCohost { target: target()? },
        "uncohost" => Command::RevokeCohost { target: target()? },
        "takeover" => Command::TakeOverHost,
        "leave" => Command::LeaveStage,
        _ => return Err(ApiError::not_found("stage action")),
    };
    if actor.sub.starts_with(ANON_PREFIX) {
        space.note_addr(
            &actor.sub,
            client_ip(&app.cfg.trusted_proxies, addr, &headers),
        );
    }
    let wants_token = matches!(cmd, Command::StageToken);
    space.command(&actor, cmd).map_err(refused)?;
    if caller_is_participant(&caller) {
        space.seen(&actor.sub, &actor.name);
    }
    if wants_token {
        let role = space
            .current_role(&actor.sub, actor.token_role)
            .map_err(refused)?;
        let (token, exp) = app.mint(&id, &actor.sub, &actor.name, role);
        return Ok((
            StatusCode::CREATED,
            Json(json!({ "token": token, "sub": actor.sub, "name": actor.name, "role": role, "exp": exp,
                "whip_url": format!("/api/spaces/{id}/whip") })),
        )
            .into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn caller_is_participant(c: &Caller) -> bool {
    matches!(c, Caller::Participant(_))
}

/// `GET /api/spaces/{id}/audience` (host, co-host, operator): the recently active participants
/// not on stage, newest first, to invite on stage. The server remembers the last
/// [`crate::space::AUDIENCE_REMEMBERED`] who joined, sent a beacon, opened the event stream,
/// raised a hand or reacted; it does not list a whole audience.
#[utoipa::path(
    get,
    path = "/api/spaces/{id}/audience",
    tag = "stage",
    params(
        ("id" = String, Path, description = "Space id"),
        ("limit" = Option<usize>, Query, description = "At most this many (default and maximum 100)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recently active participants", body = crate::openapi::AudienceList),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the host, a co-host or the operator", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn audience(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let caller = caller_in(&app, &headers, &space)?;
    space
        .command(&caller.actor(), Command::ListAudience)
        .map_err(refused)?;
    let limit = q
        .get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100)
        .min(100);
    let list: Vec<_> = space
        .recent_audience(limit)
        .into_iter()
        .map(|m| json!({ "sub": m.sub, "name": m.name, "seen_ms": m.seen_ms }))
        .collect();
    Ok(Json(json!({ "audience": list })).into_response())
}

/// Body of `POST /api/spaces/{id}/reactions`: one reaction (`emoji`) or a batch (`counts`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct React {
    /// One reaction.
    pub emoji: Option<String>,
    /// Several, per emoji (what a page gathered over a couple of seconds): at most
    /// [`MAX_REACTION_BATCH`] in all.
    pub counts: Option<std::collections::BTreeMap<String, u64>>,
}

/// Most reactions one request may carry (two seconds at the per-participant rate).
pub const MAX_REACTION_BATCH: u64 = 10;

/// The reactions a request carries, as `(index in EMOJI, n)`, or why not.
fn reaction_batch(req: React) -> ApiResult<Vec<(usize, u64)>> {
    let unknown =
        || ApiError::bad_request(format!("unknown emoji; use one of {}", EMOJI.join(" ")));
    let batch: Vec<(usize, u64)> = match (req.emoji, req.counts) {
        (Some(e), None) => vec![(tribune_room::reactions::index(&e).ok_or_else(unknown)?, 1)],
        (None, Some(counts)) => {
            let mut out: Vec<(usize, u64)> = Vec::with_capacity(counts.len());
            for (e, n) in counts {
                let i = tribune_room::reactions::index(&e).ok_or_else(unknown)?;
                if n == 0 {
                    return Err(ApiError::bad_request("a count must be at least 1"));
                }
                // `❤` and `❤️` are one emoji.
                match out.iter_mut().find(|(j, _)| *j == i) {
                    Some((_, m)) => *m = m.saturating_add(n),
                    None => out.push((i, n)),
                }
            }
            out
        }
        _ => {
            return Err(ApiError::bad_request(
                "send either {\"emoji\": E} or {\"counts\": {E: n, ...}}",
            ));
        }
    };
    let total = batch.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
    if total == 0 || total > MAX_REACTION_BATCH {
        return Err(ApiError::bad_request(format!(
            "a request carries 1 to {MAX_REACTION_BATCH} reactions"
        )));
    }
    Ok(batch)
}

/// `POST /api/spaces/{id}/reactions`: one reaction or a batch; each added in O(1) (an atomic
/// per emoji) to the counts the event stream, the public snapshot and the in-band metadata
/// carry. Shed with 429 and `Retry-After` beyond a participant's 5 per second (bursts of 10) or
/// the node's budget of reaction requests.
#[utoipa::path(
    post,
    path = "/api/spaces/{id}/reactions",
    tag = "stage",
    params(("id" = String, Path, description = "Space id")),
    security(("bearer" = [])),
    request_body(content = React, content_type = "application/json"),
    responses(
        (status = 204, description = "Counted"),
        (status = 400, description = "Invalid body, unknown emoji, or more than 10 reactions", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Refused (or removed, banned, another space's token)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such space", body = crate::openapi::ErrorBody),
        (status = 409, description = "The space has ended", body = crate::openapi::ErrorBody),
        (status = 429, description = "More than 5 reactions per second from this participant \
            (`rate_limited`), or more reaction requests than this node takes (`busy`)",
            body = crate::openapi::ErrorBody,
            headers(("retry-after" = String, description = "Seconds"))),
    ),
)]
pub async fn react(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: OptJson,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let batch = reaction_batch(json_body(body)?)?;
    let total: u64 = batch.iter().map(|(_, n)| n).sum();
    // The node's budget first: a storm is turned away before any signature is checked.
    if app.reaction_budget.check().is_err() {
        app.metrics.reactions_shed.fetch_add(1, Relaxed);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "too many reactions on this server right now: try again in a few seconds",
        )
        .with_header(header::RETRY_AFTER, "3"));
    }
    let caller = caller_in(&app, &headers, &space)?;
    let actor = caller.actor();
    let n = std::num::NonZeroU32::new(total as u32).unwrap_or(std::num::NonZeroU32::MIN);
    if !matches!(app.reaction_limiter.check_key_n(&actor.sub, n), Ok(Ok(()))) {
        app.metrics.reactions_shed.fetch_add(1, Relaxed);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many reactions: at most 5 per second",
        )
        .with_header(header::RETRY_AFTER, "2"));
    }
    if app.reaction_limiter.len() > 100_000 {
        app.reaction_limiter.retain_recent();
    }
    space.command(&actor, Command::React).map_err(refused)?;
    // In the host's audience list (to invite), not in the count: a page counts itself with
    // its anonymous beacon.
    space
        .audience
        .lock()
        .seen(&actor.sub, &actor.name, now_ms());
    for (i, n) in batch {
        space.reactions.add(i, n);
    }
    app.metrics.reactions.fetch_add(total, Relaxed);
    app.metrics.reaction_requests.fetch_add(1, Relaxed);
    Ok(StatusCode::NO_CONTENT.into_response())
}
