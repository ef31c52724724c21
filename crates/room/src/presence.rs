//! A constant-memory count of distinct participants seen in a sliding window.
//!
//! The listener count is "distinct subs seen in the last window" (a `live.opus` connection, a
//! token renewal, a presence beacon). Exact sets would cost memory per listener; this keeps two
//! HyperLogLog++ sketches (precision [`PRECISION`]: 2^14 six-bit registers, standard error
//! 1.04/√16384 ≈ 0.8 %) for the current and the previous half-window, and rotates them every half
//! window. The estimate is their union, so it covers between one half and one full window.
//!
//! Memory is fixed whatever the audience: each sketch is at most about 13 KB of registers
//! ([`SKETCH_BYTES`]; its sparse form, used while counts are small, converts to registers before it
//! grows past that), plus a transient copy while estimating: about 40 KB in all.

use std::collections::hash_map::RandomState;

use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};

/// Sketch precision: 2^14 registers, ≈ 0.8 % standard error.
pub const PRECISION: u8 = 14;
/// Bytes of registers in one dense sketch: 2^14 six-bit registers packed five to a `u32`.
pub const SKETCH_BYTES: usize = (1usize << PRECISION).div_ceil(5) * 4;

type Sketch = HyperLogLogPlus<String, RandomState>;

/// Distinct subs seen in the last window, in constant memory.
#[derive(Debug, Clone)]
pub struct Presence {
    half_ms: u64,
    hasher: RandomState,
    /// Index of the half-window `current` covers.
    epoch: u64,
    current: Sketch,
    previous: Sketch,
}

impl Presence {
    /// A counter over a window of `window_ms` (at least 2 ms).
    pub fn new(window_ms: u64) -> Self {
        // One hasher for both sketches, so they can be merged; random keys, so nobody can pick
        // subs that inflate the count.
        let hasher = RandomState::new();
        Self {
            half_ms: (window_ms / 2).max(1),
            current: Self::sketch(&hasher),
            previous: Self::sketch(&hasher),
            hasher,
            epoch: 0,
        }
    }

    fn sketch(hasher: &RandomState) -> Sketch {
        HyperLogLogPlus::new(PRECISION, hasher.clone()).expect("precision within 4..=18")
    }

    /// Move the sketches forward to the half-window of `now_ms`.
    fn rotate(&mut self, now_ms: u64) {
        let epoch = now_ms / self.half_ms;
        if epoch <= self.epoch {
            return;
        }
        if epoch == self.epoch + 1 {
            self.previous = std::mem::replace(&mut self.current, Self::sketch(&self.hasher));
        } else {
            self.previous = Self::sketch(&self.hasher);
            self.current = Self::sketch(&self.hasher);
        }
        self.epoch = epoch;
    }

    /// `sub` was seen at `now_ms`.
    pub fn seen(&mut self, sub: &str, now_ms: u64) {
        self.rotate(now_ms);
        self.current.insert(sub);
    }

    /// About how many distinct subs were seen in the last window at `now_ms`.
    pub fn estimate(&mut self, now_ms: u64) -> u64 {
        self.rotate(now_ms);
        let mut union = self.previous.clone();
        union
            .merge(&self.current)
            .expect("sketches share their precision");
        union.count().round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundred_thousand_within_five_percent() {
        let mut p = Presence::new(60_000);
        let n = 100_000u64;
        for i in 0..n {
            p.seen(&format!("listener-{i}"), 1_000 + i / 10);
        }
        let est = p.estimate(12_000) as f64;
        let err = (est - n as f64).abs() / n as f64;
        // 0.8 % standard error with random hash keys: 5 % is more than six standard errors, so
        // this never fails by chance (a 3 % bound would, about once in 5,000 runs).
        assert!(err < 0.05, "estimate {est} for {n}: error {err}");
    }

    #[test]
    fn small_counts_are_exact_enough_and_repeats_count_once() {
        let mut p = Presence::new(60_000);
        for _ in 0..5 {
            for i in 0..100 {
                p.seen(&format!("s{i}"), 0);
            }
        }
        assert_eq!(p.estimate(0), 100);
    }

    #[test]
    fn old_subs_age_out_of_the_window() {
        let mut p = Presence::new(60_000);
        for i in 0..1000 {
            p.seen(&format!("old{i}"), 0);
        }
        for i in 0..10 {
            p.seen(&format!("new{i}"), 40_000);
        }
        // At 40 s the window still holds the old half-window.
        assert!(p.estimate(40_000) >= 990);
        // A full window later only the new ones remain.
        assert_eq!(p.estimate(65_000), 10);
        assert_eq!(p.estimate(200_000), 0);
    }

    #[test]
    fn sketch_bytes_documented() {
        assert_eq!(SKETCH_BYTES, 13_108);
    }
}
