//! One fan-out writer: a task serving up to a few hundred lean listeners of a space.
//!
//! It waits for the next page, a new listener, a full socket becoming writable again, or (once
//! the stream has ended) the drain deadline. Each new page is written to every listener in one
//! pass of nonblocking writes; only listeners with something left to write cost a system call.

use std::future::poll_fn;
use std::io::{ErrorKind, IoSlice};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Join;
use super::window::{Cursor, Fill, Window};
use crate::live::ListenerGuard;
use crate::live::{LivePage, LiveStream, chunk_frame};
use tribune_metrics::Metrics;
use tribune_net::conn_limit::ConnGuard;
use tribune_net::response::{self, Framing};

/// Slices per write: a joining listener's head and a second of burst at 200 ms pages go out in
/// one system call.
const MAX_IOV: usize = 8;

/// A lean listener.
struct Conn {
    tcp: TcpStream,
    cur: Cursor,
    /// Its socket was full; it waits for writability.
    blocked: bool,
    _guard: ListenerGuard,
    _slot: ConnGuard,
}

/// Why a listener leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// The stream ended and it has everything.
    Done,
    /// It fell out of the window.
    Slow,
    /// Its connection broke or was closed.
    Failed,
}

/// What one write pass did for a listener.
enum Pumped {
    Caught,
    Blocked,
    Gone(Gone),
}

/// The response head and header pages for listeners that start in one second.
struct Pre {
    second: u64,
    bytes: Bytes,
}

/// A writer task's state.
pub(super) struct Shard {
    window: Window,
    conns: Vec<Conn>,
    /// Listeners waiting for writability.
    blocked: usize,
    fields: Bytes,
    stream: Arc<LiveStream>,
    metrics: Arc<Metrics>,
    load: Arc<AtomicUsize>,
    drain: Duration,
    /// The last head made, for HTTP/1.1 and for HTTP/1.0 listeners.
    pre: [Option<Pre>; 2],
}

impl Shard {
    pub(super) fn new(
        window: Window,
        fields: Bytes,
        stream: Arc<LiveStream>,
        metrics: Arc<Metrics>,
        load: Arc<AtomicUsize>,
        drain: Duration,
    ) -> Shard {
        Shard {
            window,
            conns: Vec::new(),
            blocked: 0,
            fields,
            stream,
            metrics,
            load,
            drain,
            pre: [None, None],
        }
    }

    /// Serve listeners from `inbox` with the pages from `pages` until the stream has ended and
    /// every listener is gone.
    pub(super) async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Join>,
        mut pages: broadcast::Receiver<LivePage>,
    ) {
        let mut drain_until: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                page = pages.recv(), if !self.window.is_closed() => match page {
                    Ok(page) => {
                        self.window.push(page);
                        self.write_all();
                    }
                    Err(RecvError::Lagged(_)) => {
                        // This task fell a whole window behind (the runtime is overloaded):
                        // its listeners missed pages, so they go, as slow listeners do. The
                        // next page is ready at once (biased), so nobody joins before it.
                        self.drop_all(Gone::Slow);
                        self.window.reset();
                    }
                    Err(RecvError::Closed) => {
                        self.window.close();
                        drain_until = Some(Instant::now() + self.drain);
                        self.write_all();
                    }
                },
                Some(join) = inbox.recv() => self.add(join),
                () = poll_fn(|cx| self.poll_blocked(cx)), if self.blocked > 0 => self.write_all(),
                () = tokio::time::sleep_until(drain_until.unwrap_or_else(Instant::now)),
                    if drain_until.is_some() => self.drop_all(Gone::Slow),
            }
            if self.window.is_closed() && self.conns.is_empty() {
                // No new listener from now on; serve any already on its way, then stop.
                inbox.close();
                while let Ok(join) = inbox.try_recv() {
                    self.add(join);
                }
                if self.conns.is_empty() {
                    return;
                }
            }
        }
    }

    /// A new listener starts with its head, header pages and burst, written at once.
    fn add(&mut self, join: Join) {
        let start = self.window.start();
        let pre = self.pre(join.http10);
        let cur = self.window.cursor(pre, start, !join.http10);
        self.conns.push(Conn {
            tcp: join.tcp,
            cur,
            blocked: false,
            _guard: join.guard,
            _slot: join.slot,
        });
        let i = self.conns.len() - 1;
        let mut sent = 0;
        match pump(&self.window, &mut self.conns[i], &mut sent) {
            Pumped::Caught => {}
            Pumped::Blocked => self.block(i),
            Pumped::Gone(why) => self.remove(i, why),
        }
        self.count_sent(sent);
    }

    /// The response head and the header pages (shared by every listener that starts within the
    /// same second: the `date` is per second).
    fn pre(&mut self, http10: bool) -> Bytes {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let slot = &mut self.pre[usize::from(http10)];
        if let Some(p) = slot
            && p.second == second
        {
            return p.bytes.clone();
        }
        let framing = if http10 {
            Framing::Close
        } else {
            Framing::Chunked
        };
        let date = response::date(now);
        let mut out = response::head(http10, StatusCode::OK, &self.fields, framing, &date);
        let pages = self.stream.header_pages();
        if http10 {
            out.extend_from_slice(&pages);
        } else {
            out.extend_from_slice(&chunk_frame(&pages));
        }
        let bytes = Bytes::from(out);
        *slot = Some(Pre {
            second,
            bytes: bytes.clone(),
        });
        bytes
    }

    /// One pass: every listener that can take bytes gets what it is missing; a full one that
    /// has fallen out of the window goes.
    fn write_all(&mut self) {
        let mut sent = 0;
        let mut i = 0;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            let pumped = if c.blocked {
                if self.window.is_behind(&c.cur) {
                    Pumped::Gone(Gone::Slow)
                } else {
                    Pumped::Blocked
                }
            } else {
                pump(&self.window, c, &mut sent)
            };
            match pumped {
                Pumped::Caught => i += 1,
                Pumped::Blocked => {
                    self.block(i);
                    i += 1;
                }
                // `remove` moves the last listener to `i`: look at `i` again.
                Pumped::Gone(why) => self.remove(i, why),
            }
        }
        self.count_sent(sent);
    }

    fn block(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.blocked {
            c.blocked = true;
            self.blocked += 1;
        }
    }

    /// Ready once any full socket can take bytes again (each registers this task's waker).
    fn poll_blocked(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut ready = false;
        for c in self.conns.iter_mut().filter(|c| c.blocked) {
            if c.tcp.poll_write_ready(cx).is_ready() {
                c.blocked = false;
                self.blocked -= 1;
                ready = true;
            }
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn remove(&mut self, i: usize, why: Gone) {
        let c = self.conns.swap_remove(i);
        if c.blocked {
            self.blocked -= 1;
        }
        self.load.fetch_sub(1, Relaxed);
        match why {
            Gone::Slow => {
                self.metrics.listeners_dropped_slow.fetch_add(1, Relaxed);
            }
            Gone::Done => close_gently(&c.tcp),
            Gone::Failed => {}
        }
    }

    fn drop_all(&mut self, why: Gone) {
        while !self.conns.is_empty() {
            self.remove(self.conns.len() - 1, why);
        }
    }

    fn count_sent(&self, sent: u64) {
        if sent > 0 {
            self.metrics.listener_bytes_sent.fetch_add(sent, Relaxed);
        }
    }
}

/// Write what `c` is missing until it is caught up, its socket is full, or it is gone.
fn pump(window: &Window, c: &mut Conn, sent: &mut u64) -> Pumped {
    loop {
        let written = {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = match window.fill(&c.cur, &mut iov) {
                Fill::Write(n) => n,
                Fill::Idle => return Pumped::Caught,
                Fill::Done => return Pumped::Gone(Gone::Done),
                Fill::Behind => return Pumped::Gone(Gone::Slow),
            };
            if n == 1 {
                c.tcp.try_write(&iov[0])
            } else {
                c.tcp.try_write_vectored(&iov[..n])
            }
        };
        match written {
            Ok(0) => return Pumped::Gone(Gone::Failed),
            Ok(k) => {
                *sent += k as u64;
                window.advance(&mut c.cur, k);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Pumped::Blocked,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Pumped::Gone(Gone::Failed),
        }
    }
}

/// Read (and discard) what the client sent, so that closing sends a FIN, not a reset that could
/// destroy the end of the stream before the client reads it.
fn close_gently(tcp: &TcpStream) {
    let mut scratch = [0u8; 512];
    for _ in 0..8 {
        match tcp.try_read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener's own state stays a few words (the pages it has left are shared) plus its
    /// audience connection slot (32 bytes, inline: no allocation of its own): this is what makes
    /// a listener cost well under the 2 KiB goal.
    #[test]
    fn a_listener_is_small() {
        assert!(
            std::mem::size_of::<Conn>() <= 160,
            "{}",
            std::mem::size_of::<Conn>()
        );
    }
}
