//! The live event stream of a space: server-sent events, serialized once, shared by everyone.
//!
//! Each event is turned into its SSE frame (`id:`, `event:`, `data:`) exactly once and handed to
//! every subscriber as a reference-counted [`Bytes`]. The hub keeps the last [`RING`] frames so a
//! reconnecting client resumes after its `Last-Event-ID`; one that is too far behind (or new)
//! starts from a fresh snapshot instead. Subscribers read from a bounded broadcast ring: one
//! that falls [`LAG_LIMIT`] frames behind is disconnected (and will resume on reconnect), never
//! buffered without bound.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

/// Frames kept for `Last-Event-ID` resumption (~a minute of busy traffic at a few per second).
pub const RING: usize = 256;

/// Frames a subscriber may fall behind before it is dropped.
pub const LAG_LIMIT: usize = 512;

/// One frame as sent: its id (0 for comments such as keep-alives) and bytes.
#[derive(Clone, Debug)]
pub struct Frame {
    pub id: u64,
    pub bytes: Bytes,
}

struct Inner {
    next_id: u64,
    ring: VecDeque<Frame>,
    tx: Option<broadcast::Sender<Frame>>,
}

/// Called with every frame the hub publishes (keep-alives aside), under the hub's lock, so in
/// order, and with `None` when the stream ends: a cluster node hands them to its Redis writer
/// without waiting.
pub type Tap = Box<dyn Fn(Option<&Frame>) + Send + Sync>;

/// The event hub of one space.
pub struct EventHub {
    inner: Mutex<Inner>,
    tap: std::sync::OnceLock<Tap>,
}

/// Where a new subscriber starts.
pub struct Start {
    /// Frames to send first: the missed frames, or nothing when a snapshot is needed.
    pub backlog: Vec<Frame>,
    /// Whether the caller must send a snapshot first (no resumable `Last-Event-ID`).
    pub needs_snapshot: bool,
    /// Frames to come.
    pub rx: broadcast::Receiver<Frame>,
    /// The id the snapshot stands for (the last id published when subscribing).
    pub at_id: u64,
}

impl Default for EventHub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(LAG_LIMIT);
        EventHub {
            inner: Mutex::new(Inner {
                next_id: 1,
                ring: VecDeque::with_capacity(RING),
                tx: Some(tx),
            }),
            tap: std::sync::OnceLock::new(),
        }
    }
}

/// Encode one SSE frame. `data` must be single-line JSON (serde_json never emits raw newlines).
pub fn frame(id: u64, event: &str, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + event.len() + 32);
    if id > 0 {
        s.push_str("id: ");
        s.push_str(&id.to_string());
        s.push('\n');
    }
    s.push_str("event: ");
    s.push_str(event);
    s.push_str("\ndata: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

impl EventHub {
    /// Publish an event of type `event` whose JSON body is `data`; returns its id.
    pub fn publish<T: Serialize>(&self, event: &str, data: &T) -> u64 {
        let json = match serde_json::to_string(data) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, event, "event not serializable");
                return 0;
            }
        };
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let f = Frame {
            id,
            bytes: frame(id, event, &json),
        };
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(f.clone());
        if let Some(tap) = self.tap.get() {
            tap(Some(&f));
        }
        if let Some(tx) = &inner.tx {
            let _ = tx.send(f);
        }
        id
    }

    /// Hand every frame published from now on to `tap` too (once; a second tap is ignored).
    pub fn set_tap(&self, tap: Tap) {
        let _ = self.tap.set(tap);
    }

    /// Publish a frame made elsewhere, keeping its id (a mirror of another node's hub): frames
    /// at or before the last one held are ignored, so a frame read twice is sent once.
    pub fn relay(&self, f: Frame) {
        let mut inner = self.inner.lock();
        if f.id < inner.next_id {
            return;
        }
        inner.next_id = f.id + 1;
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(f.clone());
        if let Some(tx) = &inner.tx {
            let _ = tx.send(f);
        }
    }

    /// Ids go on after `last` (a takeover continues the earlier owner's numbering, so every
    /// subscriber's `Last-Event-ID` stays meaningful and mirrors keep every new frame).
    pub fn continue_after(&self, last: u64) {
        let mut inner = self.inner.lock();
        inner.next_id = inner.next_id.max(last + 1);
    }

    /// The id of the last frame published, or `None` once the stream has ended.
    pub fn last_id(&self) -> Option<u64> {
        let inner = self.inner.lock();
        inner.tx.as_ref().map(|_| inner.next_id - 1)
    }

    /// Subscribers now (a mirror with none may stop).
    pub fn subscribers(&self) -> usize {
        self.inner
            .lock()
            .tx
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Send a comment line to keep idle connections (and proxies) alive; not kept for resumption.
    pub fn keepalive(&self) {
        let inner = self.inner.lock();
        if let Some(tx) = &inner.tx {
            let _ = tx.send(Frame {
                id: 0,
                bytes: Bytes::from_static(b": keep-alive\n\n"),
            });
        }
    }

    /// Subscribe, resuming after `last_event_id` when the hub still holds what followed it.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Option<Start> {
        let inner = self.inner.lock();
        let tx = inner.tx.as_ref()?;
        let at_id = inner.next_id - 1;
        let oldest = inner.ring.front().map(|f| f.id).unwrap_or(inner.next_id);
        let (backlog, needs_snapshot) = match last_event_id {
            // Resumable: everything after `last` is still in the ring (or nothing was missed).
            Some(last) if last <= at_id && last + 1 >= oldest => (
                inner.ring.iter().filter(|f| f.id > last).cloned().collect(),
                false,
            ),
            _ => (Vec::new(), true),
        };
        Some(Start {
            backlog,
            needs_snapshot,
            rx: tx.subscribe(),
            at_id,
        })
    }

    /// End the stream: subscribers get what is queued, then end of body.
    pub fn close(&self) {
        let mut inner = self.inner.lock();
        if inner.tx.take().is_some()
            && let Some(tap) = self.tap.get()
        {
            tap(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_are_well_formed() {
        let f = frame(7, "state", r#"{"a":1}"#);
        assert_eq!(&f[..], b"id: 7\nevent: state\ndata: {\"a\":1}\n\n");
    }

    #[test]
    fn resume_after_last_event_id() {
        let hub = EventHub::default();
        for i in 0..5 {
            hub.publish("n", &json!({ "i": i }));
        }
        let s = hub.subscribe(Some(3)).unwrap();
        assert!(!s.needs_snapshot);
        assert_eq!(
            s.backlog.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![4, 5]
        );
        let s = hub.subscribe(Some(5)).unwrap();
        assert!(!s.needs_snapshot && s.backlog.is_empty(), "up to date");
        let s = hub.subscribe(None).unwrap();
        assert!(s.needs_snapshot);
        assert_eq!(s.at_id, 5);
    }

    #[test]
    fn too_old_or_future_ids_get_a_snapshot() {
        let hub = EventHub::default();
        for i in 0..(RING + 10) {
            hub.publish("n", &json!({ "i": i }));
        }
        assert!(
            hub.subscribe(Some(2)).unwrap().needs_snapshot,
            "fell out of the ring"
        );
        assert!(
            hub.subscribe(Some(10_000)).unwrap().needs_snapshot,
            "unknown future id"
        );
        let edge = (RING + 10 - RING) as u64; // the id just before the oldest kept
        assert!(!hub.subscribe(Some(edge)).unwrap().needs_snapshot);
    }

    #[test]
    fn every_subscriber_sees_the_same_sequence() {
        let hub = EventHub::default();
        let mut a = hub.subscribe(None).unwrap().rx;
        let mut b = hub.subscribe(None).unwrap().rx;
        for i in 0..20 {
            hub.publish("n", &json!({ "i": i }));
        }
        for _ in 0..20 {
            let (x, y) = (a.try_recv().unwrap(), b.try_recv().unwrap());
            assert_eq!(x.id, y.id);
            assert!(
                x.bytes.as_ptr() == y.bytes.as_ptr(),
                "one serialization, shared"
            );
        }
    }

    #[test]
    fn a_mirror_keeps_the_ids_it_is_given_and_sends_each_once() {
        let owner = EventHub::default();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        owner.set_tap(Box::new(move |f| log.lock().extend(f.cloned())));
        for i in 0..5 {
            owner.publish("n", &json!({ "i": i }));
        }
        let mirror = EventHub::default();
        let mut rx = mirror.subscribe(None).unwrap().rx;
        let frames = seen.lock().clone();
        for f in frames.iter().chain(frames.iter()) {
            mirror.relay(f.clone());
        }
        let got: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| f.id)
            .collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5], "in order, each once");
        let s = mirror.subscribe(Some(3)).unwrap();
        assert!(!s.needs_snapshot);
        assert_eq!(
            s.backlog
                .iter()
                .map(|f| f.bytes.clone())
                .collect::<Vec<_>>(),
            frames[3..]
                .iter()
                .map(|f| f.bytes.clone())
                .collect::<Vec<_>>(),
            "resumes with the owner's bytes"
        );
        assert_eq!(mirror.subscribers(), 2);
    }

    #[test]
    fn a_slow_subscriber_lags_out_and_others_do_not() {
        let hub = EventHub::default();
        let mut slow = hub.subscribe(None).unwrap().rx;
        let mut fast = hub.subscribe(None).unwrap().rx;
        for i in 0..(LAG_LIMIT + 5) {
            hub.publish("n", &json!({ "i": i }));
            assert!(fast.try_recv().is_ok());
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
