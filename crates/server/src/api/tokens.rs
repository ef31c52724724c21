//! Tokens: minting role tokens, joining as a listener (and renewing), presence.

use super::*;

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
///
/// A token names a participant, and for one the room seats on stage the record wins over the
/// role written in it: a token for the host's, a co-host's or a speaker's `sub` would act as
/// that participant, with its seat, and replace its WHIP session. So the host mints only for a
/// new `sub` or a listener's (rule `token.mint.seated`, 403 otherwise; 403 too for a removed or
/// banned `sub`); the operator key mints anything, for anyone.
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
        (status = 403, description = "Token of another space, caller or `sub` removed or \
            banned, the permission table refuses this role, or (to the host) the `sub` is on \
            stage", body = crate::openapi::ErrorBody),
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
    if !operator {
        // A seated participant's token would carry its seat, whatever role it says.
        let seat = space
            .current_role(&sub, Role::Listener)
            .map_err(|r| match r {
                Refusal::Gone(how) => ApiError::forbidden(format!("participant {sub} is {how}")),
                r => refused(r),
            })?;
        if seat.on_stage() {
            check(Action::MintForSeated, role, operator).map_err(refused)?;
        }
    }
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
            if space.is_addr_banned(crate::cluster::client_ip(&app, addr, &headers)) {
                return Err(ApiError::forbidden("participant banned"));
            }
            // A new listener: the shield may ask for proof of work (renewals never do, so
            // those already in are untouched).
            let now = app.cfg.clock.now_s();
            app.shield.note_join(now);
            let pass = tribune_admission::Pass::from_request(None, &headers);
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
        space.note_addr(&sub, crate::cluster::client_ip(&app, addr, &headers));
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
        "renew_after": app.cfg.clock.now_s() + app.cfg.join_ttl.as_secs() / 2,
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
