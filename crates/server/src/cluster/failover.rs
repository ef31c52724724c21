//! A space outlives its owner: leases, the hot standby, takeover, handover.
//!
//! **Leases** ([`tribune_cluster::leases`]). The owner of a space holds its lease, TTL
//! [`LEASE_TTL`] (4 s), renewed every [`RENEW_EVERY`] (1 s): three renewals in a row may fail
//! (a slow Redis, a loaded box) before it lapses. Each confirmed renewal, sent at `t`, lets the
//! owner publish until `t + TTL − MARGIN` ([`deadline`]; MARGIN 0.5 s covers clock rate
//! differences): the pager checks that deadline before every packet
//! ([`tribune_engine::fence`]), so an owner frozen past its lease publishes nothing when it
//! thaws. A renewal refused (another node took the lease, at a later epoch) demotes the space
//! here at once ([`demote`]). A renewal that cannot reach Redis at all keeps the space on air
//! (availability over an outage of Redis, which no standby can take a lease from either);
//! every write it would make to shared state is fenced anyway, so a cut-off owner cannot
//! overwrite its successor, and it stops once it reaches Redis again.
//!
//! **The standby.** Every [`ASSIGN_EVERY`] the owner names, for each of its spaces, a hot
//! standby: the least-loaded other live node, kept while it lives. The standby copies the
//! space's recording and rendition from the owner as they are made ([`super::follow`]) and
//! watches the lease every [`WATCH_EVERY`].
//!
//! **Takeover.** When the lease has been absent for [`CONFIRM`] (one more look; after an
//! outage of Redis, which may have restarted empty, a whole TTL more, so an owner telling Redis
//! again is not taken for a dead one), or at once after the owner said it
//! handed the space over, the standby
//! takes the lease at a new epoch and brings the space up from the shared state (room, roles,
//! stage, bans, timeline) and its copies: the recording continues the same Ogg stream (same
//! serial, pages and granules go on, the lost interval filled with silence so recorded time
//! stays the clock's), the rendition continues after an `EXT-X-DISCONTINUITY` from its journal
//! (the open segment rebuilt from the parts copied, so no part number is given to new audio),
//! event ids go on after the last one logged, and `origin_changed` tells every subscriber.
//! Speakers' WebRTC sessions died with the owner; they publish again through any node.
//!
//! **Handover** ([`hand_over`], on SIGTERM): each space is suspended (its open segment closed,
//! its recording flushed), its copy streams drain, then its lease is released; the standby
//! sees the end of the copy and takes over at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tribune_cluster::{Leases, NodeInfo, Owner, RedisState, Row};
use tribune_engine::space::Space;
use tribune_room::{Actor, Command};

use super::Member;
use crate::app::AppState;

/// A lease lives this long unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(4);
/// The owner renews its leases this often.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// What the owner's local deadline keeps short of the lease's expiry in Redis.
const MARGIN: Duration = Duration::from_millis(500);
/// The owner names standbys this often.
const ASSIGN_EVERY: u32 = 2;
/// A standby looks at the lease this often.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);
/// A lease absent this long is taken over (one more look: it lapsed, its owner did not renew
/// it for a whole TTL).
pub const CONFIRM: Duration = Duration::from_millis(250);
/// Longest wait for one Redis answer in the lease loop.
const REDIS_WAIT: Duration = Duration::from_secs(2);
/// Longest a handover waits for a space's copy streams to drain.
const DRAIN: Duration = Duration::from_secs(3);

/// Until when an owner whose renewal was sent at `sent_ms` may publish.
pub fn deadline(sent_ms: u64) -> u64 {
    sent_ms + (LEASE_TTL - MARGIN).as_millis() as u64
}

/// One space this node stands by for.
struct Standing {
    stop: CancellationToken,
}

/// The failover side of a node.
#[derive(Default)]
pub struct State {
    /// Spaces this node stands by for.
    standing: Mutex<HashMap<String, Standing>>,
    /// The standby named for each space this node owns.
    standbys: Mutex<HashMap<String, String>>,
    /// Copy streams served from this node, by space.
    pub followers: Mutex<HashMap<String, usize>>,
}

async fn wait<T>(
    f: impl std::future::Future<Output = Result<T, tribune_cluster::directory::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(REDIS_WAIT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("Redis did not answer in time".to_owned()),
    }
}

/// Renews this node's leases, names standbys and watches for the spaces it stands by for, for
/// as long as the app lives.
pub async fn run(app: AppState, m: Arc<Member>) {
    let Some(redis) = m.redis.get().cloned() else {
        return;
    };
    claim_restored(&app, &m, &redis.leases).await;
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u32 = 0;
    loop {
        tick.tick().await;
        renew(&app, &m, &redis.leases).await;
        if n.is_multiple_of(ASSIGN_EVERY) {
            assign(&app, &m, &redis.leases).await;
        }
        stand_by_all(&app, &m, &redis.leases).await;
        n = n.wrapping_add(1);
    }
}

/// Spaces this node restored from its own disk: its own again if their lease is free (it was
/// their last owner), given up if another node runs them now.
async fn claim_restored(app: &AppState, m: &Arc<Member>, leases: &Leases) {
    for s in app.spaces.all() {
        if m.held.epoch(&s.id).is_some() {
            continue;
        }
        loop {
            match wait(leases.holder(&s.id)).await {
                Ok(Some(h)) if h.node == m.cfg.node_id => {
                    m.held.insert(&s.id, h.epoch);
                    s.fence.extend(deadline(app.cfg.clock.now_ms()));
                }
                Ok(Some(h)) => {
                    tracing::warn!(space = %s.id, owner = %h.node, "cluster: another node runs this space now; not serving it here");
                    demote(app, m, &s.id);
                }
                Ok(None) => match wait(leases.acquire(&s.id, &m.cfg.node_id)).await {
                    Ok(Some(e)) => {
                        m.held.insert(&s.id, e);
                        s.fence.extend(deadline(app.cfg.clock.now_ms()));
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(space = %s.id, error = %e, "cluster: cannot take the lease of a restored space")
                    }
                },
                Err(e) => {
                    tracing::warn!(space = %s.id, error = %e, "cluster: cannot read the lease of a restored space")
                }
            }
            break;
        }
    }
}

/// One renewal of every lease this node holds.
async fn renew(app: &AppState, m: &Arc<Member>, leases: &Leases) {
    let held = m.held.all();
    if held.is_empty() {
        return;
    }
    let sent = app.cfg.clock.now_ms();
    match wait(leases.renew(&m.cfg.node_id, &held)).await {
        Ok(results) => {
            for ((id, _), ok) in held.iter().zip(results) {
                if ok {
                    if let Some(s) = app.spaces.get(id) {
                        s.fence.extend(deadline(sent));
                    }
                } else {
                    tracing::warn!(space = %id, "cluster: lease lost to another node; stopping the space here");
                    demote(app, m, id);
                }
            }
        }
        Err(e) => {
            // Redis away: nobody can take a lease meanwhile; what is on air stays on air.
            tracing::warn!(error = %e, "cluster: cannot renew leases (Redis away); spaces stay on air");
            for (id, _) in &held {
                if let Some(s) = app.spaces.get(id) {
                    s.fence.extend(deadline(sent));
                }
            }
        }
    }
}

/// The space runs elsewhere now: stop it here without a word more.
pub fn demote(app: &AppState, m: &Arc<Member>, id: &str) {
    m.held.remove(id);
    m.forget_owner(id);
    m.failover.standbys.lock().remove(id);
    if let Some(s) = app.spaces.remove(id) {
        s.demote();
        m.metrics.cluster_demotions.fetch_add(1, Relaxed);
    }
}

/// Names a standby for every space this node owns: the one named before while it lives, else
/// the least-loaded other live node.
async fn assign(app: &AppState, m: &Arc<Member>, leases: &Leases) {
    let held = m.held.all();
    if held.is_empty() {
        return;
    }
    let nodes: Vec<NodeInfo> = match m.nodes().await {
        Ok(n) => n.into_iter().filter(|n| n.id != m.cfg.node_id).collect(),
        Err(_) => return,
    };
    if nodes.is_empty() {
        return;
    }
    let mut named = m.failover.standbys.lock().clone();
    named.retain(|id, node| {
        held.iter().any(|(h, _)| h == id) && nodes.iter().any(|n| n.id == *node)
    });
    let mut pairs = Vec::new();
    for (id, _) in &held {
        let node = match named.get(id) {
            Some(n) => n.clone(),
            None => {
                let standing = |n: &NodeInfo| named.values().filter(|v| **v == n.id).count() as u64;
                let weight = |n: &NodeInfo| {
                    n.load + super::SPACE_WEIGHT * (n.spaces.len() as u64 + standing(n))
                };
                let Some(best) = nodes
                    .iter()
                    .min_by(|a, b| weight(a).cmp(&weight(b)).then_with(|| a.id.cmp(&b.id)))
                else {
                    continue;
                };
                tracing::info!(space = %id, standby = %best.id, "cluster: hot standby named");
                named.insert(id.clone(), best.id.clone());
                best.id.clone()
            }
        };
        pairs.push((id.clone(), node));
    }
    if let Err(e) = wait(leases.assign(&pairs)).await {
        tracing::debug!(error = %e, "cluster: cannot name standbys");
        return;
    }
    let _ = app;
    *m.failover.standbys.lock() = named;
}

/// Starts standing by for the spaces this node was named for, and stops for those another
/// node was named for since.
async fn stand_by_all(app: &AppState, m: &Arc<Member>, leases: &Leases) {
    let Ok(list) = wait(leases.standing(&m.cfg.node_id)).await else {
        return;
    };
    let me = &m.cfg.node_id;
    let mut standing = m.failover.standing.lock();
    for (id, named) in list {
        let mine = named.as_deref() == Some(me.as_str());
        if mine && !standing.contains_key(&id) && !app.spaces.contains(&id) {
            let stop = CancellationToken::new();
            standing.insert(id.clone(), Standing { stop: stop.clone() });
            tokio::spawn(stand_by(app.clone(), m.clone(), id, stop));
        } else if let Some(other) = named
            && other != *me
            && let Some(s) = standing.remove(&id)
        {
            tracing::info!(space = %id, standby = %other, "cluster: no longer the standby");
            s.stop.cancel();
        }
    }
}

/// Stands by for space `id`: copies it, watches its lease, takes it over when it lapses.
async fn stand_by(app: AppState, m: Arc<Member>, id: String, stop: CancellationToken) {
    let Some(redis) = m.redis.get().cloned() else {
        return;
    };
    tracing::info!(space = %id, "cluster: standing by");
    m.metrics.cluster_standing.fetch_add(1, Relaxed);
    let _standing = Gauge(m.clone());
    // A copy starts from nothing: what this node had of the space is an older branch of it.
    {
        let (app, id) = (app.clone(), id.clone());
        let _ = tokio::task::spawn_blocking(move || super::follow::clear(&app, &id)).await;
    }
    let copy = Arc::new(super::follow::Copy::default());
    let copy_stop = stop.child_token();
    let copier = tokio::spawn(super::follow::copy(
        app.clone(),
        m.clone(),
        id.clone(),
        copy.clone(),
        copy_stop.clone(),
    ));
    let mut absent_since: Option<Instant> = None;
    // After an outage of Redis (which may have come back empty), or before the holder was ever
    // seen, an absent lease is taken only once its owner had a whole TTL to renew it.
    let mut unsure = true;
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let holder = match wait(redis.leases.holder(&id)).await {
            Ok(h) => h,
            Err(_) => {
                absent_since = None;
                unsure = true;
                continue;
            }
        };
        match holder {
            Some(h) if h.node == m.cfg.node_id => break,
            Some(_) => {
                unsure = false;
                absent_since = None;
            }
            None => {
                let since = *absent_since.get_or_insert_with(Instant::now);
                let handed = copy.ended.load(Relaxed);
                let confirm = if unsure { LEASE_TTL + CONFIRM } else { CONFIRM };
                if !(handed || since.elapsed() >= confirm) {
                    continue;
                }
                match wait(redis.leases.acquire(&id, &m.cfg.node_id)).await {
                    Ok(Some(epoch)) => {
                        copy_stop.cancel();
                        let _ = copier.await;
                        take_over(&app, &m, &redis.leases, &id, epoch).await;
                        m.failover.standing.lock().remove(&id);
                        return;
                    }
                    _ => absent_since = None,
                }
            }
        }
    }
    copy_stop.cancel();
    let _ = copier.await;
    m.failover.standing.lock().remove(&id);
}

/// Counts a standby while it stands by.
struct Gauge(Arc<Member>);

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.metrics.cluster_standing.fetch_sub(1, Relaxed);
    }
}

/// Brings space `id` up here, at lease `epoch`, from the shared state and this node's copies.
async fn take_over(app: &AppState, m: &Arc<Member>, leases: &Leases, id: &str, epoch: u64) {
    let t0 = Instant::now();
    m.held.insert(id, epoch);
    let Some(redis) = m.redis.get().cloned() else {
        return;
    };
    let give_up = |why: String| {
        let (leases, id, node) = (leases.clone(), id.to_owned(), m.cfg.node_id.clone());
        let m = m.clone();
        async move {
            tracing::error!(space = %id, why, "cluster: takeover failed; the lease is given back");
            m.held.remove(&id);
            let _ = leases.release(&id, &node, epoch).await;
        }
    };
    let origin = wait(redis.spaces.origin(id)).await.unwrap_or(0);
    let last_event = wait(redis.log.history(id, 1))
        .await
        .ok()
        .and_then(|h| h.last().map(|l| l.id))
        .unwrap_or(0);
    let url = m.cfg.redis.clone();
    let held = m.held.clone();
    let (app2, id2) = (app.clone(), id.to_owned());
    let built = tokio::task::spawn_blocking(move || -> Result<Arc<Space>, String> {
        let shared = RedisState::new(&url, held).map_err(|e| e.to_string())?;
        let record = shared
            .space(&id2)?
            .ok_or_else(|| "the shared state has no record of it".to_owned())?;
        let rows = shared.timeline(&id2)?;
        // This node's store learns the space as the shared state has it.
        app2.store
            .upsert_space(&record)
            .map_err(|e| e.to_string())?;
        let local = app2.store.timeline(&id2).map_err(|e| e.to_string())?;
        if rows.len() > local.len() {
            app2.store
                .append_timeline(&id2, &rows[local.len()..])
                .map_err(|e| e.to_string())?;
        }
        let space = Space::restore(
            &record,
            &app2.cfg.space_config(),
            app2.metrics.clone(),
            app2.writer.clone(),
        )
        .map_err(|e| e.to_string())?;
        Ok(space)
    })
    .await;
    let space = match built {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return give_up(e).await,
        Err(e) => return give_up(e.to_string()).await,
    };
    space.events.continue_after(last_event);
    app.spaces.insert(space.clone());
    m.tap(&space);
    m.note_owner(id);
    tokio::spawn(tribune_engine::batch::run(space.clone()));
    let interrupted = space.lifecycle() == tribune_room::Lifecycle::Interrupted;
    if interrupted {
        space.continue_from(origin);
        let s = space.clone();
        let resumed =
            tokio::task::spawn_blocking(move || s.go_live(&Actor::operator(), Command::Resume))
                .await;
        if !matches!(resumed, Ok(Ok(()))) {
            tracing::error!(space = %id, "cluster: the space taken over could not be resumed");
        }
    }
    space.events.publish(
        "origin_changed",
        &serde_json::json!({ "node": m.cfg.node_id, "epoch": epoch }),
    );
    let me = Owner {
        node: m.cfg.node_id.clone(),
        url: m.cfg.public_url.clone(),
    };
    if let Ok(summary) = serde_json::to_string(&space.summary()) {
        let row = Row {
            id: id.to_owned(),
            summary,
            origin_ms: space.recording_origin_ms(),
        };
        let _ = wait(redis.spaces.assert_owned(&me, &m.held, &[row])).await;
    }
    m.metrics.cluster_takeovers.fetch_add(1, Relaxed);
    tracing::warn!(space = %id, epoch, resumed = interrupted, ms = t0.elapsed().as_millis() as u64,
        "cluster: took the space over");
}

/// Hands every space this node owns to its standby (a graceful stop): each is suspended, its
/// copy streams drain (bounded by [`DRAIN`]), and its lease is released, so the standby takes
/// it over at once. Spaces without a standby are left to lapse. Blocking parts run off the
/// runtime.
pub async fn hand_over(app: &AppState) {
    let Some(m) = app.cluster.clone() else {
        return;
    };
    let Some(redis) = m.redis.get().cloned() else {
        return;
    };
    let standbys = m.failover.standbys.lock().clone();
    for s in app.spaces.all() {
        let Some(epoch) = m.held.epoch(&s.id) else {
            continue;
        };
        if !standbys.contains_key(&s.id) {
            continue;
        }
        let space = s.clone();
        let _ = tokio::task::spawn_blocking(move || {
            space.suspend();
            space.join();
        })
        .await;
        let until = Instant::now() + DRAIN;
        while m.failover.followers.lock().contains_key(&s.id) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        m.held.remove(&s.id);
        app.spaces.remove(&s.id);
        match wait(redis.leases.release(&s.id, &m.cfg.node_id, epoch)).await {
            Ok(true) => {
                tracing::info!(space = %s.id, standby = %standbys[&s.id], "cluster: handed over")
            }
            _ => {
                tracing::warn!(space = %s.id, "cluster: lease not released; the standby takes over when it lapses")
            }
        }
    }
}
