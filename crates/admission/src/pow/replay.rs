//! The replay set: each solved ticket is accepted once.
//!
//! A ticket is only accepted in its challenge's window and the next, so two generations are
//! enough: one per window that can still be presented. A generation is replaced (and its memory
//! freed) when a newer window needs its slot. Each generation holds at most
//! [`MAX_PER_WINDOW`] tickets; past that, new tickets of that window are refused (the caller
//! answers "overloaded, retry in the next window") rather than letting memory grow with the
//! attack.
//!
//! Keys are 64 bits of the ticket's SHA-256: already uniformly random, so they are used as
//! their own hash. The set is split in [`SHARDS`] independently locked shards so concurrent
//! checks rarely meet on a lock; each lock is held for one hash-set insert.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use parking_lot::Mutex;

use super::ticket::WINDOW_S;

/// Tickets remembered per window on one node: 2^19 (about 8,700 joins a second sustained over a
/// whole window, more than a node admits). A full generation is about 9 MB (8-byte keys at
/// hashbrown's load factor), so the set never exceeds about 18 MB whatever the attack.
pub const MAX_PER_WINDOW: usize = 1 << 19;

/// Independently locked shards.
pub const SHARDS: usize = 16;

const PER_SHARD: usize = MAX_PER_WINDOW / SHARDS;

/// The result of presenting a solved ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time: accepted (and now remembered).
    Fresh,
    /// Already accepted once.
    Reused,
    /// The window's share of memory is used up.
    Full,
}

/// A hasher that passes a random `u64` through.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in, to stay correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Keys = HashSet<u64, BuildHasherDefault<Identity>>;

#[derive(Default)]
struct Generation {
    window: u64,
    keys: Keys,
}

#[derive(Default)]
struct Shard {
    gens: [Generation; 2],
}

/// The set.
pub struct Replay {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Replay {
    fn default() -> Self {
        Replay {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Replay {
    /// Presents ticket `key` of window `window`, `current` being the window of now (the caller
    /// has checked that `window` is `current` or the one before).
    pub fn present(&self, window: u64, key: u64, current: u64) -> Seen {
        // The high bits pick the shard; hashbrown uses the low ones for buckets.
        let shard = (key >> 60) as usize % SHARDS;
        let mut s = self.shards[shard].lock();
        let slot = match s.gens.iter().position(|g| g.window == window) {
            Some(i) => i,
            None => {
                // The slot of a window that can no longer be presented (or the older one).
                let i = usize::from(s.gens[0].window > s.gens[1].window);
                if s.gens[i].window + WINDOW_S >= current && s.gens[i].window != 0 {
                    // Both slots hold live windows: `window` is older than both (clock
                    // stepped back); refuse rather than forget a live generation.
                    return Seen::Full;
                }
                s.gens[i] = Generation {
                    window,
                    keys: Keys::default(),
                };
                i
            }
        };
        let keys = &mut s.gens[slot].keys;
        if keys.contains(&key) {
            Seen::Reused
        } else if keys.len() >= PER_SHARD {
            Seen::Full
        } else {
            keys.insert(key);
            Seen::Fresh
        }
    }

    /// Tickets remembered now (for tests and status).
    pub fn remembered(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().gens.iter().map(|g| g.keys.len()).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1_700_000_000 - 1_700_000_000 % WINDOW_S;

    #[test]
    fn once_per_ticket() {
        let r = Replay::default();
        assert_eq!(r.present(W, 42, W), Seen::Fresh);
        assert_eq!(r.present(W, 42, W), Seen::Reused);
        assert_eq!(r.present(W, 43, W), Seen::Fresh);
        // Still remembered in the next window (a ticket is valid there too).
        assert_eq!(r.present(W, 42, W + WINDOW_S), Seen::Reused);
    }

    #[test]
    fn old_generations_are_dropped() {
        let r = Replay::default();
        let key = |w: u64, k: u64| (w + k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for w in [W, W + WINDOW_S, W + 2 * WINDOW_S] {
            for k in 0..1000 {
                assert_eq!(r.present(w, key(w, k), w), Seen::Fresh);
            }
        }
        // Two windows are remembered, the first one is forgotten.
        assert_eq!(r.remembered(), 2000);
        let w = W + 2 * WINDOW_S;
        assert_eq!(r.present(w, key(w, 7), w), Seen::Reused);
    }

    #[test]
    fn bounded() {
        let r = Replay::default();
        let mut full = 0;
        // Keys spread over every shard.
        for k in 0..(MAX_PER_WINDOW as u64 + 1000) {
            let key = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            if r.present(W, key, W) == Seen::Full {
                full += 1;
            }
        }
        assert!(r.remembered() <= MAX_PER_WINDOW);
        assert!(full >= 1000);
    }
}
