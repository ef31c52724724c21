//! This node in a cluster (`--redis`): membership, placement, and serving spaces it does not own.
//!
//! - It registers itself in the node directory ([`tribune_cluster::directory`]) and renews its
//!   record; `GET /api/cluster` (operator) lists the live nodes and the spaces each owns.
//! - A space is created on one node, its *owner* (least loaded, or the create request's
//!   `"node"`), which claims it in Redis and runs its mixer, recording and packaging.
//! - Any node answers for any space ([`layer`]): requests for a space owned elsewhere are
//!   forwarded to the owner and answered as it answers ([`forward`]); `live.opus` listeners are
//!   fed by one upstream stream per space per node ([`relay`]); LL-HLS objects are fetched once
//!   and playlist requests coalesced ([`hls`]); the event stream is served from the owner's log
//!   in Redis ([`mirror`]).
//!
//! Redis is never waited on by what is on air: registration runs in its own task, connects with
//! back-off (1 s doubling to 30 s) and keeps trying; the owner's event frames go to Redis through
//! a bounded queue that drops (and counts) rather than wait. What needs Redis and cannot get it
//! (placing a space, finding the owner of a space this node has not seen) answers `503` with
//! `Retry-After`. A space's owner is remembered once found, so requests for it keep working
//! while Redis is away.
//!
//! A space survives its owner ([`failover`]): the owner holds the space's lease (a fencing
//! epoch every shared write carries), a hot standby on another node copies its recording and
//! rendition as they are made ([`follow`]) and takes the space over, continuing both, when the
//! lease lapses.
//!
//! Nodes trust each other through a credential derived from the shared `--jwt-secret`
//! ([`Member::node_credential`]), sent as `Tribune-Node`: with it, a forwarded request's client
//! address (`Tribune-Client`) is believed, and a relay's stream passes the owner's admission.

pub mod failover;
pub mod follow;
pub mod forward;
pub mod hls;
pub mod mirror;
pub mod relay;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::Mac;
use parking_lot::Mutex;
use tokio::sync::{OnceCell, mpsc};
use tribune_cluster::{Directory, EventLog, Held, Leases, NodeInfo, Owner, Row, SpaceRecords};
use tribune_engine::events::Frame;
use tribune_engine::space::Space;

use crate::api::{Caller, authenticate};
use crate::app::{App, AppState};
use crate::config::Cluster;
use crate::error::{ApiError, ApiResult};

/// How long a node's record lives unless renewed (renewed every third of it).
pub const NODE_TTL: Duration = Duration::from_secs(15);
/// Seconds a client should wait when Redis (or an owner) does not answer.
pub const RETRY_S: u64 = 2;
/// How often an owner rewrites the summaries of its spaces that changed.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);
/// How long a known owner is taken as current before it is looked up again (a takeover moves
/// a space: forwarders find the new owner within this).
const OWNER_FRESH: Duration = Duration::from_secs(3);
/// Frames waiting for Redis; beyond it they are dropped (and counted), never waited for.
const OUTBOX: usize = 8192;
/// Longest wait for one Redis answer on a request's path.
const REDIS_WAIT: Duration = Duration::from_secs(2);
/// The header a node proves itself with.
pub const NODE_HEADER: &str = "tribune-node";
/// The client address a node forwards for (believed only with [`NODE_HEADER`]).
pub const CLIENT_HEADER: &str = "tribune-client";
/// A forwarded create: place the space on the node that receives it.
pub const PLACE_HEADER: &str = "tribune-place";

/// A frame of a space for the Redis writer (`None`: the space's stream ended).
type Outgoing = (Arc<str>, Option<Frame>);

/// Frames of one space, as the log takes them: `(event id, SSE bytes)`.
type Batch = Vec<(u64, Vec<u8>)>;

/// The Redis side, once connected.
#[derive(Clone)]
struct Redis {
    dir: Directory,
    spaces: SpaceRecords,
    log: EventLog,
    leases: Leases,
}

/// The cluster side of the app.
pub struct Member {
    pub cfg: Cluster,
    redis: OnceCell<Redis>,
    owners: Mutex<HashMap<String, (Owner, Instant)>>,
    /// Spaces this node placed lately: node and Unix ms (the directory trails by a renewal).
    placed: Mutex<Vec<(String, u64)>>,
    /// Requests to other nodes (no redirects followed: a forwarded answer is the owner's).
    pub http: reqwest::Client,
    credential: String,
    outbox: mpsc::Sender<Outgoing>,
    outbox_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    pub metrics: Arc<tribune_metrics::Metrics>,
    pub relays: relay::Relays,
    pub hls: hls::Cache,
    pub mirrors: mirror::Mirrors,
    /// The leases this node holds (shared with the store's Redis replica, which fences by them).
    pub held: Arc<Held>,
    /// Failover: the spaces this node stands by for, and who copies from this node.
    pub failover: failover::State,
}

/// `503` with `Retry-After`.
pub fn unavailable(why: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why.into())
        .with_header(header::RETRY_AFTER, &RETRY_S.to_string())
}

/// `503` with `Retry-After` for a request that needed the node running space `owner`, which
/// did not answer.
pub fn owner_unreachable(owner: &Owner) -> ApiError {
    unavailable(format!(
        "the node that runs this space ({}) does not answer",
        owner.node
    ))
}

/// One Redis call on a request's path: at most [`REDIS_WAIT`], its failure a `503`.
pub async fn redis_call<T>(
    call: impl std::future::Future<Output = Result<T, tribune_cluster::directory::Error>>,
) -> ApiResult<T> {
    tokio::time::timeout(REDIS_WAIT, call)
        .await
        .map_err(|_| unavailable("Redis did not answer in time"))?
        .map_err(|e| unavailable(format!("Redis: {e}")))
}

impl Member {
    pub fn new(
        cfg: Cluster,
        jwt_secret: &str,
        metrics: Arc<tribune_metrics::Metrics>,
        held: Arc<Held>,
    ) -> Member {
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(jwt_secret.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(b"tribune cluster node");
        let credential: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Member {
            cfg,
            redis: OnceCell::new(),
            owners: Mutex::new(HashMap::new()),
            placed: Mutex::new(Vec::new()),
            http,
            credential,
            outbox,
            outbox_rx: Mutex::new(Some(rx)),
            metrics,
            relays: relay::Relays::default(),
            hls: hls::Cache::default(),
            mirrors: mirror::Mirrors::default(),
            held,
            failover: failover::State::default(),
        }
    }

    /// The credential nodes of this cluster send each other ([`NODE_HEADER`]): an HMAC of a fixed
    /// label under the shared JWT secret, so it proves the secret without revealing it.
    pub fn node_credential(&self) -> &str {
        &self.credential
    }

    /// Whether `headers` come from a node of this cluster.
    pub fn is_node(&self, headers: &HeaderMap) -> bool {
        headers
            .get(NODE_HEADER)
            .is_some_and(|v| self.is_node_credential(v.as_bytes()))
    }

    /// Whether `v` is this cluster's node credential (compared in constant time).
    pub fn is_node_credential(&self, v: &[u8]) -> bool {
        let want = self.credential.as_bytes();
        v.len() == want.len() && v.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn redis(&self) -> ApiResult<&Redis> {
        self.redis
            .get()
            .ok_or_else(|| unavailable("not connected to Redis yet"))
    }

    /// The owner of space `id`: `None` if no node has it. A known owner is remembered, so this
    /// keeps answering while Redis is away; an unknown one then is `503`.
    pub async fn owner_of(&self, id: &str) -> ApiResult<Option<Owner>> {
        let cached = self.owners.lock().get(id).cloned();
        if let Some((o, at)) = &cached
            && at.elapsed() < OWNER_FRESH
        {
            return Ok(Some(o.clone()));
        }
        let looked = match self.redis() {
            Ok(r) => redis_call(r.spaces.owner(id)).await,
            Err(e) => Err(e),
        };
        match looked {
            Ok(Some(o)) => {
                let mut owners = self.owners.lock();
                if owners.len() >= 100_000 {
                    owners.clear();
                }
                owners.insert(id.to_owned(), (o.clone(), Instant::now()));
                Ok(Some(o))
            }
            Ok(None) => Ok(None),
            Err(e) => match cached {
                Some((o, _)) => Ok(Some(o)),
                None => Err(e),
            },
        }
    }

    /// Claims `id` for this node (before the space is made here): `false` if it exists.
    pub async fn claim(&self, id: &str) -> ApiResult<bool> {
        let r = self.redis()?;
        let me = Owner {
            node: self.cfg.node_id.clone(),
            url: self.cfg.public_url.clone(),
        };
        if !redis_call(r.spaces.claim(id, &me, "{}")).await? {
            return Ok(false);
        }
        // A lease left from an earlier space of this id (deleted since) is taken over too.
        let epoch = match redis_call(r.leases.acquire(id, &me.node)).await? {
            Some(e) => e,
            None => return Ok(false),
        };
        self.held.insert(id, epoch);
        Ok(true)
    }

    /// `503` for a request that needed `owner`, which did not answer; every space this node
    /// took to be `owner`'s is looked up again next time (it may have been taken over).
    pub fn unreachable(&self, owner: &Owner) -> ApiError {
        self.owners.lock().retain(|_, (o, _)| o.node != owner.node);
        owner_unreachable(owner)
    }

    /// Forgets who owns `id` (it changed).
    pub fn forget_owner(&self, id: &str) {
        self.owners.lock().remove(id);
    }

    /// Notes that this node owns `id` now.
    pub fn note_owner(&self, id: &str) {
        let me = Owner {
            node: self.cfg.node_id.clone(),
            url: self.cfg.public_url.clone(),
        };
        self.owners
            .lock()
            .insert(id.to_owned(), (me, Instant::now()));
    }

    /// The live nodes.
    pub async fn nodes(&self) -> ApiResult<Vec<NodeInfo>> {
        let r = self.redis()?;
        redis_call(r.dir.nodes()).await
    }

    /// Every space's summary as its owner last wrote it (JSON), by id.
    pub async fn summaries(&self) -> ApiResult<Vec<(String, String)>> {
        let r = self.redis()?;
        redis_call(r.spaces.summaries()).await
    }

    /// The event log in Redis, when connected.
    pub fn log(&self) -> Option<EventLog> {
        self.redis.get().map(|r| r.log.clone())
    }

    /// Hand every event frame of `space` (owned here) to the Redis writer, without waiting;
    /// with this node's lease of it, it may publish until the lease's local deadline.
    pub fn tap(self: &Arc<Self>, space: &Space) {
        if self.held.epoch(&space.id).is_some() {
            space
                .fence
                .extend(failover::deadline(space.config().clock.now_ms()));
        } else {
            // Restored from this node's disk: nothing is published until the lease is ours.
            space.fence.extend(space.config().clock.now_ms());
        }
        let id: Arc<str> = space.id.as_str().into();
        let tx = self.outbox.clone();
        let metrics = self.metrics.clone();
        space.events.set_tap(Box::new(move |f: Option<&Frame>| {
            if tx.try_send((id.clone(), f.cloned())).is_err() {
                metrics.cluster_frames_dropped.fetch_add(1, Relaxed);
            }
        }));
    }
}

/// What a space weighs in placement, in listeners: its mixer, recorder and packager.
const SPACE_WEIGHT: u64 = 100;

/// The node a new space goes to: `pin` if given (it must be live), else the least loaded
/// (listeners and subscribers, plus [`SPACE_WEIGHT`] per space it runs, plus the spaces this
/// node placed on it since its directory record was written; ties by id). This node's own
/// figures are taken as they are now.
pub async fn place(app: &App, m: &Member, pin: Option<&str>) -> ApiResult<NodeInfo> {
    let mut nodes = m.nodes().await?;
    // This node as it is now, not as its last renewal said.
    let me = info(app, m);
    match nodes.iter_mut().find(|n| n.id == me.id) {
        Some(n) => *n = me,
        None => nodes.push(me),
    }
    let now = app.cfg.clock.now_ms();
    let mut recent = m.placed.lock();
    recent.retain(|(_, at)| now.saturating_sub(*at) < NODE_TTL.as_millis() as u64);
    let chosen = match pin {
        Some(p) => nodes.into_iter().find(|n| n.id == p).ok_or_else(|| {
            ApiError::bad_request(format!(
                "node {p:?} is not a live node of this cluster (GET /api/cluster lists them)"
            ))
        })?,
        None => {
            // Spaces placed on a node after its record was written are not in it yet.
            let weight = |n: &NodeInfo| {
                let placed = recent
                    .iter()
                    .filter(|(id, at)| *id == n.id && *at >= n.at_ms)
                    .count() as u64;
                n.load + SPACE_WEIGHT * (n.spaces.len() as u64 + placed)
            };
            nodes
                .into_iter()
                .min_by(|a, b| weight(a).cmp(&weight(b)).then_with(|| a.id.cmp(&b.id)))
                .ok_or_else(|| unavailable("no live node in the cluster's directory yet"))?
        }
    };
    recent.push((chosen.id.clone(), now));
    Ok(chosen)
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

/// Connects (with back-off) and keeps this node's record renewed and its spaces' summaries
/// current, for as long as the app lives.
pub async fn run(app: AppState) {
    let Some(m) = app.cluster.clone() else {
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
    let redis = Redis {
        spaces: SpaceRecords::new(dir.connection()),
        log: EventLog::new(dir.connection()),
        leases: Leases::new(dir.connection(), failover::LEASE_TTL),
        dir: dir.clone(),
    };
    let _ = m.redis.set(redis.clone());
    if let Some(rx) = m.outbox_rx.lock().take() {
        tokio::spawn(publish(redis.log.clone(), rx, m.clone()));
    }
    tracing::info!(node = %m.cfg.node_id, url = %m.cfg.public_url, "cluster: joined");
    tokio::spawn(failover::run(app.clone(), m.clone()));
    let mut tick = tokio::time::interval(SUMMARY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let renew_every = (dir.renew_every().as_millis() / SUMMARY_EVERY.as_millis()).max(1) as u64;
    let me = Owner {
        node: m.cfg.node_id.clone(),
        url: m.cfg.public_url.clone(),
    };
    let mut written: HashMap<String, Row> = HashMap::new();
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let renew = n.is_multiple_of(renew_every);
        n += 1;
        let mut all = Vec::new();
        for s in app.spaces.all() {
            if let Ok(json) = serde_json::to_string(&s.summary()) {
                all.push(Row {
                    id: s.id.clone(),
                    summary: json,
                    origin_ms: s.recording_origin_ms(),
                });
            }
        }
        if n.is_multiple_of(2) {
            listeners(&app, &m, &redis.spaces).await;
        }
        if renew {
            // The node's record, and the whole records of its spaces (so a Redis that lost its
            // data learns them again).
            if let Err(e) = dir.register(&info(&app, &m)).await {
                tracing::warn!(error = %e, "cluster: cannot renew this node's record");
                continue;
            }
            match redis.spaces.assert_owned(&me, &m.held, &all).await {
                Ok(_) => written = all.into_iter().map(|r| (r.id.clone(), r)).collect(),
                Err(e) => tracing::warn!(error = %e, "cluster: cannot write space records"),
            }
            continue;
        }
        let changed: Vec<Row> = all
            .into_iter()
            .filter(|r| written.get(&r.id) != Some(r))
            .collect();
        if changed.is_empty() {
            continue;
        }
        match redis.spaces.assert_owned(&me, &m.held, &changed).await {
            Ok(_) => written.extend(changed.into_iter().map(|r| (r.id.clone(), r))),
            Err(e) => tracing::warn!(error = %e, "cluster: cannot write space summaries"),
        }
    }
}

/// Listener counts and event-stream holders across the cluster, every other second: this node
/// reports the listeners it relays each space to and the participants holding a space's event
/// stream here, and takes the others' reports for the spaces it owns (so a space's count, in its
/// snapshot, listing and in-band metadata, is the whole cluster's, and a host following on
/// another node is present). Two writes and two reads per space per node every 2 s, whatever
/// the audience.
async fn listeners(app: &App, m: &Member, records: &SpaceRecords) {
    let (me, now) = (&m.cfg.node_id, app.cfg.clock.now_ms());
    if let Err(e) = records.report_listeners(me, &m.relays.counts(), now).await {
        tracing::debug!(error = %e, "cluster: cannot report listeners");
    }
    if let Err(e) = records.report_streams(me, &m.mirrors.streams(), now).await {
        tracing::debug!(error = %e, "cluster: cannot report event streams");
    }
    let owned = app.spaces.all();
    let ids: Vec<String> = owned.iter().map(|s| s.id.clone()).collect();
    match records
        .remote_listeners(&ids, me, now, LISTENERS_FRESH_MS)
        .await
    {
        Ok(counts) => {
            for (s, n) in owned.iter().zip(counts) {
                s.remote_listeners.store(n, Relaxed);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cluster: cannot read listener reports"),
    }
    match records
        .remote_streams(&ids, me, now, LISTENERS_FRESH_MS)
        .await
    {
        Ok(subs) => {
            for (s, list) in owned.iter().zip(subs) {
                *s.remote_streams.lock() = list;
            }
        }
        Err(e) => tracing::debug!(error = %e, "cluster: cannot read event-stream reports"),
    }
}

/// Tries of one append of event frames to Redis (over ~1.5 s) before they are given up.
const APPEND_TRIES: u32 = 5;

/// A listener report older than this is not counted (nodes report every 2 s).
const LISTENERS_FRESH_MS: u64 = 6_000;

/// Writes the owner's event frames to their spaces' logs, in batches, in order; a frame of
/// `None` marks a space's stream as ended.
async fn publish(log: EventLog, mut rx: mpsc::Receiver<Outgoing>, m: Arc<Member>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut by_space: Vec<(Arc<str>, Batch)> = Vec::new();
        for (space, f) in batch.drain(..) {
            let entry = f.map_or((0, Vec::new()), |f| (f.id, f.bytes.to_vec()));
            match by_space.iter_mut().find(|(s, _)| *s == space) {
                Some((_, v)) => v.push(entry),
                None => by_space.push((space, vec![entry])),
            }
        }
        for (space, frames) in by_space {
            // A few tries (a timed-out append may have been made: mirrors take an id once);
            // then the frames are given up, and counted, rather than hold the ones behind.
            let Some(lease) = m.held.value(&space) else {
                // Not this node's any more: its frames are not the space's.
                m.metrics
                    .cluster_frames_dropped
                    .fetch_add(frames.len() as u64, Relaxed);
                continue;
            };
            let mut wait = Duration::from_millis(100);
            for attempt in 1..=APPEND_TRIES {
                match log.append(&space, &lease, &frames).await {
                    Err(e) if e.is_stale() => {
                        m.metrics
                            .cluster_frames_dropped
                            .fetch_add(frames.len() as u64, Relaxed);
                        break;
                    }
                    Ok(()) => break,
                    Err(e) if attempt == APPEND_TRIES => {
                        m.metrics
                            .cluster_frames_dropped
                            .fetch_add(frames.len() as u64, Relaxed);
                        tracing::warn!(space = %space, error = %e, "cluster: event frames not logged");
                    }
                    Err(_) => {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        }
    }
}

/// The client address of a request: from [`CLIENT_HEADER`] when another node of the cluster
/// forwarded it, else as [`tribune_net::client_addr::client_ip`] finds it.
pub fn client_ip(app: &App, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if let Some(m) = &app.cluster
        && m.is_node(headers)
        && let Some(ip) = headers
            .get(CLIENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip.to_canonical();
    }
    tribune_net::client_addr::client_ip(&app.cfg.trusted_proxies, peer, headers)
}

/// A path about one space: its id and what follows it.
fn space_path(path: &str) -> Option<(&str, &str)> {
    let rest = path
        .strip_prefix("/api/spaces/")
        .or_else(|| path.strip_prefix("/spaces/"))?;
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    (!id.is_empty()).then_some((id, tail))
}

/// Serves requests for spaces this node does not own: by their owner, through it.
pub async fn layer(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(m) = app.cluster.clone() else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_owned();
    let Some((id, tail)) = space_path(&path) else {
        return next.run(req).await;
    };
    if app.spaces.contains(id) {
        return next.run(req).await;
    }
    let owner = match m.owner_of(id).await {
        Ok(Some(o)) if o.node != m.cfg.node_id => o,
        // Nobody has it (404 from here), or it is ours and not yet made.
        Ok(_) => return next.run(req).await,
        Err(e) => return e.into_response(),
    };
    let api = path.starts_with("/api/");
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match (api, tail) {
        (true, "events") if get => mirror::events(&app, &m, &owner, id, req).await,
        (false, "live.opus") if get => relay::live(&app, &m, &owner, id, req).await,
        (false, t) if get && t.starts_with("hls/") => hls::get(&app, &m, &owner, req).await,
        _ => forward::forward(&app, &m, &owner, req).await,
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
    let nodes = m.nodes().await?;
    Ok(Json(ClusterView {
        node: m.cfg.node_id.clone(),
        nodes,
    })
    .into_response())
}

/// The member this app is, if any, holding the leases in `held`.
pub fn member(
    cfg: &crate::config::Config,
    metrics: &Arc<tribune_metrics::Metrics>,
    held: Arc<Held>,
) -> Option<Arc<Member>> {
    cfg.cluster
        .clone()
        .map(|c| Arc::new(Member::new(c, &cfg.jwt_secret, metrics.clone(), held)))
}
