//! One UDP port for every speaker of every space.
//!
//! The first datagram of a peer is a STUN binding request whose USERNAME starts with the ICE
//! ufrag we gave that session; it binds the peer's source address to the session. Later
//! datagrams route by source address. Anything else — no session for the address and not a
//! binding request for a known ufrag — is dropped before any allocation and counted. Each
//! session has a bounded inbox; when it is full, datagrams are dropped (media tolerates loss,
//! memory must not grow).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::stun::binding_request_local_ufrag;
use tribune_metrics::Metrics;

/// Datagrams a session may have waiting: about a second of audio plus ICE/DTLS traffic.
pub const INBOX: usize = 128;

/// Largest datagram we read; larger ones are truncated and then fail to parse.
const MAX_DATAGRAM: usize = 2048;

/// A datagram for one session.
pub struct Datagram {
    pub source: SocketAddr,
    pub at: Instant,
    pub data: Vec<u8>,
}

/// Where a session's datagrams go.
#[derive(Clone)]
pub struct Route {
    session: u64,
    inbox: mpsc::Sender<Datagram>,
}

/// The routing table of the shared port (sans-IO): which session a datagram is for.
#[derive(Default)]
pub struct Routes {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, Route>,
}

impl Routes {
    /// Register a session by its local ICE ufrag; returns its inbox.
    pub fn register(&mut self, session: u64, ufrag: &str) -> mpsc::Receiver<Datagram> {
        let (tx, rx) = mpsc::channel(INBOX);
        self.by_ufrag
            .insert(ufrag.to_owned(), Route { session, inbox: tx });
        rx
    }

    /// Remove every route of a session.
    pub fn unregister(&mut self, session: u64) {
        self.by_ufrag.retain(|_, v| v.session != session);
        self.by_addr.retain(|_, v| v.session != session);
    }

    /// The session a datagram from `source` is for: the one bound to the address, else the one
    /// a STUN binding request names by its ufrag (which binds the address to it). `None` for
    /// anything else, which the caller drops. That path allocates nothing (a test binary with a
    /// counting allocator proves it): junk costs a hash lookup or two.
    pub fn route(&mut self, source: SocketAddr, data: &[u8]) -> Option<Route> {
        if let Some(r) = self.by_addr.get(&source) {
            return Some(r.clone());
        }
        let r = binding_request_local_ufrag(data).and_then(|u| self.by_ufrag.get(u))?;
        let r = r.clone();
        self.by_addr.insert(source, r.clone());
        Some(r)
    }
}

impl Route {
    /// The session's id.
    pub fn session(&self) -> u64 {
        self.session
    }
}

/// The shared media socket and its routing table.
pub struct Mux {
    socket: UdpSocket,
    local: SocketAddr,
    routes: Mutex<Routes>,
    metrics: Arc<Metrics>,
}

impl Mux {
    /// Wrap a bound socket. Must be called inside the media runtime's context.
    pub fn new(socket: std::net::UdpSocket, metrics: Arc<Metrics>) -> std::io::Result<Arc<Self>> {
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        Ok(Arc::new(Mux {
            socket: UdpSocket::from_std(socket)?,
            local,
            routes: Mutex::new(Routes::default()),
            metrics,
        }))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Register a session by its local ICE ufrag; returns its inbox.
    pub fn register(&self, session: u64, ufrag: &str) -> mpsc::Receiver<Datagram> {
        self.routes.lock().register(session, ufrag)
    }

    /// Remove every route of a session.
    pub fn unregister(&self, session: u64) {
        self.routes.lock().unregister(session);
    }

    /// Send one datagram; errors (e.g. an unreachable peer) are the session's problem only.
    pub async fn send(&self, to: SocketAddr, data: &[u8]) {
        let to = self.to_socket_family(to);
        if let Err(e) = self.socket.send_to(data, to).await {
            tracing::debug!(%to, error = %e, "udp send failed");
        }
    }

    /// The receive loop; runs for the life of the server.
    pub async fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, source) = match self.socket.recv_from(&mut buf).await {
                Ok(v) => v,
                Err(e) => {
                    // E.g. ICMP port unreachable surfacing as ECONNREFUSED: not fatal.
                    tracing::debug!(error = %e, "udp recv error");
                    continue;
                }
            };
            self.metrics.udp_datagrams.fetch_add(1, Relaxed);
            let source = canonical(source);
            let data = &buf[..n];
            let route = self.routes.lock().route(source, data);
            let Some(route) = route else {
                self.metrics.udp_dropped_unknown.fetch_add(1, Relaxed);
                continue;
            };
            let d = Datagram {
                source,
                at: Instant::now(),
                data: data.to_vec(),
            };
            if route.inbox.try_send(d).is_err() {
                self.metrics.udp_dropped_inbox_full.fetch_add(1, Relaxed);
            }
        }
    }

    /// On a dual-stack (IPv6) socket, IPv4 peers must be addressed as mapped IPv6 addresses.
    fn to_socket_family(&self, to: SocketAddr) -> SocketAddr {
        match (self.local.ip(), to.ip()) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), to.port())
            }
            _ => to,
        }
    }
}

/// IPv4 peers seen through a dual-stack socket appear as `::ffff:a.b.c.d`; str0m and our routes
/// use the plain IPv4 form.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}
