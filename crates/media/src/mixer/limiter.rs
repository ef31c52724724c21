//! Soft peak limiter for the mixed signal.
//!
//! Summing several speakers can exceed full scale. Clipping would distort harshly, and converting
//! an out-of-range float to integers could even wrap around. The limiter instead lowers the gain
//! smoothly: within a block it looks ahead (a block is already complete when it is processed, so
//! this costs no latency) and ramps the gain down over [`ATTACK`] before a peak, then lets it
//! recover over [`RELEASE`]. Every output sample is within ±[`CEILING`], strictly inside [-1, 1].
//!
//! Real-time safe: no allocation, no locks.

/// Output never exceeds this magnitude: −0.2 dBFS, leaving room for encoder overshoot.
pub const CEILING: f32 = 0.977;
/// The gain ramps down over about this many samples (1 ms at 48 kHz) before a peak: long enough to
/// avoid clicks, short enough to keep transients.
pub const ATTACK: usize = 48;
/// Time constant in samples of the gain's recovery towards 1 (80 ms at 48 kHz): slow enough not to
/// pump on speech, fast enough to recover between words.
pub const RELEASE: f32 = 3840.0;
/// Largest block processed in one pass (the lookahead scratch buffer); longer input is processed
/// in pieces of this size.
pub const MAX_BLOCK: usize = 960;

/// Smooth peak limiter; keep one per output stream (it remembers its gain).
#[derive(Debug, Clone)]
pub struct Limiter {
    gain: f32,
    scratch: [f32; MAX_BLOCK],
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    /// A limiter at unity gain.
    pub fn new() -> Self {
        Self {
            gain: 1.0,
            scratch: [1.0; MAX_BLOCK],
        }
    }

    /// The gain applied to the last sample (1.0 when not limiting).
    pub fn gain(&self) -> f32 {
        self.gain
    }

    /// Limits `samples` in place. Non-finite samples become 0.
    pub fn process(&mut self, samples: &mut [f32]) {
        for block in samples.chunks_mut(MAX_BLOCK) {
            self.process_block(block);
        }
    }

    fn process_block(&mut self, x: &mut [f32]) {
        let n = x.len();
        let slope = 1.0 / ATTACK as f32;
        // Backward pass: the highest gain each sample may have so that every later peak in the
        // block can still be reached by descending at most `slope` per sample.
        let mut next = 1.0f32;
        for i in (0..n).rev() {
            if !x[i].is_finite() {
                x[i] = 0.0;
            }
            let a = x[i].abs();
            let need = if a > CEILING { CEILING / a } else { 1.0 };
            next = need.min(next + slope);
            self.scratch[i] = next;
        }
        // Forward pass: exponential release, never above the allowed gain.
        let release = 1.0 / RELEASE;
        let mut g = self.gain;
        for (s, &allowed) in x.iter_mut().zip(&self.scratch[..n]) {
            g = (g + (1.0 - g) * release).min(allowed);
            // `g <= CEILING / |s|` already; the clamp only guards float rounding.
            *s = (*s * g).clamp(-CEILING, CEILING);
        }
        self.gain = g;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_signal_passes_unchanged() {
        let mut l = Limiter::new();
        let orig: Vec<f32> = (0..960).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
        let mut x = orig.clone();
        l.process(&mut x);
        assert_eq!(x, orig);
    }

    #[test]
    fn loud_signal_is_bounded_and_keeps_sign() {
        let mut l = Limiter::new();
        for block in 0..50 {
            let orig: Vec<f32> = (0..960)
                .map(|i| 4.0 * ((block * 960 + i) as f32 * 0.03).sin())
                .collect();
            let mut x = orig.clone();
            l.process(&mut x);
            for (o, y) in orig.iter().zip(&x) {
                assert!(y.abs() <= CEILING, "{y}");
                assert!(y.abs() < 1.0);
                // No wrap-around: the output has the sign of the input.
                assert!(o * y >= 0.0);
            }
        }
        assert!(l.gain() < 0.3);
    }

    #[test]
    fn gain_changes_smoothly_within_a_block() {
        let mut l = Limiter::new();
        // A constant 0.5 with one sample spike at 2.0 in the middle.
        let mut x = vec![0.5f32; 960];
        x[500] = 2.0;
        l.process(&mut x);
        assert!(x[500] <= CEILING);
        // The ramp starts before the peak, and neighbouring gains differ by at most the slope.
        assert!(x[500 - ATTACK / 2] < 0.5);
        for w in x[400..500].windows(2) {
            assert!((w[0] - w[1]).abs() <= 0.5 / ATTACK as f32 + 1e-6);
        }
        // And recovers afterwards.
        assert!(x[959] > x[501]);
    }

    #[test]
    fn non_finite_becomes_zero() {
        let mut l = Limiter::new();
        let mut x = [f32::NAN, f32::INFINITY, 0.1];
        l.process(&mut x);
        assert_eq!(&x[..2], &[0.0, 0.0]);
        assert!(x[2].is_finite());
    }
}
