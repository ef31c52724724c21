//! Slow, speech-style automatic gain control, one per speaker.
//!
//! Speakers arrive at very different levels (a laptop microphone at arm's length, a headset, a
//! studio chain). The AGC measures each speaker's level while they talk, over a couple of seconds,
//! and moves their gain so speech sits near [`TARGET_DBFS`]. It is deliberately slow so it does not
//! pump within words, bounded to [[`MIN_GAIN_DB`], [`MAX_GAIN_DB`]], and gated: blocks below
//! [`GATE_DBFS`] (pauses, room noise, silence) neither move the level estimate nor get amplified,
//! since after [`HOLD_MS`] of quiet the gain is brought down to at most 0 dB.
//!
//! Real-time safe: no allocation, no locks.

/// Speech level the AGC aims for, in dBFS RMS: loud enough to be heard next to others, leaving
/// about 20 dB of headroom for peaks before the limiter.
pub const TARGET_DBFS: f32 = -20.0;
/// Most attenuation: a hot speaker is brought down at most this much (the limiter does the rest).
pub const MIN_GAIN_DB: f32 = -12.0;
/// Most amplification: enough for a quiet microphone, not so much that room noise takes over.
pub const MAX_GAIN_DB: f32 = 20.0;
/// Blocks quieter than this are not speech (pause, breath, noise floor): −55 dBFS is below quiet
/// speech (about −45) and above a typical noise floor.
pub const GATE_DBFS: f32 = -55.0;
/// Time constant of the speech level estimate, in seconds: slow, so gain follows the speaker's
/// level rather than each syllable.
pub const LEVEL_TIME_CONSTANT_S: f32 = 2.0;
/// How long the gate stays quiet before the gain is lowered to at most unity: longer than the
/// gaps between syllables so speech is not chopped.
pub const HOLD_MS: f32 = 300.0;
/// Fastest gain change, in dB per second: the estimate is slow already, this only smooths the
/// transitions around the gate (20 dB in 200 ms).
pub const SLEW_DB_PER_S: f32 = 100.0;

/// Sample rate the AGC runs at.
const RATE: f32 = 48_000.0;

/// Automatic gain control state of one speaker.
#[derive(Debug, Clone)]
pub struct Agc {
    /// Smoothed mean square of speech blocks; `None` until the first one.
    level: Option<f32>,
    /// Gain applied at the end of the last block, in dB.
    gain_db: f32,
    quiet_ms: f32,
}

impl Default for Agc {
    fn default() -> Self {
        Self::new()
    }
}

impl Agc {
    /// An AGC at unity gain that has heard nothing yet.
    pub fn new() -> Self {
        Self {
            level: None,
            gain_db: 0.0,
            quiet_ms: HOLD_MS,
        }
    }

    /// The current gain in dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// The speech level estimate in dBFS, if speech has been heard.
    pub fn level_dbfs(&self) -> Option<f32> {
        self.level.map(|ms| 10.0 * ms.max(1e-12).log10())
    }

    /// Measures `block` (one tick of a speaker's audio) and applies the gain in place, ramping
    /// from the previous block's gain to avoid steps.
    pub fn process(&mut self, block: &mut [f32]) {
        if block.is_empty() {
            return;
        }
        let n = block.len() as f32;
        let block_ms = 1000.0 * n / RATE;
        let ms = block.iter().map(|&x| x * x).sum::<f32>() / n;
        let db = 10.0 * ms.max(1e-12).log10();
        let speech = ms.is_finite() && db > GATE_DBFS;
        if speech {
            let alpha = (n / (LEVEL_TIME_CONSTANT_S * RATE)).min(1.0);
            self.level = Some(match self.level {
                None => ms,
                Some(l) => l + alpha * (ms - l),
            });
            self.quiet_ms = 0.0;
        } else {
            self.quiet_ms += block_ms;
        }
        let speech_gain = match self.level_dbfs() {
            Some(level) => (TARGET_DBFS - level).clamp(MIN_GAIN_DB, MAX_GAIN_DB),
            None => 0.0,
        };
        let want = if self.quiet_ms >= HOLD_MS {
            speech_gain.min(0.0)
        } else {
            speech_gain
        };
        let step = SLEW_DB_PER_S * block_ms / 1000.0;
        let new_db = self.gain_db + (want - self.gain_db).clamp(-step, step);
        let g0 = db_to_gain(self.gain_db);
        let g1 = db_to_gain(new_db);
        let inc = (g1 - g0) / n;
        let mut g = g0;
        for s in block.iter_mut() {
            g += inc;
            *s *= g;
        }
        self.gain_db = new_db;
    }
}

/// Linear gain of `db` decibels.
pub fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Voice, rms_dbfs};

    fn run(agc: &mut Agc, voice: &mut Voice, scale: f32, secs: usize) -> Vec<f32> {
        let mut out = Vec::new();
        let mut block = [0.0f32; 960];
        for _ in 0..secs * 50 {
            voice.fill(&mut block);
            block.iter_mut().for_each(|s| *s *= scale);
            agc.process(&mut block);
            out.extend_from_slice(&block);
        }
        out
    }

    #[test]
    fn quiet_and_loud_speakers_converge() {
        // The voice talks at −20 dBFS; scale it to −40 and −6.
        let (mut a, mut b) = (Agc::new(), Agc::new());
        let mut va = Voice::new(200.0, 1);
        let mut vb = Voice::new(200.0, 1);
        let qa = run(&mut a, &mut va, db_to_gain(-20.0), 10);
        let qb = run(&mut b, &mut vb, db_to_gain(14.0), 10);
        let tail = 48_000 * 4;
        let la = rms_dbfs(&qa[qa.len() - tail..]);
        let lb = rms_dbfs(&qb[qb.len() - tail..]);
        assert!((la - lb).abs() < 4.0, "{la} vs {lb}");
        assert!(a.gain_db() > 15.0 && b.gain_db() < -8.0);
    }

    #[test]
    fn silence_stays_silence_and_noise_is_not_amplified() {
        let mut agc = Agc::new();
        let mut block = [0.0f32; 960];
        for _ in 0..100 {
            agc.process(&mut block);
            assert!(block.iter().all(|&s| s == 0.0));
        }
        // Quiet speech first (gain goes up), then a noise floor at −70 dBFS.
        let mut v = Voice::new(150.0, 3);
        run(&mut agc, &mut v, db_to_gain(-20.0), 5);
        assert!(agc.gain_db() > 10.0);
        let noise = db_to_gain(-70.0);
        for i in 0..100 {
            let mut b: Vec<f32> = (0..960)
                .map(|k| if (i + k) % 2 == 0 { noise } else { -noise })
                .collect();
            agc.process(&mut b);
        }
        assert!(agc.gain_db() <= 0.0);
    }
}
