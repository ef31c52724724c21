//! The plain-HTTP listener (`--listen`): it owns the accept step and takes live.opus listeners
//! off hyper.
//!
//! A hyper HTTP/1 connection keeps about 20 KiB of buffers for its whole life (a 16 KiB read
//! buffer, an 8 KiB write buffer, the connection task), which is most of what a live.opus
//! listener cost. So each accepted connection first gets a small task that reads its request
//! head (at most [`head::MAX_HEAD`] bytes, within `head_timeout`):
//! - `GET /spaces/{id}/live.opus` over HTTP/1.x takes the lean path: admission as in
//!   [`crate::streams::live`] (the same `404`, `410` and `503` answers, counted the same way),
//!   then the connection is handed to the space's [`crate::fanout::Fanout`], which writes the
//!   response head, the stream's header pages, the burst and every page after;
//! - anything else goes to axum through a channel, as a [`Rewind`] that replays the bytes already
//!   read, so every other route (and `HEAD`) is served by hyper exactly as before.
//!
//! A client that sends no complete head in time is disconnected (and counted). The HTTPS
//! listener ([`crate::tls`]) keeps hyper for everything.
//!
//! Before any of this, the accept loop checks the connection caps ([`crate::conn_limit`]): a
//! connection over its address's cap gets the canned `429` and is closed, one past the audience's
//! share of file descriptors is closed at once. The slot ([`ConnGuard`]) goes with the connection
//! to hyper or to the fan-out, and is given back when the connection ends.

pub mod head;
pub mod response;
pub mod rewind;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::response::IntoResponse;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::accept::Acceptor;
use crate::app::AppState;
use crate::conn_limit::{Canned, ConnGuard, ConnLimits, Refused};
use crate::error::ApiError;
use crate::refusal::{Class, Reason};
use crate::serve::{Conn, Incoming};
pub use rewind::Rewind;

/// Longest a refusal may take to write (it fits in any socket buffer; this bounds a client that
/// reads nothing).
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest refusal body read back from the error type (they are a few hundred bytes).
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// The connections of the plain listener that are not lean listeners, with their first bytes
/// replayed, for [`crate::serve::serve`].
pub type Listener = Incoming<Rewind<TcpStream>>;

/// Start accepting on `tcp`, within `limits`.
pub fn spawn(
    tcp: TcpListener,
    app: AppState,
    limits: Arc<ConnLimits>,
) -> std::io::Result<Listener> {
    let local = tcp.local_addr()?;
    let acceptor = Acceptor::new(tcp, app.metrics.clone()).farewell(Canned::full().bytes().clone());
    Ok(Incoming::spawn(local, move |ready| {
        accept_loop(acceptor, app, limits, ready)
    }))
}

async fn accept_loop(
    acceptor: Acceptor,
    app: AppState,
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
async fn route(
    mut tcp: TcpStream,
    peer: SocketAddr,
    app: AppState,
    ready: mpsc::Sender<Conn<Rewind<TcpStream>>>,
    guard: ConnGuard,
) {
    let mut buf = vec![0u8; head::MAX_HEAD];
    let read = tokio::time::timeout(app.cfg.head_timeout, read_head(&mut tcp, &mut buf)).await;
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
        head::Verdict::Live(live) => serve_live(&app, tcp, peer, live, guard).await,
        head::Verdict::Pipelined { http10 } => {
            let e = ApiError::bad_request(
                "live.opus takes one request per connection: the stream never ends, so a \
                 request pipelined after it could never be answered",
            )
            .with_header(axum::http::header::CONNECTION, "close");
            refuse(tcp, http10, e.into_response()).await;
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

/// Admit a live.opus listener (as [`crate::streams::live`] does) and hand it to its space's
/// fan-out, or refuse it.
async fn serve_live(
    app: &AppState,
    tcp: TcpStream,
    peer: SocketAddr,
    live: head::Live,
    guard: ConnGuard,
) {
    let client = match &live.forwarded_for {
        Some(xff) => {
            let mut h = axum::http::HeaderMap::new();
            if let Ok(v) = axum::http::HeaderValue::from_str(xff) {
                h.insert("x-forwarded-for", v);
            }
            crate::client_addr::client_ip(&app.cfg.trusted_proxies, peer, &h)
        }
        None => peer.ip().to_canonical(),
    };
    if let Err(r) = app.guard.check_entry(peer.ip(), client) {
        app.metrics.refused(r.reason, crate::refusal::Class::Join);
        let resp = r
            .header(axum::http::header::CONNECTION, "close")
            .into_response();
        return refuse(tcp, live.http10, resp).await;
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

/// Answer `resp` (a refusal) exactly as hyper would, then close.
async fn refuse(mut tcp: TcpStream, http10: bool, resp: axum::response::Response) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let Ok(body) = axum::body::to_bytes(resp.into_body(), MAX_REFUSAL_BODY).await else {
        return;
    };
    let bytes = response::whole(http10, status, &headers, &body);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        tcp.write_all(&bytes).await?;
        tcp.shutdown().await
    })
    .await;
}
