//! Low-Latency HLS for one audio rendition: a pure, sans-IO model of the segments and parts of a
//! live space and the playlists that describe them.
//!
//! The server feeds [`Rendition::push_part`] with each complete fMP4 part as it is muxed (its
//! duration and wall-clock time are arguments: nothing here reads a clock) and asks for text:
//! [`Rendition::live_playlist`] (`live.m3u8`, the LL-HLS media playlist, full or as a Playlist
//! Delta Update), [`Rendition::dvr_playlist`] (`dvr.m3u8`, every segment since the start: the
//! replay once the space has ended) and [`multivariant`] (`index.m3u8`). Blocking playlist
//! reloads are decided by [`Rendition::blocking`] from the parsed [`Directives`]; the server
//! holds the request while the answer is [`Block::Wait`], for at most
//! [`Rendition::max_block`].
//!
//! Spec references are to RFC 8216 and its second edition, draft-pantos-hls-rfc8216bis
//! ("bis"), whose section numbers are used below:
//! - §4.4.3.1 `EXT-X-TARGETDURATION` is an integer ≥ every `EXTINF` rounded to the nearest
//!   integer, and never changes.
//! - §4.4.3.7 `EXT-X-PART-INF:PART-TARGET`; §4.4.4.9 every part ≤ `PART-TARGET` (and ≥ 85 % of it
//!   unless `INDEPENDENT=YES` or last of its segment: every Opus part is independent).
//! - §4.4.3.8 `EXT-X-SERVER-CONTROL`: `PART-HOLD-BACK` ≥ 2× `PART-TARGET` (MUST), ≥ 3× (SHOULD:
//!   we use 3×); `CAN-SKIP-UNTIL` ≥ 6× target duration (we use 6×).
//! - §4.4.5.2 `EXT-X-SKIP:SKIPPED-SEGMENTS` and §6.2.5.1 Playlist Delta Updates: segments whose
//!   end is further than the Skip Boundary from the end of the playlist are replaced.
//! - §4.4.5.3 `EXT-X-PRELOAD-HINT`: names the next part; never with `EXT-X-ENDLIST`.
//! - §6.2.2 `EXT-X-PART` tags are removed once more than three target durations from the end,
//!   in playlist order; a live playlist never gets shorter than three target durations.
//! - §6.2.5.2 blocking reload: `_HLS_msn`/`_HLS_part` wait for the segment or part; a part index
//!   past the end of a finished segment means part 0 of the next; `_HLS_msn` more than two past
//!   the last segment, or `_HLS_part` more than the Advance Part Limit past the last part, is a
//!   400; `_HLS_part` without `_HLS_msn` is a 400; directives are ignored once the playlist has
//!   `EXT-X-ENDLIST`; blocking longer than three target durations is a 503.
//! - §6.2.1 a server may only append to a playlist, remove old segments and parts in order,
//!   update media metadata tags (preload hint, skip) and add `EXT-X-ENDLIST`; with
//!   `EXT-X-PLAYLIST-TYPE:EVENT` it may only append. So the replay stays `EVENT` and gets
//!   `EXT-X-ENDLIST` appended (which makes it a complete, unchanging playlist), rather than
//!   switching the type to `VOD`.
//! - §8 (versions): `EXT-X-MAP` needs version 6, `EXT-X-SKIP` version 9. `live.m3u8` always
//!   says 9, so a full playlist and a delta update share one header; `dvr.m3u8` says 6.
//!
//! - §4.3.2.3 / bis §4.4.4.3 `EXT-X-DISCONTINUITY` before the first segment of a run that
//!   continues an earlier one after a restart ([`Rendition::resume`]): a new encoder, a new
//!   timeline. §4.3.3.3 / bis §4.4.3.3 `EXT-X-DISCONTINUITY-SEQUENCE` in `live.m3u8` once its
//!   window has slid past a discontinuity (§6.2.1: the number goes up as such a segment is
//!   removed, so every segment keeps its Discontinuity Sequence Number); `dvr.m3u8` never
//!   removes a segment, so it never needs one. Every segment carries its
//!   `EXT-X-PROGRAM-DATE-TIME`, the first after a discontinuity included.
//!
//! URLs, relative to the playlist: `init.mp4`, `seg/{msn}.m4s`, `part/{msn}.{index}.m4s`
//! ([`segment_uri`], [`part_uri`]; numbers are canonical decimals, [`name`]). Media Sequence
//! Numbers and part counting go on across restarts ([`journal`]), so a URL names one object
//! for the life of the space. `dvr.m3u8` is a separate URL and not a variant in the
//! multivariant playlist: it is the same content, so a second `EXT-X-STREAM-INF` would present
//! it to players as an alternative to switch to.
//!
//! [`validate`] parses media playlists and checks them against these rules; the tests of this
//! module and the server's end-to-end tests run every emitted playlist through it.

mod check;
mod directive;
pub mod dvr;
pub mod journal;
pub mod name;
mod rendition;
pub mod subtitles;
pub mod time;
pub mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dvr;
#[cfg(test)]
mod tests_resume;

pub use check::{ConfigError, FRAME, MAX_LIVE_SEGMENTS, MAX_PART, MAX_SEGMENT, MIN_PART};
pub use directive::{DirectiveError, Directives};
pub use dvr::DvrText;
pub use rendition::{Block, Rendition, SegmentInfo};

use std::time::Duration;

/// URI of the initialization section (`EXT-X-MAP`), relative to the playlists.
pub const INIT_URI: &str = "init.mp4";
/// The `CODECS` value of the rendition: Opus in ISOBMFF.
pub const CODECS: &str = "opus";
/// `EXT-X-VERSION` of `live.m3u8`: 9, the lowest that allows `EXT-X-SKIP` (bis §8). Full
/// playlists say 9 too, so a delta update merged into a full playlist gives the full playlist.
pub const LIVE_VERSION: u32 = 9;
/// `EXT-X-VERSION` of `dvr.m3u8`: 6, the lowest that allows `EXT-X-MAP` outside an I-frame
/// playlist (RFC 8216 §7).
pub const DVR_VERSION: u32 = 6;

/// Timing of a rendition; [`Config::check`] says whether it gives valid playlists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Part Target Duration (`PART-TARGET`); every part pushed must be at most this long.
    /// Apple recommends 200 ms – 1 s; 400 ms is 20 Opus frames.
    pub part_target: Duration,
    /// Nominal segment duration, a whole number of parts: a segment is closed once it holds
    /// `segment_target` of media, give or take half a part.
    pub segment_target: Duration,
    /// Complete segments listed in `live.m3u8`. With more than `CAN-SKIP-UNTIL` (6 target
    /// durations) of segments, delta updates have something to skip.
    pub live_segments: usize,
    /// Trailing complete segments that keep their `EXT-X-PART` lines (besides the open one), as
    /// long as they are within three target durations of the end (bis §6.2.2).
    pub part_segments: usize,
}

impl Default for Config {
    /// 400 ms parts, 2 s segments, 10 segments in `live.m3u8` (20 s, so a delta update skips
    /// the oldest 4), parts kept on the last 3.
    fn default() -> Self {
        Self {
            part_target: Duration::from_millis(400),
            segment_target: Duration::from_secs(2),
            live_segments: 10,
            part_segments: 3,
        }
    }
}

/// A part: its segment's Media Sequence Number and its Part Index in that segment (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartId {
    /// Media Sequence Number of the parent segment.
    pub msn: u64,
    /// Part Index within the parent segment.
    pub part: u32,
}

/// URI of segment `msn`, relative to the playlists.
pub fn segment_uri(msn: u64) -> String {
    format!("seg/{msn}.m4s")
}

/// URI of a part, relative to the playlists.
pub fn part_uri(p: PartId) -> String {
    format!("part/{}.{}.m4s", p.msn, p.part)
}

/// The multivariant playlist (`index.m3u8`): one variant, `live.m3u8`, with the peak
/// `bandwidth` in bits per second. Opus packets are all independent (with pre-roll), hence
/// `EXT-X-INDEPENDENT-SEGMENTS`. `dvr.m3u8` is not listed: see the module docs.
pub fn multivariant(bandwidth: u32) -> String {
    format!(
        "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{CODECS}\"\nlive.m3u8\n"
    )
}

/// A duration as a decimal-floating-point number of seconds with microsecond precision and no
/// trailing zeros beyond the first decimal (`2.0`, `0.4`, `1.92`). Rounding is monotonic, so a
/// part no longer than the target never prints longer than it.
pub(crate) fn secs(d: Duration) -> String {
    let us = (d.as_nanos() + 500) / 1000;
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    let mut s = format!("{whole}.{frac:06}");
    while s.ends_with('0') && !s.ends_with(".0") {
        s.pop();
    }
    s
}
