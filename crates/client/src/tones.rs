//! Is a test tone audible? Helpers for end-to-end tests, built on
//! `tribune_media::synth::goertzel_power`.
//!
//! The signal is cut into [`WINDOW`] windows (100 ms: tones 50 Hz apart are told apart). In
//! each window the power at `hz` is compared with:
//! - the power of a unit sine at `hz` over the same window, which turns it into the tone's
//!   amplitude whatever normalization `goertzel_power` uses;
//! - the window's total energy: the tone must carry at least [`MIN_SHARE`] of it, so broadband
//!   noise or speech does not count;
//! - the "other candidate frequencies" `hz ± 2/WINDOW` (20 Hz away: the first nulls of the Hann
//!   window `goertzel_power` applies, so a steady sine at exactly `hz` puts nothing there): the
//!   power at `hz` must be at least [`MIN_CONTRAST`] times theirs, so a tone more than a few Hz
//!   off, or noise, does not count.
//!
//! A tone is present if it passes in at least [`MIN_WINDOW_SHARE`] of the windows, which
//! tolerates a join-up transient, lost packets, and the gaps of a synthetic
//! `tribune_media::synth::Voice` (probe it at its fundamental).

use tribune_media::synth::goertzel_power;

use crate::SAMPLE_RATE as RATE;

/// Analysis window: 100 ms.
pub const WINDOW: usize = RATE as usize / 10;

/// Minimum peak amplitude (1.0 = full scale) of the tone in a window: -50 dBFS, far below any
/// test tone and far above Opus' noise floor on silence.
pub const MIN_AMPLITUDE: f32 = 0.003;

/// Minimum share of a window's energy carried by the tone: 5 % (-13 dB) still finds one tone
/// among a mix of several speakers and a voice.
pub const MIN_SHARE: f32 = 0.05;

/// Minimum ratio of the power at `hz` over the power 20 Hz away (10 dB).
pub const MIN_CONTRAST: f32 = 10.0;

/// Share of windows in which the tone must pass: 30 %. A synthetic voice sounds about 70 % of
/// the time and passes in 50-65 % of windows; an absent tone passes in none.
pub const MIN_WINDOW_SHARE: f32 = 0.3;

/// Per-window measurements at one frequency.
struct Window {
    amplitude: f32,
    share: f32,
    contrast: f32,
}

fn windows(samples: &[f32], hz: f32) -> Vec<Window> {
    let n = WINDOW.min(samples.len());
    if n == 0 {
        return Vec::new();
    }
    let reference = unit_power(n, hz);
    let step = 2.0 * RATE as f32 / n as f32;
    samples
        .chunks_exact(n)
        .map(|w| {
            let p = goertzel_power(w, RATE, hz);
            let amplitude = if reference > 0.0 {
                (p / reference).sqrt()
            } else {
                0.0
            };
            let energy = w.iter().map(|s| s * s).sum::<f32>() / n as f32;
            let tone_energy = amplitude * amplitude / 2.0;
            let share = if energy > 0.0 {
                tone_energy / energy
            } else {
                0.0
            };
            let side = goertzel_power(w, RATE, hz - step).max(goertzel_power(w, RATE, hz + step));
            let contrast = if side > 0.0 { p / side } else { f32::INFINITY };
            Window {
                amplitude,
                share,
                contrast,
            }
        })
        .collect()
}

/// Power `goertzel_power` reports for a unit sine at `hz` over `n` samples.
fn unit_power(n: usize, hz: f32) -> f32 {
    let w = std::f64::consts::TAU * f64::from(hz) / f64::from(RATE);
    let sine: Vec<f32> = (0..n).map(|i| (w * i as f64).sin() as f32).collect();
    goertzel_power(&sine, RATE, hz)
}

/// Whether a sine at `hz` is clearly audible in `samples` (48 kHz mono); see the module docs for
/// the thresholds. Fewer samples than one window are never a tone.
pub fn tone_present(samples: &[f32], hz: f32) -> bool {
    if samples.len() < WINDOW {
        return false;
    }
    let ws = windows(samples, hz);
    let passing = ws
        .iter()
        .filter(|w| {
            w.amplitude >= MIN_AMPLITUDE && w.share >= MIN_SHARE && w.contrast >= MIN_CONTRAST
        })
        .count();
    passing as f32 >= MIN_WINDOW_SHARE * ws.len() as f32
}

/// The tone's peak amplitude at `hz` (1.0 = full scale), the median over windows; 0.0 for fewer
/// samples than one window. Compare levels as ratios: `20 * log10(a / b)` dB.
pub fn tone_level(samples: &[f32], hz: f32) -> f32 {
    if samples.len() < WINDOW {
        return 0.0;
    }
    let mut amps: Vec<f32> = windows(samples, hz).iter().map(|w| w.amplitude).collect();
    amps.sort_by(f32::total_cmp);
    amps[amps.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, amp: f32, secs: f32) -> Vec<f32> {
        let n = (secs * RATE as f32) as usize;
        (0..n)
            .map(|i| amp * (std::f32::consts::TAU * hz * i as f32 / RATE as f32).sin())
            .collect()
    }

    fn add(a: &mut [f32], b: &[f32]) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }

    #[test]
    fn finds_a_tone_and_its_level() {
        let s = sine(440.0, 0.25, 1.0);
        assert!(tone_present(&s, 440.0));
        assert!(!tone_present(&s, 660.0));
        assert!(!tone_present(&s, 470.0));
        assert!((tone_level(&s, 440.0) - 0.25).abs() < 0.01);
        assert!(tone_level(&s, 660.0) < 0.01);
    }

    #[test]
    fn finds_each_tone_of_a_mix() {
        let mut s = sine(440.0, 0.2, 1.0);
        add(&mut s, &sine(550.0, 0.2, 1.0));
        add(&mut s, &sine(660.0, 0.2, 1.0));
        for hz in [440.0, 550.0, 660.0] {
            assert!(tone_present(&s, hz), "{hz}");
        }
        assert!(!tone_present(&s, 880.0));
    }

    #[test]
    fn silence_noise_and_short_input_are_not_tones() {
        assert!(!tone_present(&vec![0.0; 48_000], 440.0));
        assert!(!tone_present(&sine(440.0, 0.25, 0.05), 440.0));
        assert_eq!(tone_level(&[], 440.0), 0.0);
        // Deterministic white-ish noise.
        let mut x = 0x1234_5678u32;
        let noise: Vec<f32> = (0..48_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32 - 0.5) * 0.5
            })
            .collect();
        assert!(!tone_present(&noise, 440.0));
    }

    #[test]
    fn a_tone_in_too_few_windows_is_absent() {
        let mut s = sine(440.0, 0.25, 0.2);
        s.extend(vec![0.0; 48_000]);
        assert!(!tone_present(&s, 440.0));
        let mut s = sine(440.0, 0.25, 0.5);
        s.extend(vec![0.0; 48_000]);
        assert!(tone_present(&s, 440.0));
    }

    #[test]
    fn finds_a_voice_by_its_fundamental() {
        for seed in 0..5 {
            let mut v = tribune_media::synth::Voice::new(150.0, seed);
            let mut s = vec![0f32; 5 * RATE as usize];
            v.fill(&mut s);
            assert!(tone_present(&s, 150.0), "seed {seed}");
            assert!(!tone_present(&s, 200.0), "seed {seed}");
            // Mixed with a second voice.
            let mut other = tribune_media::synth::Voice::new(230.0, seed + 100);
            let mut o = vec![0f32; s.len()];
            other.fill(&mut o);
            add(&mut s, &o);
            assert!(tone_present(&s, 150.0), "seed {seed}");
            assert!(tone_present(&s, 230.0), "seed {seed}");
            assert!(!tone_present(&s, 190.0), "seed {seed}");
        }
    }
}
