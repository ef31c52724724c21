//! Test and demo signals, and the detectors that check them.
//!
//! Every speaker in a test or demo gets its own fundamental frequency, so a test can tell from
//! decoded audio alone who is in a mix: [`goertzel_power`] measures one frequency, and
//! [`rms_dbfs`] the overall level.

use std::f64::consts::TAU;

/// Sample rate of everything in this crate.
const RATE: f64 = 48_000.0;
/// Level reported for silence (and the floor of [`rms_dbfs`]), in dBFS.
pub const SILENCE_DBFS: f32 = -100.0;

/// A phase-continuous sine tone.
#[derive(Debug, Clone)]
pub struct Tone {
    /// Phase increment per sample, in radians.
    step: f64,
    phase: f64,
    amplitude: f32,
}

impl Tone {
    /// A sine of `hz` Hz at 48 kHz with peak `amplitude` (1.0 is full scale, −3 dBFS RMS).
    pub fn new(hz: f32, amplitude: f32) -> Self {
        Self {
            step: TAU * f64::from(hz) / RATE,
            phase: 0.0,
            amplitude,
        }
    }

    /// Writes the next `out.len()` samples; consecutive calls continue the same waveform.
    pub fn fill(&mut self, out: &mut [f32]) {
        for s in out {
            *s = self.amplitude * self.phase.sin() as f32;
            self.phase += self.step;
            if self.phase >= TAU {
                self.phase -= TAU;
            }
        }
    }
}

/// Relative amplitudes of the fundamental and its harmonics: a buzzy, voice-like spectrum.
const HARMONICS: [f32; 4] = [1.0, 0.5, 0.3, 0.15];
/// Mean syllable length: about 4 syllables per second with their gaps.
const SYLLABLE_MS: (u32, u32) = (150, 260);
/// Short gap between syllables.
const GAP_MS: (u32, u32) = (20, 60);
/// A longer pause (between phrases) after this many syllables on average.
const SYLLABLES_PER_PHRASE: u32 = 6;
/// Length of a pause between phrases.
const PAUSE_MS: (u32, u32) = (250, 600);
/// RMS of the voice while a syllable sounds: −20 dBFS, the level the mixer's AGC aims for.
const TALK_RMS: f32 = 0.1;

/// A speech-like test signal recognisable by its fundamental frequency.
///
/// The fundamental plus a few harmonics, shaped into syllables (~4 per second) with short gaps and
/// occasional longer pauses, at about −20 dBFS RMS while a syllable sounds. Deterministic for a
/// given seed.
#[derive(Debug, Clone)]
pub struct Voice {
    fundamental: f64,
    phase: f64,
    rng: u64,
    /// Samples left in the current segment, and whether it is voiced.
    left: u32,
    len: u32,
    voiced: bool,
    syllables_in_phrase: u32,
    /// Gain that brings the harmonic mix under the envelope to [`TALK_RMS`].
    norm: f32,
}

impl Voice {
    /// A voice at `fundamental_hz`, its rhythm drawn from `seed`.
    pub fn new(fundamental_hz: f32, seed: u64) -> Self {
        // Mean square of the harmonic sum is sum(a^2)/2; a Hann-shaped envelope (sin^2) has a
        // mean square of 3/8.
        let ms: f32 = HARMONICS.iter().map(|a| a * a).sum::<f32>() / 2.0 * 3.0 / 8.0;
        Self {
            fundamental: f64::from(fundamental_hz),
            phase: 0.0,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            left: 0,
            len: 1,
            voiced: false,
            syllables_in_phrase: 0,
            norm: TALK_RMS / ms.sqrt(),
        }
    }

    /// Writes the next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [f32]) {
        for s in out {
            if self.left == 0 {
                self.next_segment();
            }
            let pos = (self.len - self.left) as f32 / self.len as f32;
            self.left -= 1;
            if !self.voiced {
                *s = 0.0;
                continue;
            }
            let env = (std::f32::consts::PI * pos).sin();
            let env = env * env;
            // Constant pitch, so detectors find the fundamental at exactly its frequency.
            self.phase += TAU * self.fundamental / RATE;
            if self.phase >= TAU {
                self.phase -= TAU;
            }
            let mut v = 0.0;
            for (k, a) in HARMONICS.iter().enumerate() {
                v += a * ((k as f64 + 1.0) * self.phase).sin() as f32;
            }
            *s = self.norm * env * v;
        }
    }

    fn next_segment(&mut self) {
        let (range, voiced) = if self.voiced {
            self.syllables_in_phrase += 1;
            if self.rand_below(SYLLABLES_PER_PHRASE) == 0 {
                self.syllables_in_phrase = 0;
                (PAUSE_MS, false)
            } else {
                (GAP_MS, false)
            }
        } else {
            (SYLLABLE_MS, true)
        };
        let ms = range.0 + self.rand_below(range.1 - range.0 + 1);
        self.len = ms * 48;
        self.left = self.len;
        self.voiced = voiced;
    }

    /// splitmix64: small, seedable, good enough for a rhythm.
    fn rand_below(&mut self, n: u32) -> u32 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % u64::from(n.max(1))) as u32
    }
}

/// Power of the component at `hz` in `samples`, as the mean power of a sine: a sine of peak
/// amplitude `a` at exactly `hz` gives about `a² / 2` (so a full-scale sine gives ~0.5), and a
/// signal without that frequency gives about 0.
///
/// A Hann-windowed Goertzel filter: components further than about `2 * sample_rate / len` Hz away
/// barely leak in. Use at least a few thousand samples (e.g. 100 ms) for tones 50 Hz apart.
pub fn goertzel_power(samples: &[f32], sample_rate: u32, hz: f32) -> f32 {
    let n = samples.len();
    if n == 0 || sample_rate == 0 {
        return 0.0;
    }
    let w = TAU * f64::from(hz) / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut wsum = 0.0f64;
    for (i, &x) in samples.iter().enumerate() {
        let win = 0.5 - 0.5 * (TAU * i as f64 / n as f64).cos();
        wsum += win;
        let s0 = f64::from(x) * win + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    if wsum == 0.0 {
        return 0.0;
    }
    let mag2 = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    (2.0 * mag2 / (wsum * wsum)) as f32
}

/// RMS level of `samples` in dBFS (a full-scale square wave is 0 dBFS, a full-scale sine about
/// −3), floored at [`SILENCE_DBFS`]; empty input is silence.
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let ms = samples
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / samples.len() as f64;
    if ms <= 0.0 || !ms.is_finite() {
        return SILENCE_DBFS;
    }
    ((10.0 * ms.log10()) as f32).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_full_scale_sine_is_half() {
        let mut buf = vec![0.0; 4800];
        Tone::new(440.0, 1.0).fill(&mut buf);
        let p = goertzel_power(&buf, 48_000, 440.0);
        assert!((p - 0.5).abs() < 0.02, "{p}");
        assert!(goertzel_power(&buf, 48_000, 600.0) < 1e-4);
    }

    #[test]
    fn tone_is_phase_continuous() {
        let mut a = Tone::new(1000.0, 0.5);
        let mut b = a.clone();
        let mut whole = vec![0.0; 1000];
        a.fill(&mut whole);
        let mut parts = vec![0.0; 1000];
        let (x, y) = parts.split_at_mut(333);
        b.fill(x);
        b.fill(y);
        assert_eq!(whole, parts);
    }

    #[test]
    fn rms_levels() {
        assert_eq!(rms_dbfs(&[]), SILENCE_DBFS);
        assert_eq!(rms_dbfs(&[0.0; 100]), SILENCE_DBFS);
        assert!(rms_dbfs(&[1.0; 100]).abs() < 1e-4);
        let mut buf = vec![0.0; 48_000];
        Tone::new(100.0, 1.0).fill(&mut buf);
        assert!((rms_dbfs(&buf) + 3.01).abs() < 0.05);
    }

    #[test]
    fn voice_has_its_fundamental_and_level() {
        let mut v = Voice::new(220.0, 7);
        let mut buf = vec![0.0; 48_000 * 4];
        v.fill(&mut buf);
        let at = goertzel_power(&buf, 48_000, 220.0);
        let off = goertzel_power(&buf, 48_000, 300.0);
        assert!(at > 20.0 * off, "{at} vs {off}");
        // Level while talking: blocks that are clearly voiced sit near −20 dBFS.
        let voiced: Vec<f32> = buf
            .chunks(960)
            .map(rms_dbfs)
            .filter(|&l| l > -40.0)
            .collect();
        let mean = voiced.iter().sum::<f32>() / voiced.len() as f32;
        assert!((-26.0..-16.0).contains(&mean), "{mean}");
        // It pauses: some blocks are silent.
        assert!(buf.chunks(960).any(|c| rms_dbfs(c) == SILENCE_DBFS));
        // Deterministic per seed.
        let mut again = vec![0.0; 48_000 * 4];
        Voice::new(220.0, 7).fill(&mut again);
        assert_eq!(buf, again);
    }
}
