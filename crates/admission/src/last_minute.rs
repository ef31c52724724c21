//! Events in the last minute, in one-second buckets: whom a space turned away, who entered the
//! waiting room (sans-IO: time is an argument).

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
        self.add_n(now_s, 1);
    }

    /// Counts `n` events at `now_s`.
    pub fn add_n(&mut self, now_s: u64, n: u64) {
        self.advance(now_s);
        let i = (now_s % 60) as usize;
        self.buckets[i] = self.buckets[i].saturating_add(n.min(u32::MAX as u64) as u32);
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
}
