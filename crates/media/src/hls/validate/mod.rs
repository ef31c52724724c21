//! A media playlist validator for tribune's LL-HLS output: [`parse`] reads a media playlist,
//! [`check`] applies the rules of RFC 8216 and draft-pantos-hls-rfc8216bis ("bis") to one
//! playlist, [`check_sequence`] to two successive ones, and [`apply_delta`] / [`check_delta`]
//! to Playlist Delta Updates.
//!
//! It reads the tags tribune emits (and ignores unknown ones as clients must, §6.3.1); it
//! rejects features tribune does not use where they would change the meaning of the model
//! (`BYTERANGE` on parts and maps, an `EXT-X-MAP` after the first segment). Durations are
//! compared with a tolerance of [`EPSILON`] seconds, the precision of the decimal text; the spec
//! itself allows none above `PART-TARGET` or the target duration.
//!
//! [`check`] enforces the MUSTs and the SHOULDs that tribune follows (each message names its
//! section and says which).

mod parse;

/// Tolerance in seconds for comparing durations read from decimal text.
pub const EPSILON: f64 = 2e-6;

/// A media playlist as read by [`parse`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    /// `EXT-X-VERSION`, absent meaning 1.
    pub version: Option<u64>,
    /// `EXT-X-TARGETDURATION` in seconds.
    pub target_duration: Option<u64>,
    /// `EXT-X-MEDIA-SEQUENCE` (0 when absent): the msn of the first segment, skipped or not.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` (0 when absent): the Discontinuity Sequence Number of
    /// the first segment, skipped or not (§4.3.3.3).
    pub discontinuity_sequence: u64,
    /// Whether the tag was there (it must come before the first segment and any
    /// `EXT-X-DISCONTINUITY`).
    pub has_discontinuity_sequence: bool,
    /// `EXT-X-PLAYLIST-TYPE` (`EVENT` or `VOD`).
    pub playlist_type: Option<String>,
    /// `EXT-X-INDEPENDENT-SEGMENTS`.
    pub independent_segments: bool,
    /// `EXT-X-SERVER-CONTROL`.
    pub server_control: Option<ServerControl>,
    /// `EXT-X-PART-INF:PART-TARGET` in seconds.
    pub part_target: Option<f64>,
    /// `EXT-X-MAP:URI`.
    pub map_uri: Option<String>,
    /// `EXT-X-SKIP:SKIPPED-SEGMENTS`: `Some` in a Playlist Delta Update.
    pub skipped: Option<u64>,
    /// The segments listed (after the skipped ones), with their Media Sequence Numbers.
    pub segments: Vec<Segment>,
    /// `EXT-X-PROGRAM-DATE-TIME` of the open segment (whose parts follow the last URI).
    pub trailing_pdt_ms: Option<i64>,
    /// An `EXT-X-DISCONTINUITY` before the open segment's parts.
    pub trailing_discontinuity: bool,
    /// Parts of the open segment, whose msn is the one after the last segment.
    pub trailing_parts: Vec<Part>,
    /// `EXT-X-PRELOAD-HINT` tags.
    pub preload_hints: Vec<PreloadHint>,
    /// `EXT-X-ENDLIST`.
    pub endlist: bool,
}

/// A complete media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media Sequence Number.
    pub msn: u64,
    /// `EXTINF` duration in seconds.
    pub duration: f64,
    /// The URI line.
    pub uri: String,
    /// `EXT-X-PROGRAM-DATE-TIME` in Unix milliseconds.
    pub pdt_ms: Option<i64>,
    /// Its `EXT-X-PART` tags, if still listed.
    pub parts: Vec<Part>,
    /// An `EXT-X-DISCONTINUITY` applies to it (§4.3.2.3).
    pub discontinuity: bool,
}

/// An `EXT-X-PART` tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// `DURATION` in seconds.
    pub duration: f64,
    /// `URI`.
    pub uri: String,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
    /// `GAP=YES`.
    pub gap: bool,
}

/// `EXT-X-SERVER-CONTROL` attributes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerControl {
    /// `CAN-BLOCK-RELOAD=YES`.
    pub can_block_reload: bool,
    /// `PART-HOLD-BACK` in seconds.
    pub part_hold_back: Option<f64>,
    /// `CAN-SKIP-UNTIL` (the Skip Boundary) in seconds.
    pub can_skip_until: Option<f64>,
    /// `CAN-SKIP-DATERANGES=YES`.
    pub can_skip_dateranges: bool,
    /// `HOLD-BACK` in seconds.
    pub hold_back: Option<f64>,
}

/// An `EXT-X-PRELOAD-HINT` tag.
#[derive(Debug, Clone, PartialEq)]
pub struct PreloadHint {
    /// `TYPE`: `PART` or `MAP`.
    pub kind: String,
    /// `URI`.
    pub uri: String,
}

/// Why a playlist could not be read, or a delta update not merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed text (line 0: at the end).
    #[error("line {line}: {msg}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A delta update that cannot be applied to the given playlist.
    #[error("delta update: {0}")]
    Delta(String),
}

impl MediaPlaylist {
    /// Msn of the segment after the last one listed: the open segment's, whose parts trail.
    pub fn next_msn(&self) -> u64 {
        // Saturating: the numbers come from a parsed playlist, which may say anything.
        self.media_sequence
            .saturating_add(self.skipped.unwrap_or(0))
            .saturating_add(self.segments.len() as u64)
    }

    /// Total duration of the trailing parts.
    pub fn trailing_duration(&self) -> f64 {
        self.trailing_parts.iter().map(|p| p.duration).sum()
    }

    /// The Discontinuity Sequence Number of each listed segment, by msn (§4.3.3.3: the
    /// playlist's number plus the discontinuities up to and including the segment). `None` in
    /// a delta update, whose skipped segments may hold discontinuities the text does not show.
    pub fn discontinuity_numbers(&self) -> Option<Vec<(u64, u64)>> {
        if self.skipped.is_some_and(|n| n > 0) {
            return None;
        }
        let mut n = self.discontinuity_sequence;
        let mut out: Vec<(u64, u64)> = self
            .segments
            .iter()
            .map(|s| {
                n = n.saturating_add(u64::from(s.discontinuity));
                (s.msn, n)
            })
            .collect();
        if !self.trailing_parts.is_empty() {
            out.push((
                self.next_msn(),
                n.saturating_add(u64::from(self.trailing_discontinuity)),
            ));
        }
        Some(out)
    }

    /// The segment `msn`, if listed.
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.media_sequence + self.skipped.unwrap_or(0);
        self.segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }
}

/// Parses a media playlist: `#EXTM3U` first (§4.3.1.1), one tag or URI a line, attribute lists
/// with quoted strings (§4.2), tags that may appear once appearing once. Never panics.
pub fn parse(text: &str) -> Result<MediaPlaylist, Error> {
    parse::parse(text)
}

/// `part/{msn}.{index}.m4s` → (msn, index): tribune's part URIs.
fn tribune_part(uri: &str) -> Option<(u64, u64)> {
    let name = uri.strip_prefix("part/")?.strip_suffix(".m4s")?;
    let (m, i) = name.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() < 20 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(m) && digits(i)).then(|| Some((m.parse().ok()?, i.parse().ok()?)))?
}

/// Checks one media playlist against the rules of RFC 8216 and bis.
pub fn check(p: &MediaPlaylist) -> Result<(), Vec<String>> {
    let mut e = Vec::new();
    let all_parts = || {
        p.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(&p.trailing_parts)
    };

    // Versions (RFC 8216 §7, bis §8).
    let version = p.version.unwrap_or(1);
    let mut need = (1, "");
    if p.segments.iter().any(|s| s.duration.fract() != 0.0) {
        need = (3, "decimal EXTINF durations");
    }
    if p.map_uri.is_some() {
        need = (6, "EXT-X-MAP");
    }
    if p.skipped.is_some() {
        need = (9, "EXT-X-SKIP");
    }
    if version < need.0 {
        e.push(format!(
            "bis §8: {} needs EXT-X-VERSION {} or higher, not {version}",
            need.1, need.0
        ));
    }

    // Target duration (§4.4.3.1).
    let Some(td) = p.target_duration else {
        e.push("§4.4.3.1: EXT-X-TARGETDURATION is REQUIRED".into());
        return Err(e);
    };
    let td = td as f64;
    for s in &p.segments {
        if s.duration.round() > td {
            e.push(format!(
                "§4.4.3.1: EXTINF {} of msn {} rounds above the target duration {td}",
                s.duration, s.msn
            ));
        }
    }

    // Parts (§4.4.3.7, §4.4.4.9, §3.2).
    let has_parts = all_parts().next().is_some();
    if has_parts && p.part_target.is_none() {
        e.push("§4.4.3.7: EXT-X-PART-INF is REQUIRED with EXT-X-PART tags".into());
    }
    if let Some(pt) = p.part_target {
        // The last part listed for a segment is its final one, or (open segment) may be.
        let groups = p
            .segments
            .iter()
            .map(|s| &s.parts)
            .chain([&p.trailing_parts]);
        for parts in groups {
            for (i, part) in parts.iter().enumerate() {
                if part.duration > pt + EPSILON {
                    e.push(format!(
                        "§4.4.4.9: part {} lasts {} > PART-TARGET {pt}",
                        part.uri, part.duration
                    ));
                }
                let last = i + 1 == parts.len();
                let exempt =
                    part.independent || part.gap || parts.get(i + 1).is_some_and(|n| n.gap) || last;
                if !exempt && part.duration < 0.85 * pt - EPSILON {
                    e.push(format!(
                        "§4.4.4.9: part {} lasts {} < 85% of PART-TARGET",
                        part.uri, part.duration
                    ));
                }
            }
        }
        match p.server_control.as_ref().and_then(|c| c.part_hold_back) {
            None => e.push("§4.4.3.8: PART-HOLD-BACK is REQUIRED with EXT-X-PART-INF".into()),
            Some(phb) if phb < 2.0 * pt - EPSILON => e.push(format!(
                "§4.4.3.8: PART-HOLD-BACK {phb} < 2 × PART-TARGET (MUST)"
            )),
            Some(phb) if phb < 3.0 * pt - EPSILON => e.push(format!(
                "§4.4.3.8: PART-HOLD-BACK {phb} < 3 × PART-TARGET (SHOULD)"
            )),
            Some(_) => {}
        }
    }
    for s in &p.segments {
        let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
        if sum > s.duration + EPSILON * (s.parts.len() + 1) as f64 {
            e.push(format!(
                "§3.2: the parts of msn {} last {sum} > its EXTINF {}",
                s.msn, s.duration
            ));
        }
    }

    // Server control (§4.4.3.8).
    if let Some(c) = &p.server_control {
        if let Some(skip) = c.can_skip_until
            && skip < 6.0 * td - EPSILON
        {
            e.push(format!(
                "§4.4.3.8: CAN-SKIP-UNTIL {skip} < 6 × target duration"
            ));
        }
        if let Some(hb) = c.hold_back
            && hb < 3.0 * td - EPSILON
        {
            e.push(format!("§4.4.3.8: HOLD-BACK {hb} < 3 × target duration"));
        }
        if c.can_skip_dateranges && c.can_skip_until.is_none() {
            e.push("§4.4.3.8: CAN-SKIP-DATERANGES requires CAN-SKIP-UNTIL".into());
        }
    }
    if p.skipped.is_some() {
        if p.server_control
            .as_ref()
            .and_then(|c| c.can_skip_until)
            .is_none()
        {
            e.push("§6.2.5.1: EXT-X-SKIP in a playlist without CAN-SKIP-UNTIL".into());
        }
        if p.endlist {
            e.push("§6.2.5.1: EXT-X-SKIP with EXT-X-ENDLIST (_HLS_skip must be ignored)".into());
        }
    }

    // Parts only near the live edge, removed in order (§6.2.2).
    let mut after = p.trailing_duration();
    let mut without_parts_later = false;
    for s in p.segments.iter().rev() {
        if s.parts.is_empty() {
            without_parts_later = true;
        } else {
            if without_parts_later {
                e.push(format!("§6.2.2: msn {} lists parts but a later segment does not (removal out of order)", s.msn));
            }
            if after > 3.0 * td + EPSILON {
                e.push(format!("§6.2.2: msn {} lists parts {after} s from the end, more than 3 target durations (SHOULD)", s.msn));
            }
        }
        after += s.duration;
    }

    // A live playlist keeps three target durations (§6.2.2).
    let total: f64 = p.segments.iter().map(|s| s.duration).sum();
    if !p.endlist
        && p.playlist_type.is_none()
        && p.skipped.is_none()
        && p.media_sequence > 0
        && total < 3.0 * td - EPSILON
    {
        e.push(format!("§6.2.2: live playlist of {total} s, less than 3 target durations, after removing segments"));
    }

    // Preload hints (§4.4.5.3, §6.2.6).
    if p.endlist && !p.preload_hints.is_empty() {
        e.push("§4.4.5.3: EXT-X-PRELOAD-HINT with EXT-X-ENDLIST (MUST NOT)".into());
    }
    if p.endlist && !p.trailing_parts.is_empty() {
        e.push(
            "§3.2: parts after the last segment of an ended playlist have no parent segment".into(),
        );
    }
    for kind in ["PART", "MAP"] {
        if p.preload_hints.iter().filter(|h| h.kind == kind).count() > 1 {
            e.push(format!(
                "§6.2.6: more than one EXT-X-PRELOAD-HINT of TYPE={kind} (SHOULD NOT)"
            ));
        }
    }
    for h in &p.preload_hints {
        if h.kind != "PART" && h.kind != "MAP" {
            e.push(format!(
                "§4.4.5.3: preload hint TYPE={} is neither PART nor MAP",
                h.kind
            ));
        }
        if all_parts().any(|part| part.uri == h.uri) {
            e.push(format!(
                "§4.4.5.3: preload hint {} names a part already listed",
                h.uri
            ));
        }
    }
    // Discontinuities (§4.3.2.3, §4.3.3.3, §6.2.1).
    // An EVENT playlist never removes a segment (§6.2.1), so one that starts at msn 0 has
    // nothing that could have raised its Discontinuity Sequence Number.
    if p.playlist_type.as_deref() == Some("EVENT")
        && p.media_sequence == 0
        && p.discontinuity_sequence != 0
    {
        e.push("§6.2.1: an EVENT playlist from msn 0 with EXT-X-DISCONTINUITY-SEQUENCE > 0".into());
    }
    let dated = p.segments.iter().any(|s| s.pdt_ms.is_some()) || p.trailing_pdt_ms.is_some();
    if dated {
        for s in p
            .segments
            .iter()
            .filter(|s| s.discontinuity && s.pdt_ms.is_none())
        {
            e.push(format!(
                "§4.3.2.6: msn {} follows EXT-X-DISCONTINUITY without EXT-X-PROGRAM-DATE-TIME (SHOULD, in a dated playlist)",
                s.msn
            ));
        }
        if p.trailing_discontinuity && p.trailing_pdt_ms.is_none() {
            e.push("§4.3.2.6: the open segment follows EXT-X-DISCONTINUITY without EXT-X-PROGRAM-DATE-TIME".into());
        }
    }
    if p.trailing_discontinuity && p.trailing_parts.is_empty() {
        e.push("§4.3.2.3: EXT-X-DISCONTINUITY with no segment after it".into());
    }
    // Dates go forward within a run; across a discontinuity they may jump (not back: the
    // clock of one server goes on).
    let mut last: Option<(i64, f64)> = None;
    for s in &p.segments {
        if let (Some(pdt), Some((prev, dur))) = (s.pdt_ms, last)
            && (pdt as f64) < prev as f64 + dur * 1000.0 - 1000.0
        {
            e.push(format!(
                "§4.3.2.6: msn {} is dated {} ms before the end of the segment before it",
                s.msn,
                (prev as f64 + dur * 1000.0 - pdt as f64) as i64
            ));
        }
        last = s.pdt_ms.map(|t| (t, s.duration));
    }
    check_tribune_uris(p, &mut e);

    if e.is_empty() { Ok(()) } else { Err(e) }
}

/// With tribune's URIs (`seg/{msn}.m4s`, `part/{msn}.{i}.m4s`): the numbers match the
/// playlist's, every listed segment lists all its parts from 0, and the preload hint names the
/// part after the last one listed. Skipped when any URI has another form.
fn check_tribune_uris(p: &MediaPlaylist, e: &mut Vec<String>) {
    let hint = p.preload_hints.iter().find(|h| h.kind == "PART");
    let all_tribune = p.segments.iter().all(|s| s.uri.starts_with("seg/"))
        && p.segments
            .iter()
            .flat_map(|s| &s.parts)
            .chain(&p.trailing_parts)
            .all(|x| tribune_part(&x.uri).is_some())
        && hint.is_none_or(|h| tribune_part(&h.uri).is_some());
    if !all_tribune {
        return;
    }
    let groups = p
        .segments
        .iter()
        .map(|s| (s.msn, &s.parts))
        .chain([(p.next_msn(), &p.trailing_parts)]);
    for (msn, parts) in groups {
        for (i, part) in parts.iter().enumerate() {
            if tribune_part(&part.uri) != Some((msn, i as u64)) {
                e.push(format!("parts: {} is not part {i} of msn {msn}", part.uri));
            }
        }
    }
    for s in &p.segments {
        if s.uri != format!("seg/{}.m4s", s.msn) {
            e.push(format!(
                "segments: {} is not the URI of msn {}",
                s.uri, s.msn
            ));
        }
    }
    if let Some(h) = hint {
        let expected = (p.next_msn(), p.trailing_parts.len() as u64);
        if tribune_part(&h.uri) != Some(expected) {
            e.push(format!(
                "§6.2.6: preload hint {} is not the next part {expected:?}",
                h.uri
            ));
        }
    } else if !p.endlist && p.part_target.is_some() {
        e.push(
            "§6.2.6: a live low-latency playlist without a preload hint for the next part".into(),
        );
    }
}

/// Checks that `next`, fetched after `prev` from the same URL, changed only as bis §6.2.1
/// allows: the same header, a media sequence that never decreases (and never moves in an
/// `EVENT` playlist), no segment removed from the end, every msn keeping its URI, duration,
/// date, discontinuity, Discontinuity Sequence Number and parts, parts of a segment only growing while it is open, and nothing changing after
/// `EXT-X-ENDLIST`. Either may be a delta update.
pub fn check_sequence(prev: &MediaPlaylist, next: &MediaPlaylist) -> Result<(), Vec<String>> {
    let mut e = Vec::new();
    let header = |p: &MediaPlaylist| {
        (
            p.version,
            p.target_duration,
            p.server_control.clone(),
            p.part_target,
            p.map_uri.clone(),
            p.playlist_type.clone(),
            p.independent_segments,
        )
    };
    if header(prev) != header(next) {
        e.push(format!(
            "§6.2.1: the header changed: {:?} → {:?}",
            header(prev),
            header(next)
        ));
    }
    if next.media_sequence < prev.media_sequence {
        e.push(format!(
            "§6.2.1: EXT-X-MEDIA-SEQUENCE went back from {} to {}",
            prev.media_sequence, next.media_sequence
        ));
    }
    if prev.playlist_type.as_deref() == Some("EVENT") && next.media_sequence != prev.media_sequence
    {
        e.push("§6.2.1: an EVENT playlist removed segments".into());
    }
    if next.next_msn() < prev.next_msn() {
        e.push(format!(
            "§6.2.1: segments removed from the end ({} → {})",
            prev.next_msn(),
            next.next_msn()
        ));
    }
    if prev.endlist {
        if !next.endlist {
            e.push("§6.2.1: EXT-X-ENDLIST removed".into());
        }
        if next.next_msn() != prev.next_msn() || !next.trailing_parts.is_empty() {
            e.push("§6.2.1: media added after EXT-X-ENDLIST".into());
        }
    }
    // Every segment keeps its Discontinuity Sequence Number (§6.2.1: the number goes up as
    // segments with a discontinuity are removed, §4.3.3.3).
    if let (Some(a), Some(b)) = (prev.discontinuity_numbers(), next.discontinuity_numbers()) {
        for (msn, n) in &a {
            if let Some((_, m)) = b.iter().find(|(x, _)| x == msn)
                && m != n
            {
                e.push(format!(
                    "§6.2.1: msn {msn} had Discontinuity Sequence Number {n}, now {m}"
                ));
            }
        }
    }
    for s in &prev.segments {
        let Some(n) = next.segment(s.msn) else {
            continue;
        };
        if n.discontinuity != s.discontinuity {
            e.push(format!(
                "§6.2.1: the discontinuity before msn {} changed",
                s.msn
            ));
        }
        if n.uri != s.uri || (n.duration - s.duration).abs() > EPSILON || n.pdt_ms != s.pdt_ms {
            e.push(format!("§6.2.1: msn {} changed: {s:?} → {n:?}", s.msn));
        }
        if !n.parts.is_empty() && n.parts != s.parts {
            e.push(format!(
                "§6.2.1: the parts of msn {} changed or reappeared",
                s.msn
            ));
        }
    }
    // The open segment's parts may only grow, and keep its date.
    let open = prev.next_msn();
    if !prev.trailing_parts.is_empty() {
        let (parts, pdt, disc) = match next.segment(open) {
            Some(s) => (&s.parts, s.pdt_ms, s.discontinuity),
            None if next.next_msn() == open => (
                &next.trailing_parts,
                next.trailing_pdt_ms,
                next.trailing_discontinuity,
            ),
            // skipped or gone
            None => (
                &prev.trailing_parts,
                prev.trailing_pdt_ms,
                prev.trailing_discontinuity,
            ),
        };
        if !parts.is_empty()
            && (!parts.starts_with(&prev.trailing_parts)
                || pdt != prev.trailing_pdt_ms
                || disc != prev.trailing_discontinuity)
        {
            e.push(format!("§6.2.1: the parts of the open msn {open} changed"));
        }
    }
    if e.is_empty() { Ok(()) } else { Err(e) }
}

/// Merges a Playlist Delta Update into a full playlist fetched before it, as a client does
/// (bis §6.3.7): the skipped segments come from `prev_full` (without their parts, which a full
/// playlist no longer lists that far from the end, §6.2.2). Fails, as the client must then ask
/// for a full playlist, if `prev_full` lacks a skipped segment.
pub fn apply_delta(
    prev_full: &MediaPlaylist,
    delta: &MediaPlaylist,
) -> Result<MediaPlaylist, Error> {
    let Some(n) = delta.skipped else {
        return Ok(delta.clone());
    };
    if prev_full.skipped.is_some() {
        return Err(Error::Delta(
            "the previous playlist is itself a delta update".into(),
        ));
    }
    let mut segments = Vec::with_capacity(n as usize + delta.segments.len());
    for msn in delta.media_sequence..delta.media_sequence.saturating_add(n) {
        let s = prev_full.segment(msn).ok_or_else(|| {
            Error::Delta(format!("skipped msn {msn} is not in the previous playlist"))
        })?;
        segments.push(Segment {
            parts: Vec::new(),
            ..s.clone()
        });
    }
    segments.extend(delta.segments.iter().cloned());
    Ok(MediaPlaylist {
        skipped: None,
        segments,
        ..delta.clone()
    })
}

/// Checks a delta update against the full playlist rendered at the same moment: merging it
/// into the full one gives the full one, and it skipped only segments whose end is at least the
/// Skip Boundary from the end of the playlist (bis §6.2.5.1).
pub fn check_delta(full: &MediaPlaylist, delta: &MediaPlaylist) -> Result<(), Vec<String>> {
    let mut e = Vec::new();
    match apply_delta(full, delta) {
        Ok(merged) if merged == *full => {}
        Ok(merged) => e.push(format!(
            "§6.2.5.1: the merged delta update differs from the full playlist: {merged:?}"
        )),
        Err(err) => e.push(err.to_string()),
    }
    if let (Some(n), Some(boundary)) = (
        delta.skipped,
        full.server_control.as_ref().and_then(|c| c.can_skip_until),
    ) {
        let mut after = full.trailing_duration();
        for s in full.segments.iter().rev() {
            if s.msn < delta.media_sequence + n && after < boundary - EPSILON {
                e.push(format!(
                    "§6.2.5.1: msn {} skipped {after} s from the end, within the Skip Boundary",
                    s.msn
                ));
            }
            after += s.duration;
        }
    }
    if e.is_empty() { Ok(()) } else { Err(e) }
}
