//! The accept step of every HTTP listener, made safe for when the process has run out of file
//! descriptors.
//!
//! `accept` failing with `EMFILE` (this process's limit) or `ENFILE` (the system's) leaves the
//! connection in the kernel's backlog, so the listening socket stays readable: a loop that just
//! retries spins, and one that sleeps (as axum's does, for a second) stalls every client queued
//! behind it. Each [`Acceptor`] keeps one spare descriptor open instead: on `EMFILE` it closes the
//! spare, accepts the pending connection and closes it at once (the client sees its connection
//! end instead of hanging; on a plain-HTTP listener it first gets a canned `503` with
//! `Retry-After`, see [`Acceptor::farewell`], written without waiting), then opens the spare
//! again. Each listener has its own acceptor and
//! its own task, so the audience running the process out of descriptors never blocks the
//! control listener's accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use tribune_metrics::Metrics;

/// Pause after an `accept` error that is neither a broken connection nor out of descriptors
/// (e.g. `ENOBUFS`), or out of descriptors with no spare to give back: short, so the listener
/// comes back soon, but long enough not to spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Shed connections accepted and closed per `EMFILE` before the loop looks again: the spare is
/// given back between each, so every pending client is told quickly.
const SHED_PER_EMFILE: usize = 64;

/// A listening socket and its spare descriptor.
pub struct Acceptor {
    tcp: TcpListener,
    spare: Option<std::fs::File>,
    metrics: Arc<Metrics>,
    /// Written (one nonblocking write) to a connection shed for want of descriptors.
    farewell: Option<bytes::Bytes>,
}

impl Acceptor {
    /// Accept on `tcp`, counting descriptor exhaustion in `metrics`.
    pub fn new(tcp: TcpListener, metrics: Arc<Metrics>) -> Acceptor {
        Acceptor {
            tcp,
            spare: open_spare(),
            metrics,
            farewell: None,
        }
    }

    /// What a connection shed for want of descriptors is told before it is closed: bytes the
    /// protocol of the listener can carry (a canned HTTP answer on a plain-HTTP listener; none
    /// on a TLS one, where plain bytes would be noise).
    pub fn farewell(mut self, bytes: bytes::Bytes) -> Acceptor {
        self.farewell = Some(bytes);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The next connection. Errors are handled here (skipped, or shed as described above), so
    /// this only returns with a connection.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.tcp.accept().await {
                Ok(conn) => {
                    if self.spare.is_none() {
                        self.spare = open_spare();
                    }
                    return conn;
                }
                Err(e) => self.on_error(e).await,
            }
        }
    }

    async fn on_error(&mut self, e: std::io::Error) {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            e.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        if is_out_of_descriptors(&e) {
            self.metrics.accept_fd_exhausted.fetch_add(1, Relaxed);
            if self.shed() {
                return;
            }
            tracing::warn!(error = %e, "out of file descriptors, no spare to give back");
        } else {
            tracing::error!(error = %e, "accepting a connection");
        }
        tokio::time::sleep(ERROR_PAUSE).await;
    }

    /// Give the spare back and close pending connections with it; `false` if there was no spare.
    fn shed(&mut self) -> bool {
        for _ in 0..SHED_PER_EMFILE {
            let Some(spare) = self.spare.take() else {
                return false;
            };
            drop(spare);
            // A pending connection is closed at once (the client sees its connection end), and
            // its descriptor is the spare's again.
            let pending = self.try_accept().map(|r| {
                r.map(|(tcp, _)| {
                    if let Some(bytes) = &self.farewell {
                        // Fits a fresh connection's send buffer; nothing waits for it.
                        let _ = tcp.try_write(bytes);
                    }
                })
            });
            self.spare = open_spare();
            // Nothing more pending (or an error): done, if the spare came back.
            if !matches!(pending, Some(Ok(()))) {
                return self.spare.is_some();
            }
        }
        true
    }

    /// One nonblocking accept: `None` when nothing is pending.
    fn try_accept(&self) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match self.tcp.poll_accept(&mut cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }
}

/// `EMFILE` or `ENFILE`.
pub fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

fn open_spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Accept until `stop` resolves, handing each connection to `each` (which must not wait: it
/// spawns or decides at once).
pub async fn run(
    mut acceptor: Acceptor,
    stop: impl std::future::Future<Output = ()>,
    mut each: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            (tcp, peer) = acceptor.accept() => each(tcp, peer),
        }
    }
}
