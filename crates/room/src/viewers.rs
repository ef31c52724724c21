//! Counting anonymous listeners at a bounded cost, whatever the audience: sampled beacons.
//!
//! A listener page that never joined picks a random viewer id once (128 bits, hex). Its
//! *level* is the number of leading zero bits of the id's first 32 bits ([`level`]), so level
//! `L` or more holds a `2^-L` share of all pages. The server announces a sampling exponent `k`
//! (in the public snapshot and the in-band metadata); only pages of level `≥ k` beacon, once per
//! [`BEACON_INTERVAL_S`]. The origin counts the distinct sampled ids seen in its window
//! (HyperLogLog, one [`Presence`] per level) and scales by `2^k`.
//!
//! `k` follows the audience: it rises when the sample passes [`TARGET_SAMPLE`] and falls when it
//! drops under a quarter of it, so between `TARGET_SAMPLE / 4` and `TARGET_SAMPLE` pages beacon
//! (the beacons per second stay under `TARGET_SAMPLE / BEACON_INTERVAL_S`, 100/s, at any
//! audience). Accuracy: the sample is binomial, relative standard error `√((1-p)/(N·p))` with
//! `p = 2^-k`, at most `1/√(TARGET_SAMPLE/4)` ≈ 3.7 % and about 1.8–2.6 % once sampling starts,
//! plus the HyperLogLog's 0.8 %; below `TARGET_SAMPLE` pages (`k = 0`) every page beacons and
//! only the HyperLogLog's error remains.
//!
//! When `k` rises, pages of the levels now excluded stop beaconing and the estimate ignores
//! them at once (it sums only levels `≥ k`). When `k` falls, the newly included levels start
//! beaconing and need a window to be seen, so for one window after a fall the estimate goes on
//! using the previous, larger `k`.

use crate::presence::Presence;

/// Seconds between two beacons of a sampled page.
pub const BEACON_INTERVAL_S: u64 = 30;
/// The sample the exponent aims at: at most this many beaconing pages.
pub const TARGET_SAMPLE: u64 = 3000;
/// The deepest level counted (a sample of one page in 2^16).
pub const MAX_LEVEL: u32 = 16;
/// The window over which beacons are counted: three beacon intervals, so every sampled page
/// beacons at least once within the half window the estimate is sure to cover.
pub const WINDOW_MS: u64 = 3 * BEACON_INTERVAL_S * 1000;

/// A viewer id's level: leading zero bits of its first 32 bits (the first 8 hex digits, big
/// endian), capped at [`MAX_LEVEL`]; `None` unless `viewer` is exactly 32 lowercase hex digits.
pub fn level(viewer: &str) -> Option<u32> {
    if viewer.len() != 32
        || !viewer
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let head = u32::from_str_radix(&viewer[..8], 16).ok()?;
    Some(head.leading_zeros().min(MAX_LEVEL))
}

/// Distinct anonymous viewers, sampled.
#[derive(Debug, Clone)]
pub struct Viewers {
    levels: Vec<Presence>,
    k: u32,
    /// After `k` fell: the larger exponent the estimate keeps until `until_ms`.
    held: Option<(u32, u64)>,
}

impl Default for Viewers {
    fn default() -> Self {
        Self::new()
    }
}

impl Viewers {
    /// No viewer yet; every page samples (`k = 0`).
    pub fn new() -> Self {
        Viewers {
            levels: (0..=MAX_LEVEL).map(|_| Presence::new(WINDOW_MS)).collect(),
            k: 0,
            held: None,
        }
    }

    /// The sampling exponent pages are told now: pages of level `≥ k` beacon.
    pub fn sample_log2(&self) -> u32 {
        self.k
    }

    /// A beacon from `viewer` at `now_ms`; false (not counted) for a malformed id or one not in
    /// the sample (a page that has not yet learnt a higher `k`).
    pub fn beacon(&mut self, viewer: &str, now_ms: u64) -> bool {
        match level(viewer) {
            Some(l) if l >= self.k => {
                self.levels[l as usize].seen(viewer, now_ms);
                true
            }
            _ => false,
        }
    }

    fn sampled(&mut self, from: u32, now_ms: u64) -> u64 {
        (from..=MAX_LEVEL)
            .map(|l| self.levels[l as usize].estimate(now_ms))
            .sum()
    }

    /// The estimated number of viewers at `now_ms`, and the exponent moved for what it sees.
    pub fn estimate(&mut self, now_ms: u64) -> u64 {
        if self.held.is_some_and(|(_, until)| now_ms >= until) {
            self.held = None;
        }
        let k_eff = self.held.map_or(self.k, |(h, _)| h.max(self.k));
        let sample = self.sampled(k_eff, now_ms);
        let est = sample << k_eff;
        // Move k for the next beacons: up while the sample is too big, down when it is small.
        let mut k = self.k;
        while k < MAX_LEVEL && (est >> k) > TARGET_SAMPLE {
            k += 1;
        }
        if k == self.k {
            while k > 0 && (est >> k) < TARGET_SAMPLE / 4 {
                k -= 1;
            }
        }
        if k < self.k {
            self.held = Some((k_eff, now_ms + WINDOW_MS));
        }
        self.k = k;
        est
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(i: u64, salt: u64) -> String {
        // A well-mixed 128-bit id (splitmix64 twice).
        let mix = |mut z: u64| {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        format!("{:016x}{:016x}", mix(i ^ salt), mix(i.wrapping_add(salt)))
    }

    /// `n` pages, each beaconing as a page does (level ≥ the `k` it last learnt, every
    /// interval, at its own offset in it), for `minutes`; the server re-estimates (and so moves
    /// `k`) ten times per interval, as its snapshot does more often still. Returns the last
    /// estimate, `k`, and the beacons per second over the last two minutes.
    fn simulate(n: u64, minutes: u64, salt: u64) -> (u64, u32, u64) {
        let mut v = Viewers::new();
        let mut late_beacons = 0u64;
        let mut est = 0;
        let step = BEACON_INTERVAL_S * 1000;
        let rounds = minutes * 60 / BEACON_INTERVAL_S;
        let ids: Vec<String> = (0..n).map(|i| id(i, salt)).collect();
        for round in 0..rounds {
            for slice in 0..10u64 {
                let k = v.sample_log2();
                for (i, vid) in ids.iter().enumerate() {
                    let offset = (i as u64 * 7919) % step;
                    if offset * 10 / step != slice {
                        continue;
                    }
                    if level(vid).is_some_and(|l| l >= k) {
                        v.beacon(vid, round * step + offset);
                        if round + 4 >= rounds {
                            late_beacons += 1;
                        }
                    }
                }
                est = v.estimate(round * step + (slice + 1) * step / 10);
            }
        }
        (est, v.sample_log2(), late_beacons / 120)
    }

    #[test]
    fn levels_of_ids() {
        assert_eq!(level(&"f".repeat(32)), Some(0));
        assert_eq!(level(&format!("0{}", "f".repeat(31))), Some(4));
        assert_eq!(level(&"0".repeat(32)), Some(MAX_LEVEL));
        assert_eq!(level("F".repeat(32).as_str()), None);
        assert_eq!(level("abc"), None);
        assert_eq!(level(&"g".repeat(32)), None);
        assert_eq!(level(&"é".repeat(16)), None);
    }

    #[test]
    fn small_audiences_are_all_sampled() {
        let (est, k, _) = simulate(1000, 3, 1);
        assert_eq!(k, 0);
        assert!((est as f64 - 1000.0).abs() <= 40.0, "{est}");
    }

    #[test]
    fn large_audiences_are_sampled_and_stay_within_the_stated_error() {
        for (n, salt) in [(15_000u64, 2u64), (60_000, 3)] {
            let (est, k, per_s) = simulate(n, 4, salt);
            assert!(k >= 2, "{n}: k {k}");
            // The beacons per second are bounded by the target, not the audience.
            assert!(per_s <= TARGET_SAMPLE / BEACON_INTERVAL_S, "{n}: {per_s}/s");
            // Five standard errors of a sample of at least TARGET_SAMPLE/4, plus the HLL's.
            let err = (est as f64 - n as f64).abs() / n as f64;
            assert!(err < 5.0 * 0.037 + 0.04, "{n}: estimate {est}, error {err}");
        }
    }

    #[test]
    fn a_falling_exponent_does_not_dip_the_count() {
        let mut v = Viewers::new();
        // A big crowd sets k high, then most of it leaves.
        let mut t = 0;
        for round in 0..6u64 {
            let k = v.sample_log2();
            for i in 0..20_000 {
                let vid = id(i, 9);
                if level(&vid).is_some_and(|l| l >= k) {
                    v.beacon(&vid, round * 30_000 + i % 30_000);
                }
            }
            t = (round + 1) * 30_000;
            v.estimate(t);
        }
        let high = v.sample_log2();
        assert!(high >= 2);
        // 1,000 remain and beacon at the current k; the estimate never falls below half of them
        // while k comes down.
        for round in 6..20u64 {
            let k = v.sample_log2();
            for i in 0..1000 {
                let vid = id(i, 9);
                if level(&vid).is_some_and(|l| l >= k) {
                    v.beacon(&vid, round * 30_000 + i * 30);
                }
            }
            t = (round + 1) * 30_000;
            let est = v.estimate(t);
            if round > 9 {
                assert!(est >= 500, "round {round}: {est} (k {})", v.sample_log2());
            }
        }
        assert_eq!(v.sample_log2(), 0);
        let est = v.estimate(t);
        assert!((est as f64 - 1000.0).abs() < 60.0, "{est}");
    }

    proptest! {
        #[test]
        fn any_string_is_a_level_or_refused(s in ".{0,40}") {
            if let Some(l) = level(&s) {
                prop_assert!(l <= MAX_LEVEL);
                prop_assert_eq!(s.len(), 32);
            }
        }

        #[test]
        fn out_of_sample_beacons_are_not_counted(i in 0u64..1_000_000) {
            let mut v = Viewers::new();
            v.k = 3;
            let vid = id(i, 5);
            let counted = v.beacon(&vid, 0);
            prop_assert_eq!(counted, level(&vid).unwrap() >= 3);
        }
    }
}
