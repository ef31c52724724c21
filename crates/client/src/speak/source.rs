//! Audio sources for the speaker: synthetic tones and voices, WAV files, silence. Each yields
//! 20 ms mono frames at 48 kHz.

use std::path::Path;

use tribune_media::synth::{Tone, Voice};

use crate::wav::load_mono;
use crate::{Error, FRAME_SAMPLES, Result, SAMPLE_RATE};

use super::Source;

/// Peak amplitude of the test tone: -12 dBFS leaves headroom for a mixer summing a few speakers.
pub const TONE_AMPLITUDE: f32 = 0.25;

/// A running source.
pub(crate) enum Frames {
    Tone(Tone),
    Voice(Voice),
    /// A voice that talks only in its turn: frames counted from the start, in slots.
    Turns {
        voice: Voice,
        frame: u64,
        slot_frames: u64,
        turn: u64,
        turns: u64,
    },
    Wav {
        samples: Vec<f32>,
        pos: usize,
        looped: bool,
    },
    Silence,
}

impl Frames {
    /// Prepares `source`; a WAV file is loaded, downmixed and resampled here, before any network
    /// activity, so a bad file fails fast.
    pub(crate) fn new(source: &Source, loop_wav: bool) -> Result<Self> {
        Ok(match source {
            Source::Tone { hz } => Frames::Tone(Tone::new(*hz, TONE_AMPLITUDE)),
            Source::Voice {
                fundamental_hz,
                seed,
            } => Frames::Voice(Voice::new(*fundamental_hz, *seed)),
            Source::Turns {
                fundamental_hz,
                seed,
                turn,
                turns,
                slot,
            } => Frames::Turns {
                voice: Voice::new(*fundamental_hz, *seed),
                frame: 0,
                slot_frames: (slot.as_millis() as u64 / 20).max(1),
                turn: u64::from(*turn),
                turns: u64::from((*turns).max(1)),
            },
            Source::Wav(path) => Frames::Wav {
                samples: load_wav_48k(path)?,
                pos: 0,
                looped: loop_wav,
            },
            Source::Silence => Frames::Silence,
        })
    }

    /// Fills the next frame. The last frame of a non-looping WAV is padded with silence; after
    /// it, this returns `false` (nothing left to send).
    pub(crate) fn fill(&mut self, frame: &mut [f32; FRAME_SAMPLES]) -> bool {
        match self {
            Frames::Tone(t) => t.fill(frame),
            Frames::Voice(v) => v.fill(frame),
            Frames::Turns {
                voice,
                frame: n,
                slot_frames,
                turn,
                turns,
            } => {
                if (*n / *slot_frames) % *turns == *turn {
                    voice.fill(frame);
                } else {
                    frame.fill(0.0);
                }
                *n += 1;
            }
            Frames::Silence => frame.fill(0.0),
            Frames::Wav {
                samples,
                pos,
                looped,
            } => {
                let mut filled = 0;
                while filled < FRAME_SAMPLES {
                    if *pos >= samples.len() {
                        if *looped {
                            *pos = 0;
                        } else {
                            frame[filled..].fill(0.0);
                            return filled > 0;
                        }
                    }
                    let n = (FRAME_SAMPLES - filled).min(samples.len() - *pos);
                    frame[filled..filled + n].copy_from_slice(&samples[*pos..*pos + n]);
                    filled += n;
                    *pos += n;
                }
            }
        }
        true
    }
}

/// Loads a WAV of any rate and channel count as 48 kHz mono.
pub(crate) fn load_wav_48k(path: &Path) -> Result<Vec<f32>> {
    let loaded = load_mono(path)?;
    if loaded.samples.is_empty() {
        return Err(Error::Source(format!("{} has no samples", path.display())));
    }
    if loaded.sample_rate == 0 {
        return Err(Error::Source(format!(
            "{} has sample rate 0",
            path.display()
        )));
    }
    Ok(resample_linear(
        &loaded.samples,
        loaded.sample_rate,
        SAMPLE_RATE,
    ))
}

/// Resamples by linear interpolation. Good enough for speech and test tones; it does not filter,
/// so downsampling content above the new Nyquist frequency aliases.
pub(crate) fn resample_linear(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    let last = input.len() - 1;
    (0..out_len)
        .map(|i| {
            let x = i as f64 * step;
            let idx = (x as usize).min(last);
            let frac = (x - idx as f64) as f32;
            let a = input[idx];
            let b = input[(idx + 1).min(last)];
            a + (b - a) * frac
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resample_identity() {
        let x = [0.1, 0.2, -0.3];
        assert_eq!(resample_linear(&x, 48_000, 48_000), x.to_vec());
    }

    #[test]
    fn resample_up_interpolates_between_samples() {
        let y = resample_linear(&[0.0, 1.0, 0.0, -1.0], 24_000, 48_000);
        assert_eq!(y.len(), 8);
        let want = [0.0, 0.5, 1.0, 0.5, 0.0, -0.5, -1.0, -1.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn resample_down_keeps_length_ratio() {
        let x: Vec<f32> = (0..44_100).map(|i| i as f32 / 44_100.0).collect();
        let y = resample_linear(&x, 44_100, 48_000);
        assert_eq!(y.len(), 48_000);
        // A ramp stays a ramp.
        assert!((y[24_000] - 0.5).abs() < 1e-3);
    }

    #[test]
    fn wav_stereo_44k1_becomes_48k_mono_tone() {
        let path = crate::test_util::temp_path("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..44_100 {
            let s = (std::f32::consts::TAU * 440.0 * i as f32 / 44_100.0).sin() * 0.5;
            // Left carries the tone, right is silent: the downmix halves it.
            w.write_sample((s * 32767.0) as i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();

        let y = load_wav_48k(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(y.len(), 48_000);
        let peak = y.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.25).abs() < 0.01, "peak {peak}");
        assert!(crate::tones::tone_present(&y, 440.0));
        assert!(!crate::tones::tone_present(&y, 660.0));
    }

    #[test]
    fn wav_frames_end_or_loop() {
        let samples: Vec<f32> = (0..1500).map(|i| i as f32).collect();
        let mut frame = [0f32; FRAME_SAMPLES];
        let mut once = Frames::Wav {
            samples: samples.clone(),
            pos: 0,
            looped: false,
        };
        assert!(once.fill(&mut frame));
        assert!(once.fill(&mut frame));
        assert_eq!(frame[539], 1499.0);
        assert_eq!(frame[540], 0.0);
        assert!(!once.fill(&mut frame));

        let mut looped = Frames::Wav {
            samples,
            pos: 0,
            looped: true,
        };
        assert!(looped.fill(&mut frame));
        assert!(looped.fill(&mut frame));
        assert_eq!(frame[540], 0.0);
        assert_eq!(frame[541], 1.0);
        assert!(looped.fill(&mut frame));
    }
}
