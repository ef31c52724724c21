//! The stage and moderation (`stage/{action}`), and the recent audience a host can invite.

use super::*;

/// Body of stage actions that name a participant.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Target {
    pub sub: Option<String>,
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
        space.note_addr(&actor.sub, crate::cluster::client_ip(&app, addr, &headers));
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
/// [`tribune_engine::space::AUDIENCE_REMEMBERED`] who joined, sent a beacon, opened the event stream,
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
