//! Serving HTTP on our listeners with hyper directly, instead of `axum::serve`, for the limits a
//! public server needs and axum's loop does not set:
//! - HTTP/1: the request head must arrive within `head_timeout` (hyper's `header_read_timeout`,
//!   which also runs while a kept-alive connection waits for its next request, so an HTTP/1
//!   connection idle that long is closed too) and fit in `--max-header-bytes` (else `431`);
//! - HTTP/2: at most [`H2_MAX_STREAMS`] streams at once, header lists within
//!   `--max-header-bytes`, keep-alive pings;
//! - any connection with no byte in either direction for `--idle-timeout` is closed ([`Idle`]).
//!
//! Connections come from a channel fed by the listener's own accept loop ([`Incoming`]): the
//! plain listener (the server's lean `live.opus` path), HTTPS ([`crate::tls`]) and the control listener. Each is
//! served by one task holding its [`ConnGuard`] (its audience slot) until it ends. Handlers get
//! the peer as `ConnectInfo<SocketAddr>`, as with axum's own loop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::conn_limit::ConnGuard;
use tribune_admission::{Class, Reason};
use tribune_metrics::Metrics;

/// HTTP/2 streams one connection may have open at once (hyper's default is 200; a browser
/// needs a few for events and HLS, a flood gets less out of each connection).
pub const H2_MAX_STREAMS: u32 = 100;

/// How long an HTTP/2 peer has to answer a keep-alive ping.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Connections waiting for the serve loop to take them. It only spawns a task per connection,
/// so this stays nearly empty; a full queue makes the listener's tasks wait.
pub const READY_QUEUE: usize = 1024;

/// A connection ready for hyper.
pub struct Conn<Io> {
    pub io: Io,
    pub peer: SocketAddr,
    /// Its audience slot (`None` on the control listener), released when the connection ends.
    pub guard: Option<ConnGuard>,
}

/// The connections of one listener, fed by its accept loop; dropping this stops the loop.
pub struct Incoming<Io> {
    rx: mpsc::Receiver<Conn<Io>>,
    local: SocketAddr,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl<Io: Send + 'static> Incoming<Io> {
    /// Start `accept_loop(tx)`, which sends the connections to serve into `tx` and returns once
    /// `tx` is closed.
    pub fn spawn<F, Fut>(local: SocketAddr, accept_loop: F) -> Incoming<Io>
    where
        F: FnOnce(mpsc::Sender<Conn<Io>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(READY_QUEUE);
        Incoming {
            rx,
            local,
            accept_loop: tokio::spawn(accept_loop(tx)),
        }
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl<Io> Drop for Incoming<Io> {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// The limits connections are served with.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request head must arrive within this (`--head-timeout-ms`).
    pub head_timeout: Duration,
    /// Idle kept-alive connections are closed after this.
    pub idle_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
}

/// How connections are served: hyper's builder with [`HttpLimits`].
#[derive(Clone)]
pub struct Http {
    builder: Arc<auto::Builder<TokioExecutor>>,
    idle: Duration,
}

impl Http {
    pub fn new(limits: HttpLimits) -> Http {
        Http {
            builder: Arc::new(builder(&limits)),
            idle: limits.idle_timeout,
        }
    }
}

/// hyper's connection builder with `limits`.
fn builder(limits: &HttpLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        // hyper refuses a buffer under 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // Pings go out after this long without a frame from the peer: later than the idle
        // timeout, so they check streaming connections without keeping idle ones open.
        .keep_alive_interval(Some(limits.idle_timeout + limits.idle_timeout / 2))
        .keep_alive_timeout(H2_PING_TIMEOUT);
    b
}

/// The control listener (`--control-listen`): every connection is let in, with no audience
/// slot (it is for hosts, speakers and operators, and kept off the public network).
pub fn control(
    tcp: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> io::Result<Incoming<tokio::net::TcpStream>> {
    let local = tcp.local_addr()?;
    let acceptor = crate::accept::Acceptor::new(tcp, metrics)
        .farewell(crate::conn_limit::Canned::full().bytes().clone());
    Ok(Incoming::spawn(
        local,
        move |ready: mpsc::Sender<Conn<tokio::net::TcpStream>>| async move {
            let closed = ready.clone();
            crate::accept::run(acceptor, closed.closed(), |io, peer| {
                let _ = io.set_nodelay(true);
                let conn = Conn {
                    io,
                    peer,
                    guard: None,
                };
                // Full only while the serve loop is behind; such a connection is closed.
                let _ = ready.try_send(conn);
            })
            .await;
        },
    ))
}

/// Serve the connections of `incoming` with `router` until `shutdown` resolves; then stop
/// accepting, ask every connection to finish (after its requests in progress), and return once
/// they have.
pub async fn serve<Io>(
    mut incoming: Incoming<Io>,
    router: Router,
    http: Http,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Http { builder, idle } = http;
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            biased;
            () = &mut shutdown => break,
            conn = incoming.rx.recv() => match conn {
                Some(conn) => conn,
                // The accept loop only ends when `incoming` is dropped.
                None => break,
            },
        };
        let Conn { io, peer, guard } = conn;
        let mid_head = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(Idle::new(io, idle, mid_head.clone()));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), req)
        });
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = guard;
            let conn = builder.serve_connection(io, service);
            if let Err(e) = watcher.watch(conn).await {
                count_error(&*e, &mid_head, &metrics, peer);
            }
        });
    }
    drop(incoming);
    graceful.shutdown().await;
}

/// Count a head that was too large, or too slow (a timeout while part of a head was in; one
/// with nothing in is a kept-alive connection that went idle).
fn count_error(
    e: &(dyn std::error::Error + 'static),
    mid_head: &AtomicBool,
    metrics: &Metrics,
    peer: SocketAddr,
) {
    let Some(e) = e.downcast_ref::<hyper::Error>() else {
        return;
    };
    if e.is_parse_too_large() || (e.is_timeout() && mid_head.load(Relaxed)) {
        metrics.refused(Reason::BadHead, Class::Browse);
        tracing::debug!(%peer, error = %e, "bad request head");
    }
}

/// A connection closed once no byte has gone either way for `timeout`.
///
/// The deadline is not re-armed on every read and write (that would cost a timer update per
/// system call): each records the time, and when the timer fires before the real deadline it is
/// set again to it. It also notes whether bytes came in since the last write (part of a request
/// head, when hyper then reports a head timeout).
pub struct Idle<T> {
    inner: T,
    timeout: Duration,
    last: Instant,
    sleep: Pin<Box<Sleep>>,
    mid_head: Arc<AtomicBool>,
}

impl<T> Idle<T> {
    /// Wrap `inner`.
    pub fn new(inner: T, timeout: Duration, mid_head: Arc<AtomicBool>) -> Idle<T> {
        let now = Instant::now();
        Idle {
            inner,
            timeout,
            last: now,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
            mid_head,
        }
    }

    /// `Ready(Err)` once idle for the timeout; the timer is registered otherwise.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sleep.as_mut().poll(cx).is_ready() {
            let deadline = self.last + self.timeout;
            if deadline <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle",
                )));
            }
            self.sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last = Instant::now();
                    self.mid_head.store(true, Relaxed);
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_idle(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T> Idle<T> {
    fn wrote(&mut self, r: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = r
            && *n > 0
        {
            self.last = Instant::now();
            self.mid_head.store(false, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_times_out_and_a_busy_one_does_not() {
        let (a, mut b) = tokio::io::duplex(64);
        let flag = Arc::new(AtomicBool::new(false));
        let mut idle = Idle::new(a, Duration::from_secs(10), flag.clone());
        let mut buf = [0u8; 8];
        // Bytes every 6 s keep it open past the timeout.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            b.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        assert!(flag.load(Relaxed), "bytes came in");
        idle.write_all(b"y").await.unwrap();
        assert!(!flag.load(Relaxed), "a write ends the head");
        let e = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
