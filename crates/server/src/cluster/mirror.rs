//! The event stream of a space owned elsewhere, served from the owner's log in Redis.
//!
//! A subscriber here is checked by the owner first: this node asks it for the stream with the
//! subscriber's own credential and `once=1` (`GET …/events?once=1`), so who may subscribe, and
//! the answer to anyone who may not, are the owner's; the owner answers with one `snapshot`
//! frame, its id in `Tribune-Event-Id`. Then the subscriber is served by this node's *mirror* of
//! the space: an [`EventHub`] fed by one reader of the owner's log ([`tribune_cluster::events`]),
//! holding the owner's frames with the owner's ids. So `Last-Event-ID` means the same on every
//! node: a subscriber that reconnects to another node with it gets exactly the frames it missed
//! (from the mirror's ring, which starts from the log's history), or a fresh snapshot when they
//! are gone. A mirror with no subscriber for [`IDLE`] stops reading; the owner's end of the
//! stream (an empty entry in the log) ends it and its subscribers' streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;
use tribune_cluster::{Owner, Reader};
use tribune_engine::events::{EventHub, Frame, RING};

use super::{Member, unavailable};
use crate::app::AppState;

/// A mirror with no subscriber this long stops reading the log.
pub const IDLE: Duration = Duration::from_secs(30);

/// Comment lines to the mirror's subscribers, as the owner sends its own.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// How long one blocking read of the log waits.
const BLOCK_MS: usize = 1000;

/// The mirrors of this node, by space, and who holds their streams.
#[derive(Default)]
pub struct Mirrors {
    map: Mutex<HashMap<String, Arc<EventHub>>>,
    /// Open streams per space and participant (reported to the owner: a host is present).
    holders: Arc<Mutex<HashMap<String, HashMap<String, u32>>>>,
}

impl Mirrors {
    /// The participants holding each space's stream here now.
    pub fn streams(&self) -> Vec<(String, Vec<String>)> {
        self.holders
            .lock()
            .iter()
            .map(|(space, subs)| (space.clone(), subs.keys().cloned().collect()))
            .collect()
    }
}

/// Counts a remote subscriber in `/metrics` and among the space's holders while it is connected.
struct Counted {
    metrics: Arc<tribune_metrics::Metrics>,
    holder: Option<(String, String)>,
    holders: Arc<Mutex<HashMap<String, HashMap<String, u32>>>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.events_subscribers.fetch_sub(1, Relaxed);
        if let Some((space, sub)) = &self.holder {
            let mut h = self.holders.lock();
            if let Some(subs) = h.get_mut(space) {
                if let Some(n) = subs.get_mut(sub) {
                    *n -= 1;
                    if *n == 0 {
                        subs.remove(sub);
                    }
                }
                if subs.is_empty() {
                    h.remove(space);
                }
            }
        }
    }
}

/// The mirror of `id`, started if this node has none.
async fn mirror(m: &Arc<Member>, id: &str) -> Result<Arc<EventHub>, Response> {
    if let Some(h) = m.mirrors.map.lock().get(id) {
        return Ok(h.clone());
    }
    let Some(log) = m.log() else {
        return Err(unavailable("not connected to Redis yet").into_response());
    };
    let history = super::redis_call(log.history(id, RING))
        .await
        .map_err(IntoResponse::into_response)?;
    let hub = Arc::new(EventHub::default());
    let mut after = "0".to_owned();
    for l in history {
        after = l.entry.clone();
        if l.id == 0 {
            hub.close();
        } else {
            hub.relay(Frame {
                id: l.id,
                bytes: Bytes::from(l.frame),
            });
        }
    }
    let mut map = m.mirrors.map.lock();
    if let Some(h) = map.get(id) {
        return Ok(h.clone());
    }
    map.insert(id.to_owned(), hub.clone());
    drop(map);
    tokio::spawn(read(m.clone(), id.to_owned(), after, hub.clone()));
    Ok(hub)
}

/// Feeds `hub` from the log until the stream ends or nobody has listened for [`IDLE`]; Redis
/// going away pauses it (with back-off), and it continues from where it was.
async fn read(m: Arc<Member>, id: String, mut after: String, hub: Arc<EventHub>) {
    let url = m.cfg.redis.clone();
    let mut idle_since: Option<tokio::time::Instant> = None;
    let mut keepalive = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(200);
    'outer: loop {
        let mut reader = match Reader::open(&url, &id, &after).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(space = %id, error = %e, "cluster: event log unreachable");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        wait = Duration::from_millis(200);
        loop {
            if hub.subscribers() == 0 {
                let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= IDLE {
                    break 'outer;
                }
            } else {
                idle_since = None;
            }
            if keepalive.elapsed() >= KEEPALIVE {
                keepalive = tokio::time::Instant::now();
                hub.keepalive();
            }
            match reader.next(BLOCK_MS).await {
                Ok(frames) => {
                    for l in frames {
                        after = l.entry.clone();
                        if l.id == 0 {
                            hub.close();
                            break 'outer;
                        }
                        hub.relay(Frame {
                            id: l.id,
                            bytes: Bytes::from(l.frame),
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(space = %id, error = %e, "cluster: reading the event log");
                    tokio::time::sleep(wait).await;
                    continue 'outer;
                }
            }
        }
    }
    // Whoever comes next starts a fresh mirror (from the log's history).
    hub.close();
    forget(&m, &id, &hub);
}

/// `GET /api/spaces/{id}/events` of a space owned elsewhere.
pub async fn events(
    app: &AppState,
    m: &Arc<Member>,
    owner: &Owner,
    id: &str,
    req: Request,
) -> Response {
    let client = super::forward::client_of(app, &req);
    let last_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            req.uri().query().and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "last_event_id")
                    .map(|(_, v)| v.to_owned())
            })
        })
        .and_then(|v| v.trim().parse::<u64>().ok());
    // The owner decides who may subscribe, and answers those who may not.
    let query: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| {
            !kv.is_empty() && !kv.starts_with("last_event_id=") && !kv.starts_with("once=")
        })
        .collect();
    let mut q = query.join("&");
    if !q.is_empty() {
        q.push('&');
    }
    q.push_str("once=1");
    let url = format!(
        "{}/api/spaces/{id}/events?{q}",
        owner.url.trim_end_matches('/')
    );
    let mut headers = super::forward::upstream_headers(m, req.headers(), client);
    headers.remove("last-event-id");
    let resp = match m.http.get(&url).headers(headers).send().await {
        Ok(r) => r,
        Err(_) => {
            return m.unreachable(owner).into_response();
        }
    };
    let ended = resp.headers().get("tribune-final").is_some();
    let at: u64 = resp
        .headers()
        .get("tribune-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if resp.status() != StatusCode::OK || ended {
        return super::forward::downstream(resp);
    }
    let Ok(snapshot) = resp.bytes().await else {
        return unavailable("the owner's snapshot was cut").into_response();
    };
    let hub = match mirror(m, id).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    // Resuming after `Last-Event-ID` if the mirror holds what followed it; else the owner's
    // snapshot (id `at`), then what the mirror holds after `at` (it may be ahead of the owner's
    // answer, which was made before this subscription), then what comes.
    let resumed = match last_id {
        Some(l) => hub.subscribe(Some(l)).filter(|s| !s.needs_snapshot),
        None => None,
    };
    let (start, with_snapshot) = match resumed {
        Some(s) => (s, false),
        None => match hub.subscribe(Some(at)) {
            Some(s) => (s, true),
            // The mirror saw the end: the owner's final snapshot is the whole answer.
            None => return crate::events_http::sse_response(Body::from(snapshot)),
        },
    };
    app.metrics.events_subscribers.fetch_add(1, Relaxed);
    // Who it is (the owner has checked the credential; it is good here too: the secret is shared).
    let holder = match crate::events_http::stream_caller(
        app,
        &query_map(req.uri().query()),
        req.headers(),
    ) {
        Ok(crate::api::Caller::Participant(c)) => Some((id.to_owned(), c.sub)),
        _ => None,
    };
    if let Some((space, sub)) = &holder {
        *m.mirrors
            .holders
            .lock()
            .entry(space.clone())
            .or_default()
            .entry(sub.clone())
            .or_default() += 1;
    }
    let counted = Counted {
        metrics: app.metrics.clone(),
        holder,
        holders: m.mirrors.holders.clone(),
    };
    // Frames already sent (in the snapshot or the backlog) are skipped when they come again.
    let mut first: Vec<Bytes> = Vec::with_capacity(start.backlog.len() + 1);
    if with_snapshot {
        first.push(snapshot);
    }
    first.extend(start.backlog.into_iter().map(|f| f.bytes));
    let at = if with_snapshot {
        at.max(start.at_id)
    } else {
        start.at_id
    };
    let state = (first.into_iter(), start.rx, counted, at);
    let body = stream::unfold(state, |(mut first, mut rx, counted, at)| async move {
        if let Some(b) = first.next() {
            return Some((Ok::<Bytes, Infallible>(b), (first, rx, counted, at)));
        }
        loop {
            match rx.recv().await {
                Ok(f) if f.id != 0 && f.id <= at => continue,
                Ok(f) => return Some((Ok(f.bytes), (first, rx, counted, at))),
                Err(RecvError::Lagged(_)) => {
                    counted.metrics.events_dropped_slow.fetch_add(1, Relaxed);
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    crate::events_http::sse_response(Body::from_stream(body))
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Drops the mirror of `id` if it is `hub` (a stopped reader's).
fn forget(m: &Member, id: &str, hub: &Arc<EventHub>) {
    let mut map = m.mirrors.map.lock();
    if map.get(id).is_some_and(|h| Arc::ptr_eq(h, hub)) {
        map.remove(id);
    }
}
