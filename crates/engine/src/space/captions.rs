//! A space's live captions: the cues as they come from its captioner (Unix ms of the mix), the
//! replay's WebVTT file (ms into the recording) appended cue by cue, the new cues waiting for
//! the event stream, and how far the captions are done (for the HLS subtitles rendition, whose
//! segments are listed once their span is captioned).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use tribune_captions::Cue;
use tribune_captions::worker::{Captions, Progress, Tap};

/// The captions of one running space.
pub struct SpaceCaptions {
    pub language: String,
    cues: Arc<Mutex<Vec<Cue>>>,
    fresh: crossbeam_channel::Receiver<Cue>,
    progress: Arc<Progress>,
    worker: Captions,
}

/// The replay's captions file of space `id`.
pub fn vtt_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("captions").join(format!("{id}.vtt"))
}

impl SpaceCaptions {
    /// Starts the captioner of space `id`; returns the tap for its mixer. `rec_origin` is the
    /// Unix ms of recorded time 0 (0 while not recording), read when each cue is written.
    pub fn start(
        id: &str,
        cfg: &crate::config::CaptionsConfig,
        data_dir: &Path,
        rec_origin: Arc<AtomicU64>,
        metrics: Arc<tribune_metrics::Metrics>,
    ) -> std::io::Result<(Tap, Arc<SpaceCaptions>)> {
        let file = vtt_path(data_dir, id);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let cues = Arc::new(Mutex::new(Vec::new()));
        let (fresh_tx, fresh) = crossbeam_channel::unbounded();
        let (c2, path) = (cues.clone(), file);
        metrics.captions_spaces.fetch_add(1, Relaxed);
        let (tap, worker) = Captions::start(
            id,
            cfg.engine.clone(),
            cfg.settings.clone(),
            metrics,
            move |cue, _delay| {
                let origin = rec_origin.load(Relaxed);
                if let Err(e) = append(&path, &cue, origin) {
                    tracing::warn!(path = %path.display(), error = %e, "captions: cannot write the replay's captions");
                }
                c2.lock().push(cue.clone());
                let _ = fresh_tx.send(cue);
            },
        )?;
        let progress = worker.progress();
        Ok((
            tap,
            Arc::new(SpaceCaptions {
                language: cfg.language.clone(),
                cues,
                fresh,
                progress,
                worker,
            }),
        ))
    }

    /// Every cue so far (Unix ms).
    pub fn cues(&self) -> Vec<Cue> {
        self.cues.lock().clone()
    }

    /// The last cue, if any.
    pub fn last(&self) -> Option<Cue> {
        self.cues.lock().last().cloned()
    }

    /// Cues made since the last call (for the event stream).
    pub fn take_fresh(&self) -> Vec<Cue> {
        self.fresh.try_iter().collect()
    }

    /// Unix ms before which every cue has been made.
    pub fn done_unix_ms(&self) -> u64 {
        self.progress.done_unix_ms()
    }

    /// Whether the captioner has stopped (after the mixer did) with every cue written.
    pub fn is_finished(&self) -> bool {
        self.worker.is_finished()
    }
}

/// Appends one cue to the replay's WebVTT file (made with its header if new), its times in ms
/// into the recording.
fn append(path: &Path, cue: &Cue, origin_ms: u64) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::new();
    if f.metadata()?.len() == 0 {
        text.push_str("WEBVTT\n");
    }
    let shift = -(origin_ms as i64);
    let one = tribune_captions::vtt::document(std::slice::from_ref(cue), shift);
    text.push_str(one.strip_prefix("WEBVTT\n").unwrap_or(&one));
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_file_grows_cue_by_cue_in_recording_time() {
        let dir = std::env::temp_dir().join(format!(
            "space-captions-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.vtt");
        append(
            &p,
            &Cue {
                start_ms: 10_500,
                end_ms: 12_000,
                text: "one".into(),
            },
            10_000,
        )
        .unwrap();
        append(
            &p,
            &Cue {
                start_ms: 13_000,
                end_ms: 14_000,
                text: "two & three".into(),
            },
            10_000,
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let cues = tribune_captions::vtt::parse(&text).unwrap();
        assert_eq!(cues.len(), 2, "{text}");
        assert_eq!((cues[0].start_ms, cues[0].end_ms), (500, 2_000));
        assert_eq!(cues[1].text, "two & three");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
