//! Spaces: create, list, show, the speaking timeline, and the lifecycle verbs (start, resume, end).

use super::*;

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
    /// In a cluster: the node to run the space on (a node id of `GET /api/cluster`); by
    /// default the least loaded live node. Alone: must be absent or this node's id.
    pub node: Option<String>,
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
        (status = 503, description = "In a cluster: Redis, or the node chosen, does not answer \
            now; `Retry-After` says when to try again", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn create_space(
    State(app): State<AppState>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let raw = axum::body::to_bytes(body, app.cfg.max_body)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
    let body =
        crate::body::parse_opt_json(crate::body::media_type(&parts.headers).as_deref(), &raw)?;
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
    let mut id = req.id.clone();
    if let Some(m) = app.cluster.clone() {
        // Placed here by another node, or to be placed now.
        let placed_here = m.is_node(&headers) && headers.contains_key(crate::cluster::PLACE_HEADER);
        if !placed_here {
            let target = crate::cluster::place(&app, &m, req.node.as_deref()).await?;
            if target.id != m.cfg.node_id {
                let mut fwd = axum::http::Request::from_parts(parts, axum::body::Body::from(raw));
                fwd.headers_mut().insert(
                    crate::cluster::PLACE_HEADER,
                    axum::http::HeaderValue::from_static("here"),
                );
                let owner = tribune_cluster::Owner {
                    node: target.id,
                    url: target.public_url,
                };
                return Ok(crate::cluster::forward::forward(&app, &m, &owner, fwd).await);
            }
        }
        let chosen = id.clone().unwrap_or_else(|| crate::auth::random_id(10));
        crate::app::valid_id(&chosen).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if !m.claim(&chosen).await? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("a space with id {chosen:?} exists"),
            ));
        }
        id = Some(chosen);
    } else if let Some(node) = &req.node {
        return Err(ApiError::bad_request(format!(
            "node {node:?}: this node runs alone (no --redis), there is no node to choose"
        )));
    }
    let created = app
        .create_space(
            id.as_deref(),
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
    let mut list: Vec<serde_json::Value> = app
        .spaces
        .all()
        .iter()
        .filter_map(|s| serde_json::to_value(s.summary()).ok())
        .collect();
    // In a cluster, the others' spaces as their owners last wrote them (about a second ago);
    // while Redis is away, this node's own.
    if let Some(m) = &app.cluster
        && let Ok(rows) = m.summaries().await
    {
        for (id, json) in rows {
            if app.spaces.contains(&id) {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&json)
                && v.get("id").is_some()
            {
                list.push(v);
            }
        }
    }
    Json(json!({ "spaces": list }))
}

/// `GET /api/spaces/{id}`
#[utoipa::path(
    get,
    path = "/api/spaces/{id}",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The space", body = tribune_engine::space::Summary),
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
        (status = 200, description = "The space after the change", body = tribune_engine::space::Summary),
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
    // Going live may scan and repair an interrupted recording: a blocking thread, not a worker.
    let actor = caller.actor();
    let on = space.clone();
    tokio::task::spawn_blocking(move || on.go_live(&actor, cmd))
        .await
        .map_err(|e| ApiError::internal(format!("lifecycle task failed: {e}")))?
        .map_err(refused)?;
    tracing::info!(space = %id, verb, "lifecycle");
    Ok(Json(space.summary()).into_response())
}
