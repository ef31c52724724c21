//! 48 kHz → 16 kHz: a windowed-sinc low-pass (cut-off 7 kHz, below the new Nyquist of 8 kHz)
//! and one sample in three. Streaming: the filter's history carries over from block to block.

/// Taps of the low-pass filter (odd: linear phase, a delay of 23 input samples, 0.5 ms).
const TAPS: usize = 47;

/// A streaming 3:1 decimator.
pub struct Decimator {
    coeffs: [f32; TAPS],
    history: Vec<f32>,
    phase: usize,
}

impl Default for Decimator {
    fn default() -> Self {
        Self::new()
    }
}

impl Decimator {
    pub fn new() -> Self {
        let mut coeffs = [0f32; TAPS];
        let fc = 7_000.0 / 48_000.0; // cycles per input sample
        let mid = (TAPS / 2) as f64;
        let mut sum = 0.0;
        for (i, c) in coeffs.iter_mut().enumerate() {
            let x = i as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
            };
            // Blackman window: stop band below -70 dB.
            let n = i as f64 / (TAPS - 1) as f64;
            let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * n).cos()
                + 0.08 * (4.0 * std::f64::consts::PI * n).cos();
            *c = (sinc * w) as f32;
            sum += sinc * w;
        }
        for c in &mut coeffs {
            *c /= sum as f32;
        }
        Decimator {
            coeffs,
            history: vec![0.0; TAPS - 1],
            phase: 0,
        }
    }

    /// Filters `input` (48 kHz) and appends a third as many samples (16 kHz) to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.history.extend_from_slice(input);
        let mut i = self.phase;
        while i + TAPS <= self.history.len() {
            let window = &self.history[i..i + TAPS];
            let y: f32 = window.iter().zip(&self.coeffs).map(|(a, b)| a * b).sum();
            out.push(y);
            i += 3;
        }
        // Keep the last TAPS-1 samples (and where the next output falls among them).
        let keep_from = self.history.len() - (TAPS - 1);
        self.phase = i - keep_from;
        self.history.drain(..keep_from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / 48_000.0).sin() * 0.5)
            .collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn a_third_of_the_samples_in_any_block_sizes() {
        let input = tone(440.0, 48_000);
        let mut whole = Vec::new();
        Decimator::new().push(&input, &mut whole);
        let mut pieces = Vec::new();
        let mut d = Decimator::new();
        for block in input.chunks(960) {
            d.push(block, &mut pieces);
        }
        let mut odd = Vec::new();
        let mut d = Decimator::new();
        for block in input.chunks(7) {
            d.push(block, &mut odd);
        }
        assert_eq!(pieces, whole, "960-sample blocks");
        assert_eq!(odd.len(), whole.len(), "7-sample blocks");
        assert!((whole.len() as i64 - 16_000).abs() <= 16, "{}", whole.len());
        for (a, b) in odd.iter().zip(&whole) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn speech_band_passes_and_aliases_are_cut() {
        for (hz, min, max) in [
            (300.0, 0.97, 1.03),
            (3_000.0, 0.97, 1.03),
            (11_000.0, 0.0, 0.001),
        ] {
            let input = tone(hz, 48_000);
            let mut out = Vec::new();
            Decimator::new().push(&input, &mut out);
            let gain = rms(&out[100..]) / rms(&input);
            assert!(gain >= min && gain <= max, "{hz} Hz: gain {gain}");
        }
    }
}
