//! The rendition on disk: segment files, the segment journal (`segments.log`) and the open
//! segment's parts (`open.m4s`), written by a thread of their own, and read back when a
//! restarted server continues the rendition ([`restore`]).
//!
//! Order is what makes it safe: a file is written before the journal line that names it, so a
//! journal line always names bytes on disk; the side file of the open segment starts over only
//! once that segment's own file and line are written. A run killed mid-segment is rebuilt from
//! the parts it journaled ([`recover_open`]), so the numbers of parts it served are not given
//! to new audio.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tribune_media::hls::journal::{self, Entry};
use tribune_media::hls::{self, Rendition};

use super::object::Stored;
use crate::gzip::fnv1a;

/// The segment journal's file name in a rendition's directory.
pub const JOURNAL: &str = "segments.log";

/// The side file holding the parts of the open segment, for a run killed mid-segment.
pub const OPEN_PARTS: &str = "open.m4s";

/// Work for the disk thread, in order: a file to write, a part to append to the open
/// segment's side file, lines for the journal, and whether the side file starts over (its
/// segment is complete and journaled).
#[derive(Default)]
pub(super) struct DiskJob {
    pub(super) file: Option<(PathBuf, Bytes)>,
    pub(super) part: Option<Bytes>,
    pub(super) journal: String,
    pub(super) open_done: bool,
}

/// What a run continues from: the journal of the earlier runs, and where the packager goes on.
pub(super) struct Restored {
    pub(super) rendition: Rendition,
    pub(super) hashes: BTreeMap<u64, u64>,
    pub(super) entries: Vec<Entry>,
}

/// The segment that was open when an earlier run was killed, rebuilt from the parts it had
/// journaled (those whose bytes in the side file check out, in order), written as that
/// segment's file. Its parts were served; its number must not go to new audio.
fn recover_open(dir: &Path, open: &[journal::PartEntry]) -> std::io::Result<Option<Entry>> {
    if open.is_empty() {
        return Ok(None);
    }
    let side = match std::fs::read(dir.join(OPEN_PARTS)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut at = 0usize;
    let mut kept = 0;
    for p in open {
        let end = usize::try_from(p.len).ok().and_then(|n| at.checked_add(n));
        match end.and_then(|end| side.get(at..end).map(|b| (end, b))) {
            Some((end, bytes)) if fnv1a(bytes) == p.hash => {
                at = end;
                kept += 1;
            }
            _ => break,
        }
    }
    let bytes = &side[..at];
    let Some(e) = journal::segment_of(&open[..kept], fnv1a(bytes)) else {
        return Ok(None);
    };
    write_atomically(&Stored::Segment(e.msn).path(dir), bytes)?;
    Ok(Some(e))
}

/// Reads the journal in `dir` (none: a new rendition) and drops segment files it does not
/// list (left by a crash between a segment's file and its journal line, or by a damaged
/// journal): their numbers are given again, so their files must not outlive the journal.
pub(super) fn restore(dir: &Path, cfg: hls::Config) -> std::io::Result<Restored> {
    let text = match std::fs::read_to_string(dir.join(JOURNAL)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let j = journal::parse(&text);
    if j.unusable > 0 {
        tracing::warn!(dir = %dir.display(), lines = j.unusable,
            "HLS journal: lines after segment {} unusable; continuing from there", j.entries.len());
    }
    let mut j = j;
    if let Some(e) = recover_open(dir, &j.open)? {
        tracing::warn!(dir = %dir.display(), msn = e.msn, parts = e.parts,
            "HLS: the segment open when the earlier run stopped is rebuilt from its parts");
        j.entries.push(e);
    }
    let next = j.entries.len() as u64;
    if let Ok(files) = std::fs::read_dir(dir) {
        for f in files.flatten() {
            let name = f.file_name();
            if let Some(msn) = name.to_str().and_then(hls::name::segment_name)
                && msn >= next
            {
                tracing::warn!(file = %f.path().display(), "HLS segment not in the journal: removed");
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
    let parts = j.parts();
    let hashes = j.entries.iter().map(|e| (e.msn, e.hash)).collect();
    let history = j.entries.iter().map(Entry::segment).collect();
    Ok(Restored {
        rendition: Rendition::resume(cfg, history, parts),
        hashes,
        entries: j.entries,
    })
}

pub(super) fn file_job(path: PathBuf, bytes: Bytes) -> DiskJob {
    DiskJob {
        file: Some((path, bytes)),
        ..DiskJob::default()
    }
}

/// Writes a file whole or not at all (a temporary file renamed over it).
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// An append-mode file, opened on first use (errors logged, then retried next time).
struct Appender {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Appender {
    fn new(path: PathBuf) -> Appender {
        Appender { path, file: None }
    }

    fn file(&mut self) -> Option<&mut std::fs::File> {
        if self.file.is_none() {
            self.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(
                    |e| tracing::error!(path = %self.path.display(), error = %e, "cannot open"),
                )
                .ok();
        }
        self.file.as_mut()
    }

    fn append(&mut self, bytes: &[u8]) {
        if let Some(f) = self.file()
            && let Err(e) = f.write_all(bytes)
        {
            tracing::error!(path = %self.path.display(), error = %e, "cannot append");
        }
    }
}

/// The disk thread: segment files, the open segment's parts, then their journal lines, in
/// order, so a journal line always names bytes already written.
pub(super) fn disk_loop(dir: PathBuf, rx: crossbeam_channel::Receiver<DiskJob>) {
    let mut journal = Appender::new(dir.join(JOURNAL));
    let mut open = Appender::new(dir.join(OPEN_PARTS));
    for job in rx.iter() {
        if let Some((path, bytes)) = &job.file
            && let Err(e) = std::fs::write(path, bytes)
        {
            tracing::error!(path = %path.display(), error = %e, "cannot write HLS segment");
        }
        if let Some(part) = &job.part {
            open.append(part);
        }
        if !job.journal.is_empty() {
            journal.append(job.journal.as_bytes());
        }
        if job.open_done
            && let Some(f) = open.file()
        {
            let _ = f.set_len(0);
        }
    }
    if let Some(f) = journal.file.take() {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::*;

    fn track() -> Track {
        Track {
            channels: 1,
            pre_skip: 312,
            input_sample_rate: 48_000,
            track_id: fmp4::TRACK_ID,
        }
    }

    fn entry(msn: u64, hash: u64) -> Entry {
        Entry {
            msn,
            duration: Duration::from_secs(2),
            pdt_unix_ms: 1_717_000_000_000 + msn * 2000,
            parts: 5,
            discontinuity: false,
            hash,
        }
    }

    /// A directory an earlier run left: its journal is continued (a line cut by a crash
    /// dropped), segment files it does not list are removed (their numbers are given again),
    /// init.mp4 keeps the earlier run's bytes, and a file served from disk must match its hash.
    #[test]
    fn a_restart_continues_the_journal() {
        let dir = std::env::temp_dir().join(format!("tribune-hls-restore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let entries: Vec<Entry> = (0..3)
            .map(|m| entry(m, fnv1a(format!("seg{m}").as_bytes())))
            .collect();
        let mut text = journal::render(&entries);
        text.push_str("s 3 2000000 17"); // cut by a crash
        std::fs::write(dir.join(JOURNAL), &text).unwrap();
        for m in 0..3 {
            std::fs::write(dir.join(format!("{m}.m4s")), format!("seg{m}")).unwrap();
        }
        std::fs::write(dir.join("3.m4s"), "orphan").unwrap();
        std::fs::write(dir.join("init.mp4"), "earlier init").unwrap();

        let h = Hls::new(
            &track(),
            hls::Config::default(),
            32_000,
            dir.clone(),
            crate::clock::Clock::system(),
        )
        .unwrap();
        assert_eq!(&h.init[..], b"earlier init");
        assert!(!dir.join("3.m4s").exists(), "the orphan is gone");
        assert_eq!(
            std::fs::read_to_string(dir.join(JOURNAL)).unwrap(),
            journal::render(&entries)
        );
        assert_eq!(
            h.state.lock().rendition.next_part(),
            PartId { msn: 3, part: 0 }
        );
        assert_eq!(h.continuation(), (16, 3 * 2 * 48_000));
        match h.segment(1) {
            Lookup::Disk(p, hash) => {
                assert_eq!(p, dir.join("1.m4s"));
                assert_eq!(hash, fnv1a(b"seg1"));
            }
            _ => panic!("segment 1 is on disk"),
        }
        let dvr = h.playlists().dvr.text().body.clone();
        let dvr = std::str::from_utf8(&dvr).unwrap();
        assert!(
            dvr.contains("seg/2.m4s") && !dvr.contains("DISCONTINUITY"),
            "{dvr}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod recover_tests {
    use super::*;
    use crate::hls::*;

    /// A run killed mid-segment: the parts it journaled (and whose bytes check out) become
    /// that segment, so its number is not given to new audio.
    #[test]
    fn a_killed_run_leaves_its_open_segment_rebuilt() {
        let dir = std::env::temp_dir().join(format!("tribune-hls-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let seg0 = Entry {
            msn: 0,
            duration: Duration::from_secs(2),
            pdt_unix_ms: 1_717_000_000_000,
            parts: 5,
            discontinuity: false,
            hash: fnv1a(b"seg0"),
        };
        std::fs::write(dir.join("0.m4s"), "seg0").unwrap();
        let mut text = journal::render(std::slice::from_ref(&seg0));
        let mut side = Vec::new();
        for (i, body) in [&b"part-a"[..], b"part-b", b"part-c"]
            .into_iter()
            .enumerate()
        {
            text.push_str(
                &journal::PartEntry {
                    msn: 1,
                    part: i as u32,
                    duration: Duration::from_millis(400),
                    pdt_unix_ms: 1_717_000_002_000 + i as u64 * 400,
                    discontinuity: false,
                    len: body.len() as u64,
                    hash: fnv1a(body),
                }
                .line(),
            );
            // The third part's bytes did not all reach the disk.
            side.extend_from_slice(if i == 2 { &body[..3] } else { body });
        }
        std::fs::write(dir.join(JOURNAL), &text).unwrap();
        std::fs::write(dir.join(OPEN_PARTS), &side).unwrap();
        let track = Track {
            channels: 1,
            pre_skip: 312,
            input_sample_rate: 48_000,
            track_id: fmp4::TRACK_ID,
        };
        let h = Hls::new(
            &track,
            hls::Config::default(),
            32_000,
            dir.clone(),
            crate::clock::Clock::system(),
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.join("1.m4s")).unwrap(), b"part-apart-b");
        assert!(!dir.join(OPEN_PARTS).exists());
        assert_eq!(
            h.state.lock().rendition.next_part(),
            PartId { msn: 2, part: 0 }
        );
        let j = journal::parse(&std::fs::read_to_string(dir.join(JOURNAL)).unwrap());
        assert_eq!(j.entries.len(), 2);
        assert_eq!(
            (j.entries[1].parts, j.entries[1].duration, j.entries[1].hash),
            (2, Duration::from_millis(800), fnv1a(b"part-apart-b"))
        );
        assert!(j.open.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
