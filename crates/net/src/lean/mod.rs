//! The plain-HTTP listener (`--listen`): it owns the accept step and takes live.opus listeners
//! off hyper.
//!
//! A hyper HTTP/1 connection keeps about 20 KiB of buffers for its whole life (a 16 KiB read
//! buffer, an 8 KiB write buffer, the connection task), which is most of what a live.opus
//! listener cost. So each accepted connection first gets a small task that reads its request
//! head (at most [`head::MAX_HEAD`] bytes, within `head_timeout`):
//! - `GET /spaces/{id}/live.opus` over HTTP/1.x takes the lean path: the server's
//!   [`LiveRoute`] admits it (with the same answers as its hyper route) and hands the connection
//!   to the space's fan-out, which writes the response head, the stream's header pages, the burst
//!   and every page after;
//! - anything else goes to axum through a channel, as a [`Rewind`] that replays the bytes already
//!   read, so every other route (and `HEAD`) is served by hyper exactly as before.
//!
//! A client that sends no complete head in time is disconnected (and counted). The HTTPS
//! listener ([`tribune_net::tls`]) keeps hyper for everything.
//!
//! Before any of this, the accept loop checks the connection caps ([`crate::conn_limit`]): a
//! connection over its address's cap gets the canned `429` and is closed, one past the audience's
//! share of file descriptors is closed at once. The slot ([`ConnGuard`]) goes with the connection
//! to hyper or to the fan-out, and is given back when the connection ends.

pub mod head;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use tribune_admission::{Class, Reason};
use tribune_metrics::Metrics;

use crate::accept::Acceptor;
use crate::conn_limit::{Canned, ConnGuard, ConnLimits, Refused};
pub use crate::rewind::Rewind;
use crate::serve::{Conn, Incoming};

/// Where a live.opus listener goes once its head is read: the server admits it (or refuses it
/// with [`refuse`]) and hands the connection to the space's fan-out.
pub trait LiveRoute: Clone + Send + Sync + 'static {
    fn live(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        live: head::Live,
        guard: ConnGuard,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// Longest a refusal may take to write (it fits in any socket buffer; this bounds a client that
/// reads nothing).
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections of the plain listener that are not lean listeners, with their first bytes
/// replayed, for [`tribune_net::serve::serve`].
pub type Listener = Incoming<Rewind<TcpStream>>;

/// What the lean listener runs with.
#[derive(Clone)]
struct Ctx<R> {
    route: R,
    metrics: Arc<Metrics>,
    head_timeout: Duration,
}

/// Start accepting on `tcp`, within `limits`: live.opus heads go to `route`, the rest to the
/// returned [`Listener`] (for hyper). A head must arrive within `head_timeout`.
pub fn spawn<R: LiveRoute>(
    tcp: TcpListener,
    route: R,
    metrics: Arc<Metrics>,
    head_timeout: Duration,
    limits: Arc<ConnLimits>,
) -> std::io::Result<Listener> {
    let local = tcp.local_addr()?;
    let acceptor = Acceptor::new(tcp, metrics.clone()).farewell(Canned::full().bytes().clone());
    let ctx = Ctx {
        route,
        metrics,
        head_timeout,
    };
    Ok(Incoming::spawn(local, move |ready| {
        accept_loop(acceptor, ctx, limits, ready)
    }))
}

async fn accept_loop<R: LiveRoute>(
    acceptor: Acceptor,
    app: Ctx<R>,
    limits: Arc<ConnLimits>,
    ready: mpsc::Sender<Conn<Rewind<TcpStream>>>,
) {
    let too_many = Canned::too_many();
    let full = Canned::full();
    let closed = ready.clone();
    crate::accept::run(acceptor, closed.closed(), |stream, peer| {
        match limits.admit(peer.ip()) {
            Ok(guard) => {
                tokio::spawn(route(stream, peer, app.clone(), ready.clone(), guard));
            }
            Err(Refused::PerAddress) => {
                app.metrics.refused(Reason::TooManyConnections, Class::Join);
                too_many.refuse(stream);
            }
            Err(Refused::Full) => {
                app.metrics.audience_connections_shed.fetch_add(1, Relaxed);
                full.refuse(stream);
            }
        }
    })
    .await;
}

/// Read the head and send the connection on its way.
async fn route<R: LiveRoute>(
    mut tcp: TcpStream,
    peer: SocketAddr,
    app: Ctx<R>,
    ready: mpsc::Sender<Conn<Rewind<TcpStream>>>,
    guard: ConnGuard,
) {
    let mut buf = vec![0u8; head::MAX_HEAD];
    let read = tokio::time::timeout(app.head_timeout, read_head(&mut tcp, &mut buf)).await;
    let verdict = match read {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => return,
        Err(_) => {
            app.metrics.http_head_timeouts.fetch_add(1, Relaxed);
            app.metrics.refused(Reason::BadHead, Class::Browse);
            tracing::debug!(%peer, "no request head in time");
            return;
        }
    };
    match verdict {
        head::Verdict::Live(live) => app.route.live(tcp, peer, live, guard).await,
        head::Verdict::Pipelined { http10 } => {
            let body = br#"{"error":"bad_request","message":"live.opus takes one request per connection: the stream never ends, so a request pipelined after it could never be answered"}"#;
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            refuse(tcp, http10, StatusCode::BAD_REQUEST, &h, body).await;
        }
        // `Partial` only comes back at the end of the input: hyper answers what there is.
        head::Verdict::Other | head::Verdict::Partial => {
            let io = Rewind::new(tcp, Bytes::from(buf));
            // An error means the server is shutting down: the connection just closes.
            let conn = Conn {
                io,
                peer,
                guard: Some(guard),
            };
            let _ = ready.send(conn).await;
        }
    }
}

/// Read until the bytes decide (`buf` is then cut to what was read). `Partial` means the client
/// stopped sending (end of input) with a head that was incomplete; an empty input is an error.
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<head::Verdict> {
    let mut len = 0;
    loop {
        let n = tcp.read(&mut buf[len..]).await?;
        len += n;
        if n == 0 && len == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let verdict = head::classify(&buf[..len]);
        if n == 0 || verdict != head::Verdict::Partial {
            buf.truncate(len);
            return Ok(verdict);
        }
    }
}

/// Answer a refusal (`status`, `headers`, `body`) exactly as hyper would, then close.
pub async fn refuse(
    mut tcp: TcpStream,
    http10: bool,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) {
    let bytes = crate::response::whole(http10, status, headers, body);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        tcp.write_all(&bytes).await?;
        tcp.shutdown().await
    })
    .await;
}
