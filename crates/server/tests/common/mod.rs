//! What the in-process HTTP tests share: a server on its own data directory, and its audience
//! router as a client at one address reaches it.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use tribune_server::app::router;
use tribune_server::{Config, Server};

/// The operator key of these servers.
pub const ADMIN_KEY: &str = "test-operator-key";

/// A server whose data lives under a directory named after `name`, and its router, every
/// request arriving from `peer`.
pub async fn server(name: &str, peer: &str) -> (Server, Router) {
    let dir = std::env::temp_dir().join(format!("tribune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = Config::for_tests(dir);
    cfg.admin_key = ADMIN_KEY.into();
    let server = Server::bind(cfg).await.unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    let r = router(server.app.clone()).layer(MockConnectInfo(peer));
    (server, r)
}
