//! The recording of a space: the listener mix written to an Ogg/Opus file as it happens.
//!
//! A thread of its own, so a slow or full disk never delays the mixer or the live stream. A page
//! is written (and handed to the kernel) every [`FLUSH_EVERY`] of audio, so a crash of the
//! process loses at most about that much, and the file up to that point plays. A write error
//! (e.g. a full disk) stops the recording with an error in the log and in metrics; the live audio
//! goes on.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use tribune_media::mixer::FRAME_SAMPLES;
use tribune_media::oggopus::OggOpusWriter;

use tribune_metrics::Metrics;

/// Audio per written page: one second, the most a crash may lose.
pub const FLUSH_EVERY_SAMPLES: u64 = 48_000;

/// Packets the recorder may lag behind (60 s at 50 packets/s) before audio is dropped.
const QUEUE: usize = 3000;

/// Longest silence [`fill_silence`] writes (a gap longer than this is left as it is).
pub const MAX_FILL_MS: u64 = 6 * 3600 * 1000;

/// Appends `ms` of silence to the recording at `path` through `writer` (a stream continued by
/// [`OggOpusWriter::resume`]), whole pages, synced: the interval a takeover lost, so the
/// recording's timeline stays the clock's. Returns the samples written.
pub fn fill_silence(path: &Path, writer: &mut OggOpusWriter, ms: u64) -> std::io::Result<u64> {
    let frames = ms.min(MAX_FILL_MS) / 20;
    if frames == 0 {
        return Ok(0);
    }
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    for _ in 0..frames {
        writer.push(&tribune_media::oggopus::SILENCE_20MS, FRAME_SAMPLES as u32);
        if writer.pending_samples() >= FLUSH_EVERY_SAMPLES
            && let Some(page) = writer.flush(false)
        {
            file.write_all(&page.bytes)?;
        }
    }
    if let Some(page) = writer.flush(false) {
        file.write_all(&page.bytes)?;
    }
    file.sync_all()?;
    Ok(frames * FRAME_SAMPLES as u64)
}

/// Where the recording of `space` lives under `data_dir`.
pub fn path(data_dir: &Path, space: &str) -> PathBuf {
    data_dir.join("recordings").join(format!("{space}.opus"))
}

/// How a recording file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new file: header pages first.
    Create,
    /// Continue an interrupted recording: append pages to the file as it is (already cut to its
    /// last complete page); the writer continues the same logical stream.
    Append,
}

/// Start recording to `path`. Send 20 ms Opus packets; drop the sender to finish the file.
pub fn spawn(
    path: PathBuf,
    mut writer: OggOpusWriter,
    mode: Mode,
    ending: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Sender<Vec<u8>>, JoinHandle<()>)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = match mode {
        Mode::Create => File::create(&path)?,
        Mode::Append => std::fs::OpenOptions::new().append(true).open(&path)?,
    };
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let name = format!(
        "rec-{}",
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("")
    );
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || record(file, &path, &mut writer, mode, rx, &ending, &metrics))?;
    Ok((tx, thread))
}

fn record(
    mut file: File,
    path: &Path,
    writer: &mut OggOpusWriter,
    mode: Mode,
    rx: Receiver<Vec<u8>>,
    ending: &AtomicBool,
    metrics: &Metrics,
) {
    let mut failed = false;
    let write = |file: &mut File, bytes: &[u8], failed: &mut bool| {
        if *failed {
            return;
        }
        match file.write_all(bytes) {
            Ok(()) => {
                metrics
                    .recording_bytes
                    .fetch_add(bytes.len() as u64, Relaxed);
            }
            Err(e) => {
                *failed = true;
                metrics.recording_errors.fetch_add(1, Relaxed);
                tracing::error!(path = %path.display(), error = %e,
                    "recording stopped: write failed (the live stream goes on)");
            }
        }
    };
    if mode == Mode::Create {
        write(&mut file, &writer.header_pages(), &mut failed);
    }
    for packet in rx.iter() {
        writer.push(&packet, FRAME_SAMPLES as u32);
        if writer.pending_samples() >= FLUSH_EVERY_SAMPLES
            && let Some(page) = writer.flush(false)
        {
            write(&mut file, &page.bytes, &mut failed);
        }
    }
    // End of stream only when the space ends: a suspended recording is continued on resume.
    if let Some(page) = writer.flush(ending.load(Relaxed)) {
        write(&mut file, &page.bytes, &mut failed);
    }
    if !failed && let Err(e) = file.sync_all() {
        tracing::warn!(path = %path.display(), error = %e, "recording: final sync failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_stops_recording_and_counts() {
        // /dev/full answers every write with ENOSPC (Linux); without it the test fails.
        assert!(
            Path::new("/dev/full").exists(),
            "/dev/full is missing: this test needs Linux's full device (`mknod -m 666 /dev/full c 1 7`)"
        );
        let metrics = Arc::new(Metrics::default());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        for _ in 0..200 {
            tx.send(vec![0xF8, 0xFF, 0xFE]).unwrap();
        }
        drop(tx);
        let mut w = OggOpusWriter::new(1, 1, 312, vec![]);
        let end = AtomicBool::new(true);
        record(
            file,
            Path::new("/dev/full"),
            &mut w,
            Mode::Create,
            rx,
            &end,
            &metrics,
        );
        assert_eq!(
            metrics.recording_errors.load(Relaxed),
            1,
            "one error, then stopped"
        );
        assert_eq!(metrics.recording_bytes.load(Relaxed), 0);
    }

    #[test]
    fn writes_a_page_per_second_and_ends_with_eos() {
        let dir = std::env::temp_dir().join(format!("tribune-rec-{}", std::process::id()));
        let p = path(&dir, "t");
        let metrics = Arc::new(Metrics::default());
        let w = OggOpusWriter::new(1, 1, 312, vec![]);
        let end = Arc::new(AtomicBool::new(true));
        let (tx, th) = spawn(p.clone(), w, Mode::Create, end, metrics).unwrap();
        for _ in 0..125 {
            tx.send(vec![0xF8, 0xFF, 0xFE]).unwrap();
        }
        drop(tx);
        th.join().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let mut r = tribune_media::ogg::PageReader::new();
        r.push(&bytes);
        let mut pages = vec![];
        while let Some(pg) = r.next_page().unwrap() {
            pages.push(pg);
        }
        // OpusHead, OpusTags, two full seconds, the last half second with EOS.
        assert_eq!(pages.len(), 5);
        assert_eq!(pages[2].granule, 48_000);
        assert_eq!(pages[3].granule, 96_000);
        assert_eq!(pages[4].granule, 125 * 960);
        assert!(pages[4].flags & tribune_media::ogg::FLAG_EOS != 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
