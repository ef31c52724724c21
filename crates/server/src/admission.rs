//! Admission of listeners to this node: the listener cap and what it turned away.
//!
//! A node serves at most `max_listeners` live.opus listeners (the open-file limit minus a reserve
//! for control traffic, so the audience can never take the descriptors the host and speakers
//! need). Past the cap a new listener gets `503` with a jittered `Retry-After` and a `Link` to the
//! space's HLS playlist (which edges and CDNs serve). Each space counts whom it turned away in
//! the last minute, so its host sees the room is under load.

use std::time::{SystemTime, UNIX_EPOCH};

/// Events in the last 60 seconds, in one-second buckets (sans-IO: time is an argument).
#[derive(Debug)]
pub struct LastMinute {
    buckets: [u32; 60],
    /// The second the newest bucket stands for.
    at: u64,
}

impl Default for LastMinute {
    fn default() -> Self {
        LastMinute {
            buckets: [0; 60],
            at: 0,
        }
    }
}

impl LastMinute {
    /// Counts one event at `now_s` (Unix seconds).
    pub fn add(&mut self, now_s: u64) {
        self.advance(now_s);
        let i = (now_s % 60) as usize;
        self.buckets[i] = self.buckets[i].saturating_add(1);
    }

    /// Events in the 60 seconds up to `now_s`.
    pub fn sum(&mut self, now_s: u64) -> u64 {
        self.advance(now_s);
        self.buckets.iter().map(|&b| b as u64).sum()
    }

    fn advance(&mut self, now_s: u64) {
        if now_s <= self.at {
            return;
        }
        let gap = (now_s - self.at).min(60);
        for k in 1..=gap {
            self.buckets[((self.at + k) % 60) as usize] = 0;
        }
        self.at = now_s;
    }
}

/// Unix seconds now.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds a refused listener should wait: 2 to 6, at random, so that a crowd turned away
/// together does not come back together.
pub fn retry_after_s() -> u64 {
    2 + rand::random::<u64>() % 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_minute_only() {
        let mut m = LastMinute::default();
        m.add(1000);
        m.add(1000);
        m.add(1030);
        assert_eq!(m.sum(1030), 3);
        assert_eq!(m.sum(1059), 3);
        assert_eq!(m.sum(1060), 1, "the two at 1000 are a minute old");
        assert_eq!(m.sum(1090), 0);
        m.add(5000);
        assert_eq!(m.sum(5000), 1, "a long gap clears every bucket");
        // A clock that steps back does not lose or double-count.
        m.add(4990);
        assert_eq!(m.sum(5000), 2);
    }

    #[test]
    fn retry_after_is_jittered_within_bounds() {
        let seen: std::collections::BTreeSet<u64> = (0..500).map(|_| retry_after_s()).collect();
        assert!(seen.iter().all(|s| (2..=6).contains(s)));
        assert!(seen.len() > 1);
    }
}
