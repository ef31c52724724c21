//! Reactions: batched emoji counts from the audience.

use super::*;

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
        .seen(&actor.sub, &actor.name, app.cfg.clock.now_ms());
    for (i, n) in batch {
        space.reactions.add(i, n);
    }
    app.metrics.reactions.fetch_add(total, Relaxed);
    app.metrics.reaction_requests.fetch_add(1, Relaxed);
    Ok(StatusCode::NO_CONTENT.into_response())
}
