//! What the simulated clients report: live counters (atomics, read once a second for the
//! progress line and the timeline), each client's outcome when it stops, and a worker's
//! mergeable totals (written as JSON by a worker process, summed by the parent).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Error kinds, as keys of the report's `errors`.
pub mod kind {
    /// The connection was refused (nothing listening).
    pub const CONNECT_REFUSED: &str = "connect_refused";
    /// Connecting failed otherwise (e.g. no local port left).
    pub const CONNECT: &str = "connect_error";
    /// No audio within the join timeout.
    pub const TIMEOUT: &str = "timeout";
    /// A joined listener got nothing for the join timeout.
    pub const STALLED: &str = "stalled";
    /// `503 Service Unavailable` (counted per answer, retried or not).
    pub const HTTP_503: &str = "http_503";
    /// Reset or aborted by the peer.
    pub const RESET: &str = "reset";
    /// The server ended the stream before the run did.
    pub const CLOSED: &str = "closed";
    /// Not HTTP, not chunked as announced, not a playlist.
    pub const PROTOCOL: &str = "protocol";
    /// Any other IO error.
    pub const IO: &str = "io";
    /// The load generator itself is out of file descriptors (EMFILE/ENFILE): its limit, not
    /// the server's answer.
    pub const FD_LIMIT: &str = "loadgen_fd_limit";

    /// The key of another HTTP status.
    pub fn http(status: u16) -> String {
        if status == 503 {
            HTTP_503.to_owned()
        } else {
            format!("http_{status}")
        }
    }

    /// The kind of a failure to read a response head.
    pub fn head(e: &crate::net::HeadError) -> &'static str {
        match e {
            crate::net::HeadError::Io(e) => io(e),
            crate::net::HeadError::Closed => CLOSED,
            crate::net::HeadError::Malformed(_) => PROTOCOL,
        }
    }

    /// The kind of an IO error.
    pub fn io(e: &std::io::Error) -> &'static str {
        use std::io::ErrorKind as K;
        // EMFILE, ENFILE (Linux).
        if matches!(e.raw_os_error(), Some(24 | 23)) {
            return FD_LIMIT;
        }
        match e.kind() {
            K::ConnectionRefused => CONNECT_REFUSED,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => RESET,
            K::TimedOut => TIMEOUT,
            K::UnexpectedEof => CLOSED,
            K::AddrNotAvailable | K::AddrInUse => CONNECT,
            _ => IO,
        }
    }
}

/// Counters the clients update as they go.
#[derive(Debug, Default)]
pub struct Live {
    /// Listeners connecting or waiting for their first audio.
    pub joining: AtomicI64,
    /// Listeners receiving audio now.
    pub connected: AtomicI64,
    /// Listeners that got audio.
    pub joined: AtomicU64,
    /// Listeners that saw a gap.
    pub gapped: AtomicU64,
    /// Errors of any kind.
    pub errors: AtomicU64,
    /// Body bytes received by listeners.
    pub bytes: AtomicU64,
    /// Event-stream subscribers streaming now.
    pub subscribed: AtomicI64,
}

impl Live {
    /// The counters now.
    pub fn snapshot(&self, t: u64) -> Snapshot {
        Snapshot {
            t,
            joining: self.joining.load(Relaxed).max(0) as u64,
            connected: self.connected.load(Relaxed).max(0) as u64,
            joined: self.joined.load(Relaxed),
            gapped: self.gapped.load(Relaxed),
            errors: self.errors.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            subscribed: self.subscribed.load(Relaxed).max(0) as u64,
        }
    }
}

/// A gauge held up while this lives.
pub struct Up<'a>(&'a AtomicI64);

impl<'a> Up<'a> {
    /// Counts one more in `gauge` until dropped.
    pub fn new(gauge: &'a AtomicI64) -> Up<'a> {
        gauge.fetch_add(1, Relaxed);
        Up(gauge)
    }
}

impl Drop for Up<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The counters at second `t` of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Seconds since the start.
    pub t: u64,
    /// Listeners joining.
    pub joining: u64,
    /// Listeners receiving.
    pub connected: u64,
    /// Listeners joined so far.
    pub joined: u64,
    /// Listeners gapped so far.
    pub gapped: u64,
    /// Errors so far.
    pub errors: u64,
    /// Bytes so far.
    pub bytes: u64,
    /// Subscribers streaming.
    pub subscribed: u64,
}

impl Snapshot {
    /// Adds another worker's counters (same `t`).
    pub fn add(&mut self, o: &Snapshot) {
        self.joining += o.joining;
        self.connected += o.connected;
        self.joined += o.joined;
        self.gapped += o.gapped;
        self.errors += o.errors;
        self.bytes += o.bytes;
        self.subscribed += o.subscribed;
    }
}

/// How one listener's run ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Connect start (of the first attempt) to the first audio byte.
    pub latency: Option<Duration>,
    /// When it joined, since the run's start.
    pub joined_at: Option<Duration>,
    /// Still receiving when the run ended.
    pub held: bool,
    /// Saw a discontinuity.
    pub gapped: bool,
    /// Errors by kind.
    pub errors: Vec<(String, u64)>,
    /// Body bytes.
    pub bytes: u64,
    /// Ogg pages, or HLS parts and segments.
    pub pages: u64,
    /// HTTP requests made (an Ogg connection is one; HLS playlists, parts and segments).
    pub requests: u64,
}

impl Outcome {
    /// Counts an error.
    pub fn error(&mut self, kind: impl Into<String>, live: &Live) {
        self.errors_of(kind, 1, live);
    }

    /// Counts `n` errors of one kind.
    pub fn errors_of(&mut self, kind: impl Into<String>, n: u64, live: &Live) {
        let kind = kind.into();
        live.errors.fetch_add(n, Relaxed);
        match self.errors.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, count)) => *count += n,
            None => self.errors.push((kind, n)),
        }
    }
}

/// Listener totals of one protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listeners {
    /// Listeners started.
    pub target: u64,
    /// Still receiving at the end.
    pub held: u64,
    /// Got audio within the join timeout.
    pub joined: u64,
    /// Did not.
    pub never_joined: u64,
    /// Saw a discontinuity.
    pub gapped: u64,
}

impl Listeners {
    /// Adds another count.
    pub fn add(&mut self, o: &Listeners) {
        self.target += o.target;
        self.held += o.held;
        self.joined += o.joined;
        self.never_joined += o.never_joined;
        self.gapped += o.gapped;
    }
}

/// Event-stream subscriber totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribers {
    /// Subscribers started.
    pub target: u64,
    /// Got their first event.
    pub subscribed: u64,
    /// Still streaming at the end.
    pub held: u64,
    /// Events received (snapshots included).
    pub events: u64,
    /// Event ids skipped (an id other than the previous plus one).
    pub missing_ids: u64,
    /// Subscribers that missed any id.
    pub gapped: u64,
}

impl Subscribers {
    /// Adds another count.
    pub fn add(&mut self, o: &Subscribers) {
        self.target += o.target;
        self.subscribed += o.subscribed;
        self.held += o.held;
        self.events += o.events;
        self.missing_ids += o.missing_ids;
        self.gapped += o.gapped;
    }
}

/// One worker's results: everything the report is made of, except the server's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Ogg listeners.
    pub ogg: Listeners,
    /// HLS listeners.
    pub hls: Listeners,
    /// Event-stream subscribers.
    pub events: Subscribers,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Body bytes received by listeners.
    pub bytes: u64,
    /// Ogg pages, HLS parts and segments received.
    pub pages: u64,
    /// HTTP requests made by listeners.
    pub requests: u64,
    /// Every join: (ms since the start when it joined, join latency in µs).
    pub joins: Vec<(u32, u32)>,
    /// The counters once a second.
    pub timeline: Vec<Snapshot>,
}

impl Totals {
    /// Books one listener's outcome.
    pub fn book(&mut self, hls: bool, o: Outcome) {
        let l = if hls { &mut self.hls } else { &mut self.ogg };
        l.target += 1;
        l.held += u64::from(o.held);
        l.gapped += u64::from(o.gapped);
        match (o.latency, o.joined_at) {
            (Some(lat), Some(at)) => {
                l.joined += 1;
                let ms = u32::try_from(at.as_millis()).unwrap_or(u32::MAX);
                let us = u32::try_from(lat.as_micros()).unwrap_or(u32::MAX);
                self.joins.push((ms, us));
            }
            _ => l.never_joined += 1,
        }
        for (k, n) in o.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.bytes += o.bytes;
        self.pages += o.pages;
        self.requests += o.requests;
    }

    /// Adds another worker's totals; timelines are summed second by second.
    pub fn merge(&mut self, o: Totals) {
        self.ogg.add(&o.ogg);
        self.hls.add(&o.hls);
        self.events.add(&o.events);
        for (k, n) in o.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.bytes += o.bytes;
        self.pages += o.pages;
        self.requests += o.requests;
        self.joins.extend(o.joins);
        for s in o.timeline {
            match self.timeline.iter_mut().find(|m| m.t == s.t) {
                Some(m) => m.add(&s),
                None => self.timeline.push(s),
            }
        }
        self.timeline.sort_by_key(|s| s.t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_book_and_totals_merge() {
        let live = Live::default();
        let mut a = Totals::default();
        let mut joined = Outcome {
            latency: Some(Duration::from_millis(12)),
            joined_at: Some(Duration::from_millis(1500)),
            held: true,
            bytes: 100,
            pages: 3,
            ..Outcome::default()
        };
        joined.error(kind::HTTP_503, &live);
        joined.error(kind::HTTP_503, &live);
        a.book(false, joined);
        let mut refused = Outcome::default();
        refused.error(kind::CONNECT_REFUSED, &live);
        a.book(true, refused);
        a.timeline.push(Snapshot {
            t: 1,
            connected: 1,
            ..Snapshot::default()
        });
        assert_eq!(live.errors.load(Relaxed), 3);
        assert_eq!((a.ogg.joined, a.ogg.held, a.hls.never_joined), (1, 1, 1));
        assert_eq!(a.joins, vec![(1500, 12_000)]);

        let mut b = a.clone();
        b.timeline.push(Snapshot {
            t: 2,
            connected: 5,
            ..Snapshot::default()
        });
        a.merge(b);
        assert_eq!(a.ogg.target, 2);
        assert_eq!(a.errors["http_503"], 4);
        assert_eq!(a.errors["connect_refused"], 2);
        let connected: Vec<_> = a.timeline.iter().map(|s| (s.t, s.connected)).collect();
        assert_eq!(connected, vec![(1, 2), (2, 5)]);
    }
}
