//! The server's side of the lean plain-HTTP listener ([`tribune_net::lean`]): a live.opus
//! listener taken off hyper is admitted exactly as [`crate::streams::live`] admits one (the same
//! `404`, `410`, `429` and `503` answers, counted the same way) and handed to its space's
//! fan-out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use tokio::net::{TcpListener, TcpStream};
use tribune_net::conn_limit::{ConnGuard, ConnLimits};
use tribune_net::lean::{self, LiveRoute, head};

use crate::app::AppState;
use crate::refusal::Class;
use crate::refusal::IntoHttp as _;

/// Largest refusal body read back from a response (they are a few hundred bytes).
const MAX_REFUSAL_BODY: usize = 64 * 1024;

pub use tribune_net::lean::Listener;

/// Start the lean listener on `tcp`, within `limits`.
pub fn spawn(
    tcp: TcpListener,
    app: AppState,
    limits: Arc<ConnLimits>,
) -> std::io::Result<Listener> {
    let (metrics, head_timeout) = (app.metrics.clone(), app.cfg.head_timeout);
    lean::spawn(tcp, Live(app), metrics, head_timeout, limits)
}

/// Admits live.opus listeners for the app.
#[derive(Clone)]
struct Live(AppState);

impl LiveRoute for Live {
    async fn live(&self, tcp: TcpStream, peer: SocketAddr, live: head::Live, guard: ConnGuard) {
        let app = &self.0;
        let client = match &live.forwarded_for {
            Some(xff) => {
                let mut h = axum::http::HeaderMap::new();
                if let Ok(v) = axum::http::HeaderValue::from_str(xff) {
                    h.insert("x-forwarded-for", v);
                }
                tribune_net::client_addr::client_ip(&app.cfg.trusted_proxies, peer, &h)
            }
            None => peer.ip().to_canonical(),
        };
        if let Err(r) = app.guard.check_entry(peer.ip(), client) {
            app.metrics.refused(r.reason, Class::Join);
            let resp = r
                .header(axum::http::header::CONNECTION, "close")
                .into_response();
            return refuse(tcp, live.http10, resp).await;
        }
        // A space owned by another node of the cluster: its relay on this node.
        if let Some(m) = &app.cluster
            && !app.spaces.contains(&live.id)
        {
            let owner = match m.owner_of(&live.id).await {
                Ok(Some(o)) if o.node != m.cfg.node_id => Some(o),
                Ok(_) => None,
                Err(e) => {
                    let resp = e.with_header(axum::http::header::CONNECTION, "close");
                    return refuse(tcp, live.http10, resp.into_response()).await;
                }
            };
            if let Some(owner) = owner {
                if let Err(resp) = crate::streams::door(app, &live.id, &live.pass, |_| {}) {
                    return refuse(tcp, live.http10, resp).await;
                }
                let relay = match crate::cluster::relay::relay(app, m, &owner, &live.id).await {
                    Ok(r) => r,
                    Err(resp) => return refuse(tcp, live.http10, resp).await,
                };
                if let Err((tcp, _guard)) = relay.fanout.join(tcp, live.http10, guard) {
                    let resp = crate::streams::gone(&live.id).into_response();
                    refuse(tcp, live.http10, resp).await;
                }
                return;
            }
        }
        let space = match crate::streams::admit(app, &live.id, &live.pass) {
            Ok(space) => space,
            Err(resp) => return refuse(tcp, live.http10, resp).await,
        };
        if let Err((tcp, _guard)) = space.fanout.join(tcp, live.http10, guard) {
            let resp = crate::streams::gone(&live.id).into_response();
            refuse(tcp, live.http10, resp).await;
        }
    }
}

/// Answer `resp` (a refusal) exactly as hyper would, then close.
async fn refuse(tcp: TcpStream, http10: bool, resp: Response) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let Ok(body) = axum::body::to_bytes(resp.into_body(), MAX_REFUSAL_BODY).await else {
        return;
    };
    lean::refuse(tcp, http10, status, &headers, &body).await;
}
