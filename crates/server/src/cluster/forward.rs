//! Forwarding a request to the node that owns its space, and answering with what it answers.
//!
//! The request goes as it came (method, path and query, headers, body), less the hop-by-hop
//! headers, plus this node's credential and the client's address, so the owner applies its own
//! checks (credentials, bans by address, rate limits) to the real client. The answer comes back
//! as the owner gave it (status, headers, body streamed), so a command through any node gets
//! exactly the owner's status and body; redirects are passed on, not followed. An owner that
//! cannot be reached is `503` with `Retry-After`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use tribune_cluster::Owner;

use super::{CLIENT_HEADER, Member, NODE_HEADER};
use crate::app::App;

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and those
/// this node sets itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | NODE_HEADER
            | CLIENT_HEADER
    )
}

/// The client address of `req` as this node sees it.
pub fn client_of(app: &App, req: &Request) -> std::net::IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    super::client_ip(app, peer, req.headers())
}

/// The request's headers as the owner should get them.
pub fn upstream_headers(m: &Member, headers: &HeaderMap, client: std::net::IpAddr) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len() + 2);
    for (k, v) in headers {
        if !hop_by_hop(k) {
            out.append(k.clone(), v.clone());
        }
    }
    if let Ok(v) = m.node_credential().parse() {
        out.insert(NODE_HEADER, v);
    }
    if let Ok(v) = client.to_string().parse() {
        out.insert(CLIENT_HEADER, v);
    }
    out
}

/// The owner's answer as this node's response (body streamed as it comes).
pub fn downstream(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let mut headers = HeaderMap::with_capacity(resp.headers().len());
    for (k, v) in resp.headers() {
        if !hop_by_hop(k) || k == header::CONTENT_LENGTH {
            headers.append(k.clone(), v.clone());
        }
    }
    let mut out = Response::new(Body::from_stream(resp.bytes_stream()));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// Longest wait for the head of the owner's answer.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Send `req` to `owner` and answer with its answer.
pub async fn forward(app: &App, m: &Member, owner: &Owner, req: Request) -> Response {
    let client = client_of(app, &req);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, app.cfg.max_body).await {
        Ok(b) => b,
        Err(e) => {
            return crate::error::ApiError::bad_request(format!("reading the body: {e}"))
                .into_response();
        }
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |pq| pq.as_str());
    let url = format!("{}{}", owner.url.trim_end_matches('/'), target);
    let sent = m
        .http
        .request(parts.method.clone(), &url)
        .headers(upstream_headers(m, &parts.headers, client))
        .body(body)
        .send();
    // An owner that accepts connections but does not answer (frozen, say) is as good as gone.
    let sent = match tokio::time::timeout(ANSWER_WAIT, sent).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", ANSWER_WAIT.as_secs())),
    };
    match sent {
        Ok(resp) => downstream(resp),
        Err(e) => {
            app.metrics
                .cluster_forward_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(owner = %owner.node, url, error = %e, "cluster: owner does not answer");
            m.unreachable(owner).into_response()
        }
    }
}
