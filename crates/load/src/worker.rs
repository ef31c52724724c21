//! One process's share of a run: starts its listeners and subscribers on the shared schedule,
//! samples its counters once a second, and collects every outcome when the run ends.
//!
//! Everything is bounded by the run's end: listeners stop at it by themselves; whatever is
//! still running [`GRACE`] later is aborted and counted.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::{Plan, Slice};
use crate::tally::{Live, Outcome, Snapshot, Subscribers, Totals, kind};
use crate::{events, hls_listener, net, ogg_listener};

/// How long after the run's end a task may take to report before it is aborted.
pub const GRACE: Duration = Duration::from_secs(5);
/// HTTP clients (each bound to its own source address) shared by HLS listeners and joins.
const HTTP_CLIENTS: usize = 64;

/// What every task of a worker shares.
pub struct Ctx {
    /// The run.
    pub plan: Plan,
    /// When listener 0 starts.
    pub start: Instant,
    /// When every task stops.
    pub end: Instant,
    /// Live counters.
    pub live: Arc<Live>,
    http: Vec<reqwest::Client>,
}

impl Ctx {
    /// A context for `plan` starting at `start`.
    pub fn new(plan: Plan, start: Instant, live: Arc<Live>) -> Result<Ctx> {
        let needs_http = plan.subscribers > 0 || plan.mix.hls > 0;
        let clients = if needs_http {
            plan.sources.clamp(1, HTTP_CLIENTS)
        } else {
            0
        };
        let http = (0..clients)
            .map(|i| {
                reqwest::Client::builder()
                    .local_address(IpAddr::from(net::source_addr_of(i, plan.sources)))
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build()
                    .context("building an HTTP client")
            })
            .collect::<Result<_>>()?;
        let end = start + plan.run_length();
        Ok(Ctx {
            plan,
            start,
            end,
            live,
            http,
        })
    }

    /// The source address of connection `k`.
    pub fn source(&self, k: usize) -> IpAddr {
        net::source_addr_of(k, self.plan.sources).into()
    }

    /// The HTTP client for connection `k` (its source address is one of the first clients').
    pub fn http(&self, k: usize) -> &reqwest::Client {
        &self.http[k % self.http.len().max(1)]
    }

    /// Time from the run's start to `at`.
    pub fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }
}

/// Runs this worker's share; `tick` gets the counters once a second (second `t` of the run).
pub async fn run(
    plan: Plan,
    slice: Slice,
    start: Instant,
    live: Arc<Live>,
    mut tick: impl FnMut(Snapshot),
) -> Result<Totals> {
    let ctx = Arc::new(Ctx::new(plan, start, live.clone())?);
    let listeners = tokio::spawn(listeners(ctx.clone(), slice));
    let subscribers = tokio::spawn(subscribers(ctx.clone(), slice));
    let mut timeline = Vec::new();
    for t in 1.. {
        let at = start + Duration::from_secs(t);
        if at >= ctx.end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let snap = live.snapshot(t);
        timeline.push(snap);
        tick(snap);
    }
    let mut totals = listeners.await.context("the listener task")?;
    let (subs, outcomes) = subscribers.await.context("the subscriber task")?;
    totals.events = subs;
    for o in outcomes {
        for (k, n) in o.errors {
            *totals.errors.entry(k).or_default() += n;
        }
    }
    totals.timeline = timeline;
    Ok(totals)
}

/// Starts this worker's listeners on schedule and collects their outcomes.
async fn listeners(ctx: Arc<Ctx>, slice: Slice) -> Totals {
    let mut totals = Totals::default();
    let mut set = JoinSet::new();
    for k in slice.indices(ctx.plan.listeners) {
        let hls = ctx.plan.mix.is_hls(k);
        let at = ctx.start + ctx.plan.join_at(k);
        if at >= ctx.end {
            // Cut off by --max-seconds.
            let mut o = Outcome::default();
            o.error("not_started", &ctx.live);
            totals.book(hls, o);
            continue;
        }
        tokio::time::sleep_until(at).await;
        let c = ctx.clone();
        set.spawn(async move {
            let o = match (hls, &c.plan.hls, &c.plan.ogg) {
                (true, Some(url), _) => hls_listener::run(&c, k, url).await,
                (false, _, Some(target)) => ogg_listener::run(&c, k, target).await,
                _ => {
                    let mut o = Outcome::default();
                    o.error(kind::PROTOCOL, &c.live);
                    o
                }
            };
            (hls, o)
        });
    }
    let aborted = drain(&ctx, &mut set, |(hls, o)| totals.book(hls, o)).await;
    for _ in 0..aborted {
        let mut o = Outcome::default();
        o.error("aborted", &ctx.live);
        totals.book(false, o);
    }
    totals
}

/// Starts this worker's event-stream subscribers on schedule and collects them.
async fn subscribers(ctx: Arc<Ctx>, slice: Slice) -> (Subscribers, Vec<Outcome>) {
    let mut tally = Subscribers::default();
    let mut outcomes = Vec::new();
    let Some(target) = ctx.plan.events.clone() else {
        return (tally, outcomes);
    };
    let target = Arc::new(target);
    let mut set = JoinSet::new();
    for e in slice.indices(ctx.plan.subscribers) {
        let at = ctx.start + ctx.plan.join_at(e);
        if at >= ctx.end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let (c, t) = (ctx.clone(), target.clone());
        set.spawn(async move { events::run(&c, e, &t).await });
    }
    let aborted = drain(&ctx, &mut set, |(s, o)| {
        tally.add(&s);
        outcomes.push(o);
    })
    .await;
    if aborted > 0 {
        let mut o = Outcome::default();
        o.errors_of("aborted", aborted, &ctx.live);
        outcomes.push(o);
    }
    (tally, outcomes)
}

/// Collects every task's result, aborting what is left [`GRACE`] after the run's end; returns
/// how many were aborted.
async fn drain<T: 'static>(ctx: &Ctx, set: &mut JoinSet<T>, mut each: impl FnMut(T)) -> u64 {
    let deadline = ctx.end + GRACE;
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok(v))) => each(v),
            Ok(Some(Err(_))) => {} // a panicked task: nothing to book
            Ok(None) => return 0,
            Err(_) => {
                let left = set.len() as u64;
                set.abort_all();
                return left;
            }
        }
    }
}
