//! The automatic switch: on when joins in one second pass the threshold, off after
//! [`CALM_S`] seconds without such a second. Lock-free: one packed atomic counts the current
//! second's joins, another remembers the last hot second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Seconds without a hot second before an automatic shield goes off: long enough that a flood
/// in waves does not flap it, short enough that a crowd arriving after an attack is not taxed
/// for long.
pub const CALM_S: u64 = 60;

/// Bits of the packed state that count joins (the rest hold the second).
const COUNT_BITS: u32 = 24;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;

/// What a call changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    On,
    Off,
}

/// The switch.
#[derive(Debug)]
pub struct Switch {
    threshold: u64,
    /// `second << COUNT_BITS | joins in that second`.
    state: AtomicU64,
    /// The last second whose joins passed the threshold.
    last_hot: AtomicU64,
    on: AtomicBool,
}

impl Switch {
    /// A switch that turns on past `joins_per_s` joins in one second.
    pub fn new(joins_per_s: u32) -> Switch {
        Switch {
            threshold: u64::from(joins_per_s).min(COUNT_MAX - 1),
            state: AtomicU64::new(0),
            last_hot: AtomicU64::new(0),
            on: AtomicBool::new(false),
        }
    }

    /// One join at `now_s`.
    pub fn join(&self, now_s: u64) -> Change {
        let prev = self
            .state
            .fetch_update(Relaxed, Relaxed, |s| {
                let (sec, n) = (s >> COUNT_BITS, s & COUNT_MAX);
                Some(if now_s > sec {
                    now_s << COUNT_BITS | 1
                } else {
                    // The same second (or a caller a little behind): count it in.
                    sec << COUNT_BITS | (n + 1).min(COUNT_MAX)
                })
            })
            .unwrap_or_else(|s| s);
        let n = if now_s > prev >> COUNT_BITS {
            1
        } else {
            (prev & COUNT_MAX) + 1
        };
        if n > self.threshold {
            self.last_hot.fetch_max(now_s, Relaxed);
            if !self.on.swap(true, Relaxed) {
                return Change::On;
            }
            return Change::None;
        }
        self.settle(now_s)
    }

    /// Turns off after a calm [`CALM_S`].
    pub fn settle(&self, now_s: u64) -> Change {
        if self.on.load(Relaxed)
            && now_s >= self.last_hot.load(Relaxed) + CALM_S
            && self.on.swap(false, Relaxed)
        {
            return Change::Off;
        }
        Change::None
    }

    /// Whether the switch is on.
    pub fn is_on(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Joins counted in second `now_s` so far.
    pub fn joins_in(&self, now_s: u64) -> u64 {
        let s = self.state.load(Relaxed);
        if s >> COUNT_BITS == now_s {
            s & COUNT_MAX
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000;

    #[test]
    fn on_past_the_threshold_off_after_a_calm_minute() {
        let s = Switch::new(20);
        for _ in 0..20 {
            assert_eq!(s.join(T), Change::None);
        }
        assert!(!s.is_on());
        assert_eq!(s.join(T), Change::On);
        assert!(s.is_on());
        assert_eq!(s.joins_in(T), 21);
        // Quiet joins keep it on for a minute.
        assert_eq!(s.join(T + 30), Change::None);
        assert!(s.is_on());
        assert_eq!(s.settle(T + CALM_S - 1), Change::None);
        assert_eq!(s.settle(T + CALM_S), Change::Off);
        assert!(!s.is_on());
    }

    #[test]
    fn a_new_hot_second_extends_it() {
        let s = Switch::new(2);
        for t in [T, T + 50] {
            for _ in 0..3 {
                s.join(t);
            }
        }
        assert_eq!(s.settle(T + CALM_S + 10), Change::None);
        assert_eq!(s.settle(T + 50 + CALM_S), Change::Off);
    }

    #[test]
    fn joins_spread_over_seconds_do_not_turn_it_on() {
        let s = Switch::new(5);
        for t in 0..100 {
            for _ in 0..5 {
                s.join(T + t);
            }
        }
        assert!(!s.is_on());
    }
}
