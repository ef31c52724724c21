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

pub mod head;
pub mod response;
pub mod rewind;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::response::IntoResponse;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::error::ApiError;
pub use rewind::Rewind;

/// Connections for axum waiting to be taken. axum's accept loop only spawns a task per
/// connection, so this stays nearly empty.
const READY_QUEUE: usize = 1024;

/// Longest a refusal may take to write (it fits in any socket buffer; this bounds a client that
/// reads nothing).
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest refusal body read back from the error type (they are a few hundred bytes).
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// The plain listener for `axum::serve`: `accept` yields the connections that are not lean
/// listeners, with their first bytes replayed.
pub struct Listener {
    ready: mpsc::Receiver<(Rewind<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Start accepting on `tcp`.
    pub fn spawn(tcp: TcpListener, app: AppState) -> std::io::Result<Listener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accept_loop = tokio::spawn(accept_loop(tcp, app, tx));
        Ok(Listener {
            ready,
            local,
            accept_loop,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl axum::serve::Listener for Listener {
    type Io = Rewind<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    app: AppState,
    ready: mpsc::Sender<(Rewind<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = ready.closed() => return,
            r = tcp.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    crate::tls::accept_error(e).await;
                    continue;
                }
            },
        };
        tokio::spawn(route(stream, peer, app.clone(), ready.clone()));
    }
}

/// Read the head and send the connection on its way.
async fn route(
    mut tcp: TcpStream,
    peer: SocketAddr,
    app: AppState,
    ready: mpsc::Sender<(Rewind<TcpStream>, SocketAddr)>,
) {
    let mut buf = vec![0u8; head::MAX_HEAD];
    let read = tokio::time::timeout(app.cfg.head_timeout, read_head(&mut tcp, &mut buf)).await;
    let verdict = match read {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => return,
        Err(_) => {
            app.metrics.http_head_timeouts.fetch_add(1, Relaxed);
            tracing::debug!(%peer, "no request head in time");
            return;
        }
    };
    match verdict {
        head::Verdict::Live(live) => serve_live(&app, tcp, live).await,
        head::Verdict::Pipelined { http10 } => {
            let e = ApiError::bad_request(
                "live.opus takes one request per connection: the stream never ends, so a \
                 request pipelined after it could never be answered",
            )
            .with_header(axum::http::header::CONNECTION, "close");
            refuse(tcp, http10, e).await;
        }
        // `Partial` only comes back at the end of the input: hyper answers what there is.
        head::Verdict::Other | head::Verdict::Partial => {
            let io = Rewind::new(tcp, Bytes::from(buf));
            // An error means the server is shutting down: the connection just closes.
            let _ = ready.send((io, peer)).await;
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
async fn serve_live(app: &AppState, tcp: TcpStream, live: head::Live) {
    let space = match crate::streams::admit(app, &live.id) {
        Ok(space) => space,
        Err(e) => return refuse(tcp, live.http10, e).await,
    };
    if let Err(tcp) = space.fanout.join(tcp, live.http10) {
        refuse(tcp, live.http10, crate::streams::gone(&live.id)).await;
    }
}

/// Answer `e` exactly as the handler's error would be answered, then close.
async fn refuse(mut tcp: TcpStream, http10: bool, e: ApiError) {
    let resp = e.into_response();
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
