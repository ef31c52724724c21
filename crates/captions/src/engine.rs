//! The speech engine: anything that turns a chunk of 16 kHz speech into text
//! ([`Transcriber`]); the real one is Whisper through CTranslate2 ([`Whisper`], int8 on the CPU,
//! one thread), loaded once per server from a model directory checked by [`check_model_dir`].

use std::path::{Path, PathBuf};

/// Turns speech into text. `Send`: it runs on an engine thread.
pub trait Transcriber: Send + Sync {
    /// The words of `samples` (16 kHz, mono, −1…1), or an error to log (the chunk is skipped).
    fn transcribe(&self, samples: &[f32]) -> Result<String, String>;
}

/// Files a CTranslate2 Whisper model directory must hold.
pub const MODEL_FILES: &[&str] = &[
    "model.bin",
    "config.json",
    "tokenizer.json",
    "preprocessor_config.json",
];

/// Why a model directory cannot be used, naming it and what is wrong.
#[derive(Debug)]
pub struct ModelError(pub String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

/// Checks `dir` holds a CTranslate2 Whisper model: the files of [`MODEL_FILES`], a
/// `config.json` and `preprocessor_config.json` that are JSON objects (with the keys a Whisper
/// model has), a non-empty `model.bin`.
pub fn check_model_dir(dir: &Path) -> Result<(), ModelError> {
    let name = dir.display();
    if !dir.is_dir() {
        return Err(ModelError(format!(
            "captions model {name}: not a directory (fetch one with scripts/captions-model.sh {name})"
        )));
    }
    for f in MODEL_FILES {
        let p = dir.join(f);
        let meta = std::fs::metadata(&p).map_err(|e| {
            ModelError(format!(
                "captions model {name}: {f}: {e} (is this a CTranslate2 Whisper model directory?)"
            ))
        })?;
        if meta.len() == 0 {
            return Err(ModelError(format!("captions model {name}: {f} is empty")));
        }
    }
    for (f, key) in [
        ("config.json", "\"lang_ids\""),
        ("preprocessor_config.json", "\"sampling_rate\""),
    ] {
        let text = std::fs::read_to_string(dir.join(f))
            .map_err(|e| ModelError(format!("captions model {name}: {f}: {e}")))?;
        let t = text.trim_start();
        if !t.starts_with('{') || !text.contains(key) {
            return Err(ModelError(format!(
                "captions model {name}: {f} is not a Whisper model's (no {key} in a JSON object)"
            )));
        }
    }
    Ok(())
}

/// Whisper (CTranslate2), int8 on the CPU.
pub struct Whisper {
    model: ct2rs::Whisper,
    language: String,
    options: ct2rs::WhisperOptions,
    pub dir: PathBuf,
}

impl Whisper {
    /// Loads the model in `dir` (checked first) for `language` (e.g. `en`), on `threads` CPU
    /// threads.
    pub fn load(dir: &Path, language: &str, threads: usize) -> Result<Self, ModelError> {
        check_model_dir(dir)?;
        let config = ct2rs::Config {
            compute_type: ct2rs::ComputeType::INT8,
            num_threads_per_replica: threads.max(1),
            ..Default::default()
        };
        let model = ct2rs::Whisper::new(dir, config).map_err(|e| {
            ModelError(format!(
                "captions model {}: cannot load it: {e:#}",
                dir.display()
            ))
        })?;
        if model.sampling_rate() != crate::RATE {
            return Err(ModelError(format!(
                "captions model {}: samples at {} Hz, not {}",
                dir.display(),
                model.sampling_rate(),
                crate::RATE
            )));
        }
        let options = ct2rs::WhisperOptions {
            // Greedy decoding: a fifth of beam search's cost for the few words of a chunk.
            beam_size: 1,
            ..Default::default()
        };
        Ok(Whisper {
            model,
            language: language.to_owned(),
            options,
            dir: dir.to_owned(),
        })
    }
}

impl Transcriber for Whisper {
    fn transcribe(&self, samples: &[f32]) -> Result<String, String> {
        let lang = (!self.language.is_empty()).then_some(self.language.as_str());
        let out = self
            .model
            .generate(samples, lang, false, &self.options)
            .map_err(|e| format!("{e:#}"))?;
        Ok(out.join(" ").trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_directory_is_checked_file_by_file() {
        let dir = std::env::temp_dir().join(format!("captions-model-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let e = check_model_dir(&dir).unwrap_err().0;
        assert!(
            e.contains("not a directory") && e.contains(&dir.display().to_string()),
            "{e}"
        );
        std::fs::create_dir_all(&dir).unwrap();
        let e = check_model_dir(&dir).unwrap_err().0;
        assert!(e.contains("model.bin"), "{e}");
        std::fs::write(dir.join("model.bin"), b"x").unwrap();
        std::fs::write(dir.join("config.json"), b"{}").unwrap();
        std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
        std::fs::write(
            dir.join("preprocessor_config.json"),
            b"{\"sampling_rate\": 16000}",
        )
        .unwrap();
        let e = check_model_dir(&dir).unwrap_err().0;
        assert!(e.contains("config.json is not a Whisper model's"), "{e}");
        std::fs::write(dir.join("config.json"), b"{\"lang_ids\": []}").unwrap();
        assert!(check_model_dir(&dir).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
