//! The segment journal: what a later run needs to continue a rendition after a restart.
//!
//! The server appends one line per complete segment to `<data-dir>/hls/<space>/segments.log`,
//! after the segment's file, so a line names a segment that reached the disk (or was lost by a
//! failing disk, which the server counts). A restarted server reads it back with [`parse`] and
//! hands the segments to [`Rendition::resume`](super::Rendition::resume): the next segment
//! takes the next Media Sequence Number and `dvr.m3u8` keeps the whole space. Each line
//! carries the segment's content hash, so the segment keeps its `ETag` when served from disk.
//!
//! One line, space-separated, decimal except the hash:
//! `s {msn} {duration_us} {pdt_unix_ms} {parts} {discontinuity 0|1} {hash, 16 hex digits}`.
//!
//! The parts of the open segment are journaled too, one `p` line each, after their bytes are
//! appended to a side file (`open.m4s`): `p {msn} {part} {duration_us} {pdt_unix_ms}
//! {discontinuity 0|1} {length} {hash}`. A server killed mid-segment (SIGKILL, a crash) has
//! served those parts; the next run rebuilds the segment from them ([`Journal::open`]) instead
//! of giving its number to new audio. `p` lines are best effort: one that does not continue
//! the open segment's parts is skipped, never a reason to distrust the `s` lines.
//! Text, so an operator can read it; append-only, so a crash can only cut the last line,
//! which [`parse`] then ignores (a line counts once its `\n` is there). Durations are whole
//! microseconds: Opus parts are whole 20 ms frames, so nothing is rounded.

use std::fmt::Write as _;
use std::time::Duration;

use super::SegmentInfo;
use super::name::decimal;

/// The first line of a journal: its format.
pub const HEADER: &str = "tribune-hls-journal 1";

/// One complete segment as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Media Sequence Number.
    pub msn: u64,
    /// Its `EXTINF`, whole microseconds.
    pub duration: Duration,
    /// `EXT-X-PROGRAM-DATE-TIME`, Unix milliseconds.
    pub pdt_unix_ms: u64,
    /// How many parts it was made of.
    pub parts: u32,
    /// An `EXT-X-DISCONTINUITY` precedes it.
    pub discontinuity: bool,
    /// Content hash of its bytes (the server's strong `ETag`).
    pub hash: u64,
}

impl Entry {
    /// The entry of a complete segment whose bytes hash to `hash`.
    pub fn of(s: &SegmentInfo, hash: u64) -> Entry {
        Entry {
            msn: s.msn,
            duration: Duration::from_micros(s.duration.as_micros() as u64),
            pdt_unix_ms: s.pdt_unix_ms,
            parts: s.parts.len() as u32,
            discontinuity: s.discontinuity,
            hash,
        }
    }

    /// The segment, without its parts (a later run does not serve them).
    pub fn segment(&self) -> SegmentInfo {
        SegmentInfo {
            msn: self.msn,
            duration: self.duration,
            pdt_unix_ms: self.pdt_unix_ms,
            parts: Vec::new(),
            discontinuity: self.discontinuity,
        }
    }

    /// Its line, `\n` included.
    pub fn line(&self) -> String {
        let mut out = String::with_capacity(64);
        let _ = writeln!(
            out,
            "s {} {} {} {} {} {:016x}",
            self.msn,
            self.duration.as_micros(),
            self.pdt_unix_ms,
            self.parts,
            u8::from(self.discontinuity),
            self.hash
        );
        out
    }
}

/// One part of the open segment as the journal keeps it (a `p` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartEntry {
    /// Media Sequence Number of its segment.
    pub msn: u64,
    /// Part Index in the segment.
    pub part: u32,
    /// Duration, whole microseconds.
    pub duration: Duration,
    /// Wall-clock time of its first sample, Unix ms.
    pub pdt_unix_ms: u64,
    /// Its segment follows an `EXT-X-DISCONTINUITY` (as written on part 0).
    pub discontinuity: bool,
    /// Length of its bytes in the side file.
    pub len: u64,
    /// Content hash of its bytes.
    pub hash: u64,
}

impl PartEntry {
    /// Its line, `\n` included.
    pub fn line(&self) -> String {
        format!(
            "p {} {} {} {} {} {} {:016x}\n",
            self.msn,
            self.part,
            self.duration.as_micros(),
            self.pdt_unix_ms,
            u8::from(self.discontinuity),
            self.len,
            self.hash
        )
    }
}

/// The segment made of `parts` (of one segment, in order from 0), whose bytes hash to `hash`.
pub fn segment_of(parts: &[PartEntry], hash: u64) -> Option<Entry> {
    let first = parts.first()?;
    Some(Entry {
        msn: first.msn,
        duration: parts.iter().map(|p| p.duration).sum(),
        pdt_unix_ms: first.pdt_unix_ms,
        parts: parts.len() as u32,
        discontinuity: first.discontinuity,
        hash,
    })
}

/// What [`parse`] read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Journal {
    /// Segments 0, 1, 2, … in order: the longest run of well-formed, consecutive lines.
    pub entries: Vec<Entry>,
    /// Parts of segment `entries.len()` (the one open when the writer stopped), from part 0
    /// on, with no gap; empty after a clean stop, which closes the open segment.
    pub open: Vec<PartEntry>,
    /// Complete lines after that run that could not be used (damaged, or out of order). A
    /// non-zero count means the journal is not the whole story: the server then numbers past
    /// every segment file it finds, whatever the journal says.
    pub unusable: usize,
}

impl Journal {
    /// Parts of all entries: where part counting goes on.
    pub fn parts(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.parts)).sum()
    }
}

/// Reads a journal. Never panics; an unknown header gives an empty journal with every line
/// unusable; a last line without its `\n` (cut by a crash) is not counted at all.
pub fn parse(text: &str) -> Journal {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut lines = complete.lines();
    let mut j = Journal::default();
    if lines.next() != Some(HEADER) {
        j.unusable = complete.lines().count();
        return j;
    }
    let mut damaged = false;
    // Once a `p` line does not continue the open parts, the rest of that segment's are not
    // used either (their bytes would not follow on in the side file).
    let mut open_broken = false;
    for line in lines.by_ref() {
        if line.starts_with("p ") {
            match part_entry(line) {
                Some(p)
                    if !open_broken
                        && p.msn == j.entries.len() as u64
                        && p.part as usize == j.open.len() =>
                {
                    j.open.push(p)
                }
                _ => open_broken = true,
            }
            continue;
        }
        match entry(line) {
            Some(e) if e.msn == j.entries.len() as u64 => {
                j.entries.push(e);
                j.open.clear();
                open_broken = false;
            }
            _ => {
                damaged = true;
                break;
            }
        }
    }
    if damaged {
        j.unusable = 1 + lines.count();
    }
    j
}

fn hex16(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn flag(s: &str) -> Option<bool> {
    match s {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

fn part_entry(line: &str) -> Option<PartEntry> {
    let mut f = line.split(' ');
    if f.next()? != "p" {
        return None;
    }
    let p = PartEntry {
        msn: decimal(f.next()?)?,
        part: u32::try_from(decimal(f.next()?)?).ok()?,
        duration: Duration::from_micros(decimal(f.next()?)?),
        pdt_unix_ms: decimal(f.next()?)?,
        discontinuity: flag(f.next()?)?,
        len: decimal(f.next()?)?,
        hash: hex16(f.next()?)?,
    };
    f.next().is_none().then_some(p)
}

fn entry(line: &str) -> Option<Entry> {
    let mut f = line.split(' ');
    if f.next()? != "s" {
        return None;
    }
    let msn = decimal(f.next()?)?;
    let duration = Duration::from_micros(decimal(f.next()?)?);
    let pdt_unix_ms = decimal(f.next()?)?;
    let parts = u32::try_from(decimal(f.next()?)?).ok()?;
    let discontinuity = flag(f.next()?)?;
    let hash = hex16(f.next()?)?;
    if f.next().is_some() {
        return None;
    }
    Some(Entry {
        msn,
        duration,
        pdt_unix_ms,
        parts,
        discontinuity,
        hash,
    })
}

/// A whole journal for `entries` (the header, then their lines): what a run that starts with
/// a fresh file writes first.
pub fn render(entries: &[Entry]) -> String {
    let mut out = format!("{HEADER}\n");
    for e in entries {
        out.push_str(&e.line());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        prop::collection::vec(
            (
                0u64..5_000_000,
                any::<u64>(),
                any::<u32>(),
                any::<bool>(),
                any::<u64>(),
            ),
            0..40,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (us, pdt, parts, d, hash))| Entry {
                    msn: i as u64,
                    duration: Duration::from_micros(us),
                    pdt_unix_ms: pdt,
                    parts,
                    discontinuity: d,
                    hash,
                })
                .collect()
        })
    }

    #[test]
    fn a_line_reads_back() {
        let e = Entry {
            msn: 0,
            duration: Duration::from_millis(2000),
            pdt_unix_ms: 1_717_000_000_000,
            parts: 5,
            discontinuity: false,
            hash: 0xabc,
        };
        assert_eq!(e.line(), "s 0 2000000 1717000000000 5 0 0000000000000abc\n");
        let j = parse(&render(std::slice::from_ref(&e)));
        assert_eq!(j.entries, vec![e.clone()]);
        assert_eq!((j.unusable, j.parts()), (0, 5));
        assert_eq!(parse(""), Journal::default());
        assert_eq!(
            parse("something else\ns 0 1 1 1 0 0000000000000000\n").unusable,
            2
        );
        // Out of order, or damaged: the run before it is kept.
        let mut text = render(std::slice::from_ref(&e));
        text.push_str("s 2 1 1 1 0 0000000000000000\ns 1 1 1 1 0 0000000000000000\n");
        let j = parse(&text);
        assert_eq!((j.entries.len(), j.unusable), (1, 2));
        for bad in [
            "s 1 01 1 1 0 0000000000000000",
            "s 1 1 1 1 2 0000000000000000",
            "s 1 1 1 1 0 000000000000000G",
            "s 1 1 1 1 0 0000000000000000 x",
            "s 1 1 1 1 0",
        ] {
            assert_eq!(entry(bad), None, "{bad}");
        }
    }

    fn part(msn: u64, part: u32) -> PartEntry {
        PartEntry {
            msn,
            part,
            duration: Duration::from_millis(400),
            pdt_unix_ms: 1_717_000_000_000 + u64::from(part) * 400,
            discontinuity: part == 0 && msn == 1,
            len: 300,
            hash: u64::from(part),
        }
    }

    #[test]
    fn parts_of_the_open_segment() {
        let e0 = Entry::of(&part_segment(), 9);
        let mut text = render(std::slice::from_ref(&e0));
        for i in 0..3 {
            text.push_str(&part(1, i).line());
        }
        let j = parse(&text);
        assert_eq!((j.entries.len(), j.open.len(), j.unusable), (1, 3, 0));
        let seg = segment_of(&j.open, 5).unwrap();
        assert_eq!(
            (seg.msn, seg.duration, seg.parts, seg.discontinuity),
            (1, Duration::from_millis(1200), 3, true)
        );
        // A gap in the parts: the rest of that segment's parts are not used.
        let mut gap = render(std::slice::from_ref(&e0));
        for i in [0, 2, 3] {
            gap.push_str(&part(1, i).line());
        }
        assert_eq!(parse(&gap).open, vec![part(1, 0)]);
        // Closed: its parts are forgotten; a stale part line is harmless.
        let mut closed = text.clone();
        closed.push_str(
            &Entry {
                msn: 1,
                ..e0.clone()
            }
            .line(),
        );
        closed.push_str(&part(7, 0).line());
        let j = parse(&closed);
        assert_eq!((j.entries.len(), j.open.len(), j.unusable), (2, 0, 0));
        assert_eq!(segment_of(&[], 0), None);
    }

    fn part_segment() -> SegmentInfo {
        SegmentInfo {
            msn: 0,
            duration: Duration::from_secs(2),
            pdt_unix_ms: 1_717_000_000_000,
            parts: vec![Duration::from_millis(400); 5],
            discontinuity: false,
        }
    }

    proptest! {
        /// Parts interleaved with segments read back: the open parts are those after the last
        /// segment line.
        #[test]
        fn round_trip_with_parts(es in entries(), open in 0u32..8) {
            let mut text = String::from(HEADER);
            text.push('\n');
            for e in &es {
                for i in 0..e.parts.min(3) {
                    text.push_str(&part(e.msn, i).line());
                }
                text.push_str(&e.line());
            }
            let next = es.len() as u64;
            for i in 0..open {
                text.push_str(&part(next, i).line());
            }
            let j = parse(&text);
            prop_assert_eq!(j.unusable, 0);
            prop_assert_eq!(&j.entries, &es);
            prop_assert_eq!(j.open.len(), open as usize);
        }

        /// What is written reads back, whole.
        #[test]
        fn round_trip(es in entries()) {
            let j = parse(&render(&es));
            prop_assert_eq!(j.unusable, 0);
            prop_assert_eq!(j.entries, es);
        }

        /// A journal cut anywhere (a crash mid-write) reads as a prefix of what was written.
        #[test]
        fn a_cut_journal_is_a_prefix(es in entries(), cut in any::<prop::sample::Index>()) {
            let text = render(&es);
            let at = cut.index(text.len() + 1);
            let j = parse(&text[..at]);
            prop_assert_eq!(j.unusable, 0);
            prop_assert!(es.starts_with(&j.entries));
            // Every line whose `\n` made it is kept.
            let whole_lines = text[..at].matches('\n').count();
            prop_assert_eq!(j.entries.len(), whole_lines.saturating_sub(1));
        }

        /// Any text: no panic, and what is kept is numbered from 0.
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let j = parse(&text);
            for (i, e) in j.entries.iter().enumerate() {
                prop_assert_eq!(e.msn, i as u64);
            }
        }
    }
}
