//! `live.opus` of a space owned elsewhere: one upstream stream per space per node, fanned out
//! here through the same lean path (and the same shared pages) as a space of this node.
//!
//! The first listener of such a space on this node opens the relay: a `GET live.opus` to the
//! owner with this node's credential (it passes the owner's shield and listener cap: it stands
//! for all of this node's listeners). Its first two pages (OpusHead, OpusTags) are the header
//! every local listener starts with; the owner's burst fills the relay's own burst, so a new
//! listener here starts at once, as on the owner. Pages go on as the owner sends them, each
//! parsed once and shared by every local listener; sequence numbers and granule positions are
//! the owner's, so a listener here gets the owner's stream byte for byte from its join.
//!
//! When the upstream ends (the space ended, or the owner went away) the relay's stream ends
//! and its listeners get the end of their bodies (they reconnect and get a new relay); a relay
//! with no listener for [`IDLE`] closes its upstream.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::OnceCell;
use tribune_cluster::Owner;
use tribune_engine::fanout::Fanout;
use tribune_engine::live::{LivePage, LiveStream};
use tribune_media::ogg::PageReader;

use super::{Member, NODE_HEADER};
use crate::app::App;

/// A relay with no listener this long closes its upstream.
pub const IDLE: Duration = Duration::from_secs(30);

/// Longest wait for the owner's answer and header pages.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// One space's relayed stream on this node.
pub struct Relay {
    pub stream: Arc<LiveStream>,
    pub fanout: Fanout,
    title: String,
    description: String,
}

type Slot = Arc<OnceCell<Arc<Relay>>>;

/// The relays of this node, by space.
#[derive(Default)]
pub struct Relays {
    map: Mutex<HashMap<String, Slot>>,
}

impl Relays {
    /// For each space relayed here now: its listeners on this node less the one connection the
    /// relay holds on the owner (which the owner counts as a listener of its own).
    pub fn counts(&self) -> Vec<(String, i64)> {
        self.map
            .lock()
            .iter()
            .filter_map(|(id, s)| {
                let r = s.get()?;
                (!r.stream.is_closed()).then(|| (id.clone(), r.stream.listeners.load(Relaxed) - 1))
            })
            .collect()
    }
}

/// The relay of space `id` (owned by `owner`), opened if this node has none: `Err` is the
/// owner's refusal (`404`, `410`…) or `503` when it does not answer.
// The refusal is a whole response; it is the cold path.
#[allow(clippy::result_large_err)]
pub async fn relay(
    app: &App,
    m: &Arc<Member>,
    owner: &Owner,
    id: &str,
) -> Result<Arc<Relay>, Response> {
    for _ in 0..2 {
        let slot = m
            .relays
            .map
            .lock()
            .entry(id.to_owned())
            .or_default()
            .clone();
        let r = slot
            .get_or_try_init(|| open(app, m, owner, id))
            .await?
            .clone();
        if !r.stream.is_closed() {
            return Ok(r);
        }
        // Ended since: forget it (unless another caller already did) and open a new one.
        let mut map = m.relays.map.lock();
        if map.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            map.remove(id);
        }
    }
    Err(crate::streams::gone(id).into_response())
}

#[allow(clippy::result_large_err)]
async fn open(app: &App, m: &Arc<Member>, owner: &Owner, id: &str) -> Result<Arc<Relay>, Response> {
    let url = format!("{}/spaces/{id}/live.opus", owner.url.trim_end_matches('/'));
    let no_answer = || m.unreachable(owner).into_response();
    let connect = async {
        let resp = m
            .http
            .get(&url)
            .header(NODE_HEADER, m.node_credential())
            .send()
            .await
            .map_err(|_| no_answer())?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(super::forward::downstream(resp));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (title, description) = (header("icy-name"), header("icy-description"));
        let mut resp = resp;
        let mut reader = PageReader::new();
        let mut head = Vec::new();
        let mut early = Vec::new();
        while head.len() < 2 {
            match resp.chunk().await {
                Ok(Some(bytes)) => reader.push(&bytes),
                _ => return Err(no_answer()),
            }
            while let Ok(Some(p)) = reader.next_page() {
                if head.len() < 2 {
                    head.push(p);
                } else {
                    early.push(p);
                }
            }
        }
        Ok((resp, reader, head, early, title, description))
    };
    let (resp, reader, head, early, title, description) =
        match tokio::time::timeout(CONNECT_WAIT, connect).await {
            Ok(r) => r?,
            Err(_) => return Err(no_answer()),
        };
    let mut head_bytes = Vec::new();
    for p in &head {
        head_bytes.extend(p.to_bytes().map_err(|_| no_answer())?);
    }
    let cfg = app.cfg.space_config();
    let per = cfg.page.as_millis().max(1);
    let stream = Arc::new(LiveStream::relayed(
        Bytes::from(head_bytes),
        cfg.burst.as_millis().div_ceil(per) as usize,
        cfg.slow_listener.as_millis().div_ceil(per) as usize,
    ));
    let fields = (cfg.live_head)(&title, &description, cfg.bitrate);
    let fanout = Fanout::new(
        stream.clone(),
        app.metrics.clone(),
        fields.into(),
        cfg.bitrate,
        cfg.fanout_shard,
        cfg.slow_listener,
    );
    for p in early {
        publish(&stream, &p);
    }
    m.metrics.cluster_relays_opened.fetch_add(1, Relaxed);
    tracing::info!(space = id, owner = %owner.node, "cluster: relaying live.opus");
    tokio::spawn(feed(resp, reader, stream.clone(), id.to_owned()));
    Ok(Arc::new(Relay {
        stream,
        fanout,
        title,
        description,
    }))
}

fn publish(stream: &LiveStream, p: &tribune_media::ogg::Page) {
    if let Ok(bytes) = p.to_bytes() {
        stream.publish(LivePage::new(p.seq, p.seq, p.granule, &bytes));
    }
}

/// Pages from the owner to the relay's listeners, until the upstream ends or nobody listens.
async fn feed(
    mut resp: reqwest::Response,
    mut reader: PageReader,
    stream: Arc<LiveStream>,
    id: String,
) {
    let mut idle = tokio::time::interval(IDLE);
    idle.tick().await;
    let mut was_idle = false;
    loop {
        tokio::select! {
            chunk = resp.chunk() => match chunk {
                Ok(Some(bytes)) => {
                    reader.push(&bytes);
                    loop {
                        match reader.next_page() {
                            Ok(Some(p)) => publish(&stream, &p),
                            Ok(None) => break,
                            // Skipped garbage: the reader has resynchronised.
                            Err(_) => continue,
                        }
                    }
                }
                _ => break,
            },
            _ = idle.tick() => {
                let none = stream.listeners.load(Relaxed) <= 0;
                if none && was_idle {
                    tracing::info!(space = %id, "cluster: relay idle, closing its upstream");
                    break;
                }
                was_idle = none;
            }
        }
    }
    stream.close();
}

/// `GET /spaces/{id}/live.opus` of a space owned elsewhere, on hyper's path (HTTPS, HTTP/2,
/// in-process callers); the plain listener's lean path joins [`Relay::fanout`] instead.
pub async fn live(app: &App, m: &Arc<Member>, owner: &Owner, id: &str, req: Request) -> Response {
    let pass = tribune_admission::Pass::from_request(req.uri().query(), req.headers());
    if req.method() == axum::http::Method::HEAD {
        return match relay(app, m, owner, id).await {
            Ok(r) => {
                let mut resp = Response::new(Body::empty());
                *resp.headers_mut() =
                    crate::streams::live_headers(&r.title, &r.description, app.cfg.bitrate);
                resp
            }
            Err(resp) => resp,
        };
    }
    if let Err(resp) = crate::streams::door(app, id, &pass, |_| {}) {
        return resp;
    }
    let r = match relay(app, m, owner, id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match crate::streams::live_body(&r.stream, app.metrics.clone()) {
        Some(body) => {
            let mut resp = Response::new(body);
            *resp.headers_mut() =
                crate::streams::live_headers(&r.title, &r.description, app.cfg.bitrate);
            resp
        }
        None => crate::streams::gone(id).into_response(),
    }
}
