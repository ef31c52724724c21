//! Fan-out of a space's live stream to its lean listeners (the plain-HTTP `live.opus` ones).
//!
//! No task per listener wakes per page. A space's listeners are split into shards of at most
//! `fanout_shard` (256) connections; each shard is one task that holds the recent pages (shared
//! [`bytes::Bytes`], see [`window`]) and, for every new page, walks its listeners and writes to
//! each with a nonblocking `write`. A listener whose socket is full keeps its place (a page
//! index and an offset: no copy, no growing buffer) and is resumed when its socket is writable;
//! one whose next page has left the window (`--slow-listener-ms`) is disconnected. When the
//! space ends, every listener gets the pages left and the end of the body, then its connection
//! closes.
//!
//! A listener costs its socket, a [`window::Cursor`], a guard and its audience connection slot
//! ([`tribune_net::conn_limit::ConnGuard`]): about 150 bytes here (tokio adds its I/O registration),
//! against ~20 KiB for a hyper connection.
//!
//! The kernel's send buffer of each listener socket is fixed at [`send_buffer`] bytes (Linux
//! otherwise grows it up to `tcp_wmem`'s 4 MiB): a listener that stops reading then blocks after
//! about two seconds of audio instead of minutes, so it is found slow and dropped in time, and
//! it holds little kernel memory meanwhile.

mod shard;
pub mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::live::ListenerGuard;
use crate::live::LiveStream;
use tribune_metrics::Metrics;
use tribune_net::conn_limit::ConnGuard;

/// Audio a listener socket's send buffer holds: enough for the burst a new listener gets (one
/// second by default) and some jitter, little enough that a stalled listener blocks soon.
const SEND_BUFFER_AUDIO: Duration = Duration::from_secs(2);

/// Smallest send buffer set (Linux doubles the value for its bookkeeping).
const MIN_SEND_BUFFER: usize = 16 * 1024;

/// `SO_SNDBUF` for listeners of a `bitrate` b/s stream: [`SEND_BUFFER_AUDIO`] of it, at least
/// [`MIN_SEND_BUFFER`].
pub fn send_buffer(bitrate: u32) -> usize {
    let bytes = bitrate as u64 / 8 * SEND_BUFFER_AUDIO.as_secs();
    (bytes as usize).max(MIN_SEND_BUFFER)
}

/// A connection to hand to a shard: its response head is not written yet.
struct Join {
    tcp: TcpStream,
    http10: bool,
    guard: ListenerGuard,
    /// Its audience connection slot, given back when the listener goes.
    slot: ConnGuard,
}

/// A running shard, as the fan-out sees it.
struct Handle {
    inbox: mpsc::UnboundedSender<Join>,
    /// Connections given to it and not gone yet.
    load: Arc<AtomicUsize>,
}

/// The lean listeners of one space.
pub struct Fanout {
    stream: Arc<LiveStream>,
    metrics: Arc<Metrics>,
    /// The response's header lines (see [`tribune_net::response::fields`]).
    fields: Bytes,
    shard_size: usize,
    /// How long listeners may take to get the rest once the stream has ended.
    drain: Duration,
    /// `SO_SNDBUF` of each listener socket.
    sndbuf: usize,
    shards: Mutex<Vec<Handle>>,
}

impl Fanout {
    /// Fan `stream` (of `bitrate` b/s) out, answering with the header lines `fields`, at most
    /// `shard_size` listeners per writer task; once the stream ends, listeners have `drain` (the
    /// slow-listener limit) to take what is left.
    pub fn new(
        stream: Arc<LiveStream>,
        metrics: Arc<Metrics>,
        fields: Bytes,
        bitrate: u32,
        shard_size: usize,
        drain: Duration,
    ) -> Fanout {
        Fanout {
            stream,
            metrics,
            fields,
            shard_size: shard_size.max(1),
            drain,
            sndbuf: send_buffer(bitrate),
            shards: Mutex::new(Vec::new()),
        }
    }

    /// Take a listener whose request was admitted: its response head, header pages, burst and
    /// every page after are written by a shard; `slot` is held as long as it is. Gives the
    /// connection back if the stream has ended (answer `410`). Must be called on the tokio
    /// runtime (it may start a shard).
    pub fn join(
        &self,
        tcp: TcpStream,
        http10: bool,
        slot: ConnGuard,
    ) -> Result<(), (TcpStream, ConnGuard)> {
        if self.stream.is_closed() {
            return Err((tcp, slot));
        }
        // Best effort: a socket that refuses keeps the kernel's default.
        let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(self.sndbuf);
        let mut join = Join {
            tcp,
            http10,
            guard: ListenerGuard::count_in(self.stream.clone(), self.metrics.clone()),
            slot,
        };
        let mut shards = self.shards.lock();
        shards.retain(|h| !h.inbox.is_closed());
        for h in shards.iter() {
            if h.load.load(Relaxed) >= self.shard_size {
                continue;
            }
            h.load.fetch_add(1, Relaxed);
            match h.inbox.send(join) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(back)) => {
                    h.load.fetch_sub(1, Relaxed);
                    join = back;
                }
            }
        }
        let Some(sub) = self.stream.subscribe() else {
            return Err((join.tcp, join.slot));
        };
        let (inbox, rx) = mpsc::unbounded_channel();
        let load = Arc::new(AtomicUsize::new(1));
        let window =
            window::Window::new(self.stream.capacity(), self.stream.burst_pages(), sub.burst);
        let shard = shard::Shard::new(
            window,
            self.fields.clone(),
            self.stream.clone(),
            self.metrics.clone(),
            load.clone(),
            self.drain,
        );
        tokio::spawn(shard.run(rx, sub.rx));
        // A fresh channel whose receiver is alive: this cannot fail.
        let _ = inbox.send(join);
        shards.push(Handle { inbox, load });
        Ok(())
    }

    /// Resolves once every shard has finished (after the stream ended and each listener got
    /// the end of its body, or was dropped).
    pub async fn drained(&self) {
        let inboxes: Vec<_> = self.shards.lock().iter().map(|h| h.inbox.clone()).collect();
        for inbox in inboxes {
            inbox.closed().await;
        }
    }
}
