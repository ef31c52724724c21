//! WAV output (48 kHz mono 16-bit) and input (any WAV, as f32 samples).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::{Error, Result, SAMPLE_RATE};

/// A 48 kHz mono 16-bit WAV file being written.
///
/// hound rewrites the header when the writer is dropped, so the file stays valid on error paths
/// too; [`Recorder::finish`] does the same but reports failures.
pub(crate) struct Recorder {
    writer: hound::WavWriter<BufWriter<File>>,
}

impl Recorder {
    /// Creates (or truncates) `path`.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(Self {
            writer: hound::WavWriter::create(path, spec)?,
        })
    }

    /// Appends samples.
    pub(crate) fn write(&mut self, samples: &[i16]) -> Result<()> {
        let mut w = self.writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w.write_sample(s);
        }
        w.flush()?;
        Ok(())
    }

    /// Writes the final header.
    pub(crate) fn finish(self) -> Result<()> {
        self.writer.finalize()?;
        Ok(())
    }
}

/// A decoded WAV file: mono samples in [-1, 1] and their rate.
pub(crate) struct Loaded {
    pub(crate) samples: Vec<f32>,
    pub(crate) sample_rate: u32,
}

/// Loads any PCM WAV (8/16/24/32-bit integer or 32-bit float, any channel count) and downmixes it
/// to mono by averaging channels.
pub(crate) fn load_mono(path: &Path) -> Result<Loaded> {
    let reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>()?,
        hound::SampleFormat::Int => {
            if spec.bits_per_sample == 0 || spec.bits_per_sample > 32 {
                return Err(Error::Source(format!(
                    "unsupported WAV sample size {}",
                    spec.bits_per_sample
                )));
            }
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<std::result::Result<_, _>>()?
        }
    };
    Ok(Loaded {
        samples: downmix(&interleaved, spec.channels),
        sample_rate: spec.sample_rate,
    })
}

/// Averages interleaved channels into one.
pub(crate) fn downmix(interleaved: &[f32], channels: u16) -> Vec<f32> {
    match channels {
        0 | 1 => interleaved.to_vec(),
        n => {
            let n = usize::from(n);
            interleaved
                .chunks_exact(n)
                .map(|frame| frame.iter().sum::<f32>() / n as f32)
                .collect()
        }
    }
}
