//! This node in a cluster (`--redis`): it registers itself in the node directory
//! ([`tribune_cluster::directory`]) and renews its record while it runs, and
//! `GET /api/cluster` (operator) lists the live nodes and the spaces each owns.
//!
//! Redis is never waited on by what is on air: registration runs in its own task, connects
//! with back-off (1 s doubling to 30 s) and keeps trying; until it is connected, or while Redis
//! does not answer, `GET /api/cluster` is `503` with `Retry-After`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::OnceCell;
use tribune_cluster::{Directory, NodeInfo};

use crate::api::{Caller, authenticate};
use crate::app::{App, AppState};
use crate::config::Cluster;
use crate::error::{ApiError, ApiResult};

/// How long a node's record lives unless renewed (renewed every third of it).
pub const NODE_TTL: Duration = Duration::from_secs(15);
/// Seconds a client should wait when Redis does not answer.
const RETRY_S: u64 = 2;

/// The cluster side of the app.
pub struct Member {
    pub cfg: Cluster,
    directory: OnceCell<Directory>,
}

impl Member {
    pub fn new(cfg: Cluster) -> Member {
        Member {
            cfg,
            directory: OnceCell::new(),
        }
    }
}

/// What this node says of itself now.
fn info(app: &App, m: &Member) -> NodeInfo {
    let load = app.metrics.listeners.load(Relaxed).max(0) as u64
        + app.metrics.events_subscribers.load(Relaxed).max(0) as u64;
    let mut spaces: Vec<String> = app.spaces.all().iter().map(|s| s.id.clone()).collect();
    spaces.sort();
    NodeInfo {
        id: m.cfg.node_id.clone(),
        public_url: m.cfg.public_url.clone(),
        udp: app.candidates.first().map(|a| a.to_string()),
        load,
        spaces,
        at_ms: app.cfg.clock.now_ms(),
    }
}

/// Connects (with back-off) and keeps this node's record renewed, for as long as the app lives.
pub async fn run(app: AppState) {
    let Some(m) = app.cluster.as_ref() else {
        return;
    };
    let mut wait = Duration::from_secs(1);
    let dir = loop {
        match Directory::connect(&m.cfg.redis, NODE_TTL).await {
            Ok(d) => break d,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "cluster: cannot reach Redis");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    };
    let _ = m.directory.set(dir.clone());
    tracing::info!(node = %m.cfg.node_id, url = %m.cfg.public_url, "cluster: joined");
    let mut tick = tokio::time::interval(dir.renew_every());
    loop {
        tick.tick().await;
        if let Err(e) = dir.register(&info(&app, m)).await {
            tracing::warn!(error = %e, "cluster: cannot renew this node's record");
        }
    }
}

/// What `GET /api/cluster` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// This node's id.
    pub node: String,
    /// The live nodes, by id, each with the spaces it owns.
    #[schema(value_type = Vec<Object>)]
    pub nodes: Vec<NodeInfo>,
}

/// `GET /api/cluster` (operator): the live nodes and the spaces each owns.
#[utoipa::path(
    get,
    path = "/api/cluster",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The live nodes", body = ClusterView),
        (status = 401, description = "Missing, expired or invalid credentials", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the operator key", body = crate::openapi::ErrorBody),
        (status = 404, description = "This node is not part of a cluster", body = crate::openapi::ErrorBody),
        (status = 503, description = "Redis does not answer now; `Retry-After` says when to try again", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn cluster(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if !matches!(authenticate(&app, &headers)?, Caller::Operator) {
        return Err(ApiError::forbidden("the cluster is the operator's"));
    }
    let Some(m) = app.cluster.as_ref() else {
        return Err(ApiError::not_found(
            "cluster (this node runs alone: no --redis)",
        ));
    };
    let unavailable = |why: String| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why)
            .with_header(header::RETRY_AFTER, &RETRY_S.to_string())
    };
    let Some(dir) = m.directory.get() else {
        return Err(unavailable("not connected to Redis yet".into()));
    };
    let nodes = tokio::time::timeout(Duration::from_secs(2), dir.nodes())
        .await
        .map_err(|_| unavailable("Redis did not answer in time".into()))?
        .map_err(|e| unavailable(format!("Redis: {e}")))?;
    Ok(Json(ClusterView {
        node: m.cfg.node_id.clone(),
        nodes,
    })
    .into_response())
}

/// The member this app is, if any.
pub fn member(cfg: &crate::config::Config) -> Option<Arc<Member>> {
    cfg.cluster.clone().map(|c| Arc::new(Member::new(c)))
}
