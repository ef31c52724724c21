//! [`Rendition`]: the segments and parts of one live audio rendition, and its playlists.

use std::fmt::Write as _;
use std::ops::Range;
use std::time::Duration;

use super::dvr::{self, DvrText};
use super::{
    Config, DVR_VERSION, INIT_URI, LIVE_VERSION, PartId, check::rounded, part_uri, secs,
    segment_uri, time,
};

/// A segment of the rendition: complete (from [`Rendition::segments`]) or the open one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Media Sequence Number; the first segment of a rendition is 0.
    pub msn: u64,
    /// Sum of the durations of its parts (its `EXTINF`).
    pub duration: Duration,
    /// Wall-clock time of its first sample (`EXT-X-PROGRAM-DATE-TIME`), in Unix milliseconds:
    /// the time given with its first part.
    pub pdt_unix_ms: u64,
    /// Durations of its parts, in order. Empty for a segment restored from an earlier run
    /// ([`Rendition::resume`]): its parts are gone with that run, so playlists list none.
    pub parts: Vec<Duration>,
    /// Whether an `EXT-X-DISCONTINUITY` precedes it (RFC 8216 §4.3.2.3): it is the first of a
    /// run after a restart, so its encoder state and timing do not follow the previous one.
    pub discontinuity: bool,
}

/// How to answer a blocking playlist reload (bis §6.2.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// The playlist already has what was asked for (or has ended): answer now.
    Ready,
    /// Not yet: hold the request until a later part is pushed, for at most
    /// [`Rendition::max_block`], then answer 503 Service Unavailable.
    Wait,
    /// Further ahead than a client may ask (more than two segments past the last one, or more
    /// than the Advance Part Limit past the last part): answer 400 Bad Request at once.
    TooFar,
}

/// The state of one LL-HLS audio rendition: every segment since the start (for the replay) and
/// the open segment at the live edge. Pure: durations and wall-clock times are arguments.
#[derive(Debug, Clone)]
pub struct Rendition {
    cfg: Config,
    /// `EXT-X-TARGETDURATION`, whole seconds.
    target: u64,
    /// Complete segments; `closed[i].msn == i`.
    closed: Vec<SegmentInfo>,
    /// Media Sequence Numbers of the complete segments marked `EXT-X-DISCONTINUITY`, in
    /// order: `live.m3u8` counts those before its window without walking every segment.
    discontinuities: Vec<u64>,
    /// `dvr.m3u8` of the complete segments, rendered as each closed ([`dvr`]).
    dvr: dvr::Writer,
    /// The segment being filled (maybe without parts yet); its msn is `closed.len()`.
    open: SegmentInfo,
    /// Parts pushed since the start.
    parts_total: u64,
    ended: bool,
}

impl Rendition {
    /// A rendition with no parts yet. Its target duration is the longest a segment can get
    /// (`segment_target` plus half a part), rounded ([`Config::target_duration`]).
    ///
    /// # Panics
    /// If [`Config::check`] refuses the configuration (it cannot give valid playlists); check
    /// it first where it comes from outside, as the server's configuration does at start-up.
    pub fn new(cfg: Config) -> Self {
        if let Err(e) = cfg.check() {
            panic!("hls: {e}");
        }
        let target = cfg.target_duration();
        Self {
            cfg,
            target,
            closed: Vec::new(),
            discontinuities: Vec::new(),
            dvr: dvr::Writer::new(target),
            open: SegmentInfo {
                msn: 0,
                duration: Duration::ZERO,
                pdt_unix_ms: 0,
                parts: vec![],
                discontinuity: false,
            },
            parts_total: 0,
            ended: false,
        }
    }

    /// A rendition that continues the complete segments of an earlier run (`history`, msn 0,
    /// 1, 2, … in order, as [`super::journal`] restores them): its next segment takes the next
    /// Media Sequence Number, so no URL of the earlier run is reused, and is marked
    /// `EXT-X-DISCONTINUITY` (a new encoder and a new wall-clock origin). The earlier segments
    /// stay in `dvr.m3u8` and, while in its window, in `live.m3u8`, without their parts.
    ///
    /// `parts_before` is the number of parts of the earlier runs, so part counting (and the
    /// packager's fragment sequence) goes on too.
    ///
    /// # Panics
    /// As [`Rendition::new`]; and if `history` is not numbered 0, 1, 2, … (a journal that does
    /// not say so is refused by [`super::journal::parse`]).
    pub fn resume(cfg: Config, history: Vec<SegmentInfo>, parts_before: u64) -> Self {
        let mut r = Self::new(cfg);
        for (i, s) in history.iter().enumerate() {
            assert_eq!(s.msn, i as u64, "hls: resumed history out of order");
        }
        r.open.msn = history.len() as u64;
        r.open.discontinuity = !history.is_empty();
        r.closed = history
            .into_iter()
            .map(|s| SegmentInfo {
                parts: Vec::new(),
                ..s
            })
            .collect();
        r.discontinuities = r
            .closed
            .iter()
            .filter(|s| s.discontinuity)
            .map(|s| s.msn)
            .collect();
        r.dvr.extend(&r.closed);
        r.parts_total = parts_before;
        r
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// `EXT-X-TARGETDURATION` in seconds; it never changes (bis §4.4.3.1).
    pub fn target_duration(&self) -> u64 {
        self.target
    }

    /// `PART-HOLD-BACK`: three part targets, the SHOULD of bis §4.4.3.8 (the MUST is two).
    pub fn part_hold_back(&self) -> Duration {
        self.cfg.part_target * 3
    }

    /// `CAN-SKIP-UNTIL`, the Skip Boundary: six target durations, the minimum of bis §4.4.3.8.
    pub fn skip_until(&self) -> Duration {
        Duration::from_secs(6 * self.target)
    }

    /// How long to hold a blocking reload before answering 503: three target durations
    /// (bis §6.2.5.2).
    pub fn max_block(&self) -> Duration {
        Duration::from_secs(3 * self.target)
    }

    /// Whether [`Rendition::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Adds a complete part of `duration` whose first sample was captured at `pdt_unix_ms`.
    /// Every Opus part is independent (`INDEPENDENT=YES`). The segment is closed when it holds
    /// `segment_target` of media give or take half a part, or earlier if this part would make
    /// it round above the target duration.
    ///
    /// `duration` must not exceed `part_target` (bis §4.4.4.9): a longer part is recorded as it
    /// is and the playlists say so, which [`super::validate::check`] reports.
    ///
    /// # Panics
    /// After [`Rendition::end`].
    pub fn push_part(&mut self, duration: Duration, pdt_unix_ms: u64) -> PartId {
        assert!(!self.ended, "hls: push_part after end");
        if !self.open.parts.is_empty() && rounded(self.open.duration + duration) > self.target {
            self.close();
        }
        if self.open.parts.is_empty() {
            self.open.pdt_unix_ms = pdt_unix_ms;
        }
        let id = self.next_part();
        self.open.parts.push(duration);
        self.open.duration += duration;
        self.parts_total += 1;
        if self.open.duration + self.cfg.part_target / 2 >= self.cfg.segment_target {
            self.close();
        }
        id
    }

    fn close(&mut self) {
        let next = SegmentInfo {
            msn: self.open.msn + 1,
            duration: Duration::ZERO,
            pdt_unix_ms: 0,
            parts: Vec::new(),
            discontinuity: false,
        };
        let done = std::mem::replace(&mut self.open, next);
        if done.discontinuity {
            self.discontinuities.push(done.msn);
        }
        self.dvr.extend([&done]);
        self.closed.push(done);
    }

    /// Closes the open segment (if it has parts); no parts follow. The playlists get
    /// `EXT-X-ENDLIST` and lose the preload hint.
    pub fn end(&mut self) {
        if !self.open.parts.is_empty() {
            self.close();
        }
        self.ended = true;
    }

    /// Closes the open segment (if it has parts) without ending: the server is stopping and a
    /// later run resumes the rendition. Every part served so far then belongs to a complete
    /// segment, on disk, and the next run starts after it. No `EXT-X-ENDLIST`: the space is
    /// interrupted, not over, and players that keep reloading find it again.
    pub fn suspend(&mut self) {
        if !self.open.parts.is_empty() {
            self.close();
        }
    }

    /// Parts pushed since the start, earlier runs included.
    pub fn parts_total(&self) -> u64 {
        self.parts_total
    }

    /// The part the next [`Rendition::push_part`] creates, named by the preload hint.
    pub fn next_part(&self) -> PartId {
        PartId {
            msn: self.open.msn,
            part: self.open.parts.len() as u32,
        }
    }

    /// Whether part `p` has been pushed.
    pub fn has_part(&self, p: PartId) -> bool {
        let parts = match self.closed.get(p.msn as usize) {
            Some(s) if p.msn < self.open.msn => &s.parts,
            _ if p.msn == self.open.msn => &self.open.parts,
            _ => return false,
        };
        (p.part as usize) < parts.len()
    }

    /// Whether segment `msn` is complete.
    pub fn has_segment(&self, msn: u64) -> bool {
        msn < self.open.msn
    }

    /// Every complete segment since the start, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &SegmentInfo> {
        self.closed.iter()
    }

    /// The open segment, if it has parts.
    pub fn open_segment(&self) -> Option<&SegmentInfo> {
        (!self.open.parts.is_empty()).then_some(&self.open)
    }

    /// Media Sequence Numbers of the complete segments listed in `live.m3u8`. Segments (and
    /// parts) before it may be evicted from memory once they have been out of the playlist for
    /// a while (bis §6.2.2: three target durations for parts, the segment's duration plus the
    /// playlist's for segments).
    pub fn live_window(&self) -> Range<u64> {
        let end = self.open.msn;
        end.saturating_sub(self.cfg.live_segments as u64)..end
    }

    /// How to answer a request with `_HLS_msn=msn` and, if given, `_HLS_part=part`
    /// (bis §6.2.5.2).
    pub fn blocking(&self, msn: u64, part: Option<u32>) -> Block {
        if self.ended {
            return Block::Ready; // "MUST ignore _HLS_msn and _HLS_part" once ended
        }
        let next = self.open.msn;
        // More than two past the last complete segment (next - 1), counting from -1 before the
        // first one closes.
        if msn > next + 1 {
            return Block::TooFar;
        }
        let Some(n) = part else {
            return if msn < next {
                Block::Ready
            } else {
                Block::Wait
            };
        };
        // A Part Index past the last part of a complete segment means part 0 of the next.
        let (m, n) = match self.closed.get(msn as usize) {
            // Restored from an earlier run: its parts are not known one by one, and the
            // segment is complete, so what was asked for exists.
            Some(s) if s.parts.is_empty() => return Block::Ready,
            Some(s) if n as usize >= s.parts.len() => (msn + 1, 0),
            _ => (msn, n),
        };
        if self.has_part(PartId { msn: m, part: n }) {
            return Block::Ready;
        }
        // Distance in parts from the last part, assuming nominal segments ahead.
        let per_segment = (self.cfg.segment_target.as_secs_f64()
            / self.cfg.part_target.as_secs_f64())
        .round()
        .max(1.0) as u64;
        let open_len = self.open.parts.len() as u64;
        let open_start = self.parts_total - open_len;
        let wanted = if m <= next {
            open_start + u64::from(n)
        } else {
            open_start + open_len.max(per_segment) + (m - next - 1) * per_segment + u64::from(n)
        };
        let ahead = wanted as f64 - (self.parts_total as f64 - 1.0);
        if ahead > self.advance_part_limit() {
            Block::TooFar
        } else {
            Block::Wait
        }
    }

    /// The Advance Part Limit of bis §6.2.5.2: three divided by the part target in seconds if
    /// it is under a second, else three.
    pub fn advance_part_limit(&self) -> f64 {
        let t = self.cfg.part_target.as_secs_f64();
        if t < 1.0 { 3.0 / t } else { 3.0 }
    }

    /// `live.m3u8`: the last [`Config::live_segments`] complete segments, the parts of the
    /// trailing ones and of the open segment, and a preload hint for the next part; with `skip`
    /// (the `_HLS_skip` directive) a Playlist Delta Update whose `EXT-X-SKIP` replaces the
    /// segments further than the Skip Boundary from the end. Once ended: no preload hint,
    /// `EXT-X-ENDLIST`, and `skip` is ignored (bis §6.2.5.1).
    pub fn live_playlist(&self, skip: bool) -> String {
        let window = &self.closed[self.closed.len().saturating_sub(self.cfg.live_segments)..];
        // after[i]: media after the end of window[i], up to the end of the playlist.
        let mut after = vec![Duration::ZERO; window.len()];
        let mut acc = self.open.duration;
        for (i, s) in window.iter().enumerate().rev() {
            after[i] = acc;
            acc += s.duration;
        }
        let part_limit = Duration::from_secs(3 * self.target);
        let parts_from = (window.len().saturating_sub(self.cfg.part_segments)..window.len())
            .find(|&i| after[i] <= part_limit)
            .unwrap_or(window.len());
        let skipped = if skip && !self.ended {
            after
                .iter()
                .take_while(|&&a| a >= self.skip_until())
                .count()
        } else {
            0
        };
        let media_sequence = window.first().map_or(self.open.msn, |s| s.msn);
        // RFC 8216 §6.2.1: once a segment with a discontinuity leaves the window, the
        // Discontinuity Sequence Number goes up, so every segment keeps its own (§4.3.3.3).
        let discontinuities = self.discontinuities_before(media_sequence);

        let mut out =
            String::with_capacity(256 + 64 * window.len() + 96 * self.cfg.part_segments * 8);
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:{LIVE_VERSION}\n#EXT-X-TARGETDURATION:{}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},CAN-SKIP-UNTIL={}\n\
             #EXT-X-PART-INF:PART-TARGET={}\n#EXT-X-MEDIA-SEQUENCE:{media_sequence}\n",
            self.target,
            secs(self.part_hold_back()),
            secs(self.skip_until()),
            secs(self.cfg.part_target),
        );
        if discontinuities > 0 {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}");
        }
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{INIT_URI}\"");
        for (i, s) in window.iter().enumerate().skip(skipped) {
            write_segment(&mut out, s, i >= parts_from, true);
        }
        if !self.open.parts.is_empty() {
            write_segment(&mut out, &self.open, true, false);
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        } else {
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                part_uri(self.next_part())
            );
        }
        out
    }

    /// Complete segments before `msn` marked `EXT-X-DISCONTINUITY` (a binary search: there is
    /// one per restart).
    fn discontinuities_before(&self, msn: u64) -> usize {
        self.discontinuities.partition_point(|&m| m < msn)
    }

    /// `dvr.m3u8`: every complete segment since the start (earlier runs included, each run
    /// after the first behind an `EXT-X-DISCONTINUITY`), without parts or low-latency tags,
    /// as an `EVENT` playlist; once ended it gets `EXT-X-ENDLIST` and is the replay.
    ///
    /// This renders the whole text, which grows with the space (about 80 bytes a segment,
    /// 430 KB by three hours): the reference. A server keeps [`Rendition::dvr_text`], the same
    /// bytes rendered one segment at a time.
    pub fn dvr_playlist(&self) -> String {
        let mut out = String::with_capacity(160 + 80 * self.closed.len());
        write_dvr_header(&mut out, self.target);
        for s in &self.closed {
            write_segment(&mut out, s, false, true);
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    /// `dvr.m3u8` as [`Rendition::dvr_playlist`] renders it, taken from the text kept since
    /// the start: the same bytes, at a cost that does not grow with the space (two reference
    /// counts; see [`dvr`]). It changes only when a segment closes and at the end.
    pub fn dvr_text(&self) -> DvrText {
        self.dvr.snapshot(self.ended)
    }
}

/// The header of `dvr.m3u8`, up to its first segment.
pub(super) fn write_dvr_header(out: &mut String, target: u64) {
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{DVR_VERSION}\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"{INIT_URI}\"\n"
    );
}

/// One segment: its discontinuity, its date (on every segment, so also on the first after a
/// discontinuity: RFC 8216 §4.3.2.6), its parts if asked (they follow the date: bis §4.4.4.9) and, if
/// complete, its `EXTINF` and URI.
pub(super) fn write_segment(out: &mut String, s: &SegmentInfo, parts: bool, complete: bool) {
    if s.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    let _ = writeln!(
        out,
        "#EXT-X-PROGRAM-DATE-TIME:{}",
        time::format(s.pdt_unix_ms)
    );
    if parts {
        for (i, d) in s.parts.iter().enumerate() {
            let uri = part_uri(PartId {
                msn: s.msn,
                part: i as u32,
            });
            let _ = writeln!(
                out,
                "#EXT-X-PART:DURATION={},URI=\"{uri}\",INDEPENDENT=YES",
                secs(*d)
            );
        }
    }
    if complete {
        let _ = write!(
            out,
            "#EXTINF:{},\n{}\n",
            secs(s.duration),
            segment_uri(s.msn)
        );
    }
}
