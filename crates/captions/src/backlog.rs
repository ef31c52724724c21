//! The chunks waiting for the engine, bounded by how much audio they hold: when the engine falls
//! behind, the oldest audio is dropped (and counted), so captions stay near the present instead
//! of drifting minutes late. The gathering thread pushes, the engine thread waits and pops.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::TICK_MS;
use crate::chunker::Chunk;

/// Chunks waiting, at most `max_ms` of audio in all.
pub struct Backlog {
    max_ms: u64,
    inner: Mutex<Inner>,
    ready: Condvar,
}

#[derive(Default)]
struct Inner {
    chunks: VecDeque<Chunk>,
    ms: u64,
    closed: bool,
}

fn ms(c: &Chunk) -> u64 {
    (c.end_tick - c.start_tick) * TICK_MS
}

impl Backlog {
    pub fn new(max_ms: u64) -> Self {
        Backlog {
            max_ms,
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
        }
    }

    /// Queues `c`; returns the chunks dropped to make room (oldest first). A chunk longer than
    /// the whole backlog is kept alone.
    pub fn push(&self, c: Chunk) -> Vec<Chunk> {
        let mut dropped = Vec::new();
        {
            let mut g = self.inner.lock();
            g.ms += ms(&c);
            g.chunks.push_back(c);
            while g.ms > self.max_ms && g.chunks.len() > 1 {
                if let Some(old) = g.chunks.pop_front() {
                    g.ms -= ms(&old);
                    dropped.push(old);
                }
            }
        }
        self.ready.notify_one();
        dropped
    }

    /// The oldest chunk; waits up to `wait` for one. None when closed and empty, or on timeout.
    pub fn pop(&self, wait: Duration) -> Option<Chunk> {
        let mut g = self.inner.lock();
        if g.chunks.is_empty() && !g.closed {
            let _ = self.ready.wait_for(&mut g, wait);
        }
        let c = g.chunks.pop_front()?;
        g.ms -= ms(&c);
        Some(c)
    }

    /// No more chunks will come: the engine finishes what is queued, then stops.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Audio waiting, ms.
    pub fn queued_ms(&self) -> u64 {
        self.inner.lock().ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start: u64, ticks: u64) -> Chunk {
        Chunk {
            start_tick: start,
            end_tick: start + ticks,
            samples: Vec::new(),
            start_unix_ms: 0,
        }
    }

    #[test]
    fn drops_the_oldest_beyond_its_bound() {
        let b = Backlog::new(10_000);
        assert!(b.push(chunk(0, 200)).is_empty()); // 4 s
        assert!(b.push(chunk(300, 200)).is_empty()); // 8 s
        let dropped = b.push(chunk(600, 200)); // 12 s > 10 s: the first goes
        assert_eq!(
            dropped.iter().map(|c| c.start_tick).collect::<Vec<_>>(),
            vec![0]
        );
        assert_eq!(b.queued_ms(), 8_000);
        assert_eq!(b.pop(Duration::ZERO).map(|c| c.start_tick), Some(300));
        assert_eq!(b.pop(Duration::ZERO).map(|c| c.start_tick), Some(600));
        assert_eq!(b.pop(Duration::ZERO), None);
        // Longer than the bound on its own: kept.
        assert!(b.push(chunk(900, 1000)).is_empty());
        assert_eq!(b.queued_ms(), 20_000);
    }

    #[test]
    fn closing_wakes_the_engine_and_lets_it_finish() {
        let b = std::sync::Arc::new(Backlog::new(10_000));
        b.push(chunk(0, 10));
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            let mut n = 0;
            while b2.pop(Duration::from_secs(30)).is_some() {
                n += 1;
            }
            n
        });
        b.close();
        assert_eq!(t.join().unwrap(), 1);
    }
}
