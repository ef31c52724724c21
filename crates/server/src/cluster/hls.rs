//! LL-HLS of a space owned elsewhere: each object fetched from the owner once, whatever the
//! number of listeners on this node.
//!
//! Requests for the same URL (path and query) at the same time share one upstream request: a
//! thousand players blocked on the same `_HLS_msn`/`_HLS_part` reload, or waiting on the same
//! preload hint, are one request to the owner. Parts, segments and the init section never change
//! once made (their names say what they hold), so a `200` for them is kept ([`KEEP`] objects, the
//! oldest dropped first) and served from here; playlists are always asked for (coalesced).
//! Status, headers (`Cache-Control`, `ETag`, `Content-Type`…) and body are the owner's.

use std::collections::{HashMap, VecDeque};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use tribune_cluster::Owner;

use super::Member;
use crate::app::App;

/// Immutable objects kept per node (a few minutes of parts and segments of a few hundred spaces).
pub const KEEP: usize = 4096;

/// One answer of the owner, whole.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

type Pending = Shared<BoxFuture<'static, Result<Answer, String>>>;

#[derive(Default)]
struct Kept {
    map: HashMap<String, Answer>,
    order: VecDeque<String>,
}

/// This node's HLS objects of other nodes' spaces.
#[derive(Default)]
pub struct Cache {
    kept: Mutex<Kept>,
    pending: Mutex<HashMap<String, Pending>>,
}

fn immutable(path: &str) -> bool {
    path.contains("/hls/part/") || path.contains("/hls/seg/") || path.ends_with("/hls/init.mp4")
}

fn respond(a: &Answer, head_only: bool) -> Response {
    let body = if head_only {
        Body::empty()
    } else {
        Body::from(a.body.clone())
    };
    let mut r = Response::new(body);
    *r.status_mut() = a.status;
    *r.headers_mut() = a.headers.clone();
    r
}

/// `GET` (or `HEAD`) of an HLS URL of a space `owner` runs.
pub async fn get(app: &App, m: &Member, owner: &Owner, req: Request) -> Response {
    let head_only = req.method() == axum::http::Method::HEAD;
    let target = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path(), |pq| pq.as_str())
        .to_owned();
    let keep = immutable(req.uri().path());
    if keep && let Some(a) = m.hls.kept.lock().map.get(&target) {
        return respond(a, head_only);
    }
    let pending = {
        let mut pending = m.hls.pending.lock();
        match pending.get(&target) {
            Some(p) => p.clone(),
            None => {
                let client = super::forward::client_of(app, &req);
                let mut headers = super::forward::upstream_headers(m, req.headers(), client);
                // One answer serves every asker: ask for it plain (this node gzips nothing of
                // HLS, and a conditional answer would be one client's).
                for h in [
                    "if-none-match",
                    "if-modified-since",
                    "range",
                    "accept-encoding",
                ] {
                    headers.remove(h);
                }
                let url = format!("{}{}", owner.url.trim_end_matches('/'), target);
                let http = m.http.clone();
                m.metrics
                    .cluster_hls_fetches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p: Pending = async move {
                    let resp = http
                        .get(&url)
                        .headers(headers)
                        .timeout(std::time::Duration::from_secs(15))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = resp.status();
                    let mut headers = resp.headers().clone();
                    for h in ["connection", "transfer-encoding", "keep-alive"] {
                        headers.remove(h);
                    }
                    let body = resp.bytes().await.map_err(|e| e.to_string())?;
                    Ok(Answer {
                        status,
                        headers,
                        body,
                    })
                }
                .boxed()
                .shared();
                pending.insert(target.clone(), p.clone());
                p
            }
        }
    };
    let got = pending.await;
    m.hls.pending.lock().remove(&target);
    match got {
        Ok(a) => {
            if keep && a.status == StatusCode::OK {
                let mut kept = m.hls.kept.lock();
                if !kept.map.contains_key(&target) {
                    if kept.order.len() >= KEEP
                        && let Some(old) = kept.order.pop_front()
                    {
                        kept.map.remove(&old);
                    }
                    kept.order.push_back(target.clone());
                    kept.map.insert(target, a.clone());
                }
            }
            respond(&a, head_only)
        }
        Err(e) => {
            tracing::warn!(owner = %owner.node, error = %e, "cluster: HLS from the owner failed");
            m.unreachable(owner).into_response()
        }
    }
}
