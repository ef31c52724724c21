//! The WebVTT subtitles rendition beside the audio (RFC 8216 §3.5, §4.4.6.1): its entry in the
//! multivariant playlist, and its media playlist, whose segments have the audio segments'
//! numbers and durations (`subs/{msn}.vtt`). It is a plain live playlist, without parts: a
//! segment is listed once its span has been captioned, so it lags the audio by the captions'
//! delay, and never changes once listed.

use std::fmt::Write as _;
use std::time::Duration;

use super::{CODECS, secs};

/// `GROUP-ID` of the subtitles.
pub const GROUP: &str = "subs";
/// URI of the subtitles playlist, relative to the multivariant playlist.
pub const PLAYLIST_URI: &str = "subs.m3u8";

/// URI of subtitles segment `msn`, relative to the subtitles playlist.
pub fn segment_uri(msn: u64) -> String {
    format!("subs/{msn}.vtt")
}

/// The multivariant playlist with a subtitles rendition in `language` (BCP 47) for the one
/// audio variant. Not `DEFAULT`: players show captions when asked; `AUTOSELECT` lets them pick
/// the track by the user's language; `CHARACTERISTICS` says they transcribe what is said.
pub fn multivariant(bandwidth: u32, language: &str) -> String {
    format!(
        "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"{GROUP}\",NAME=\"Captions ({language})\",\
         LANGUAGE=\"{language}\",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,\
         CHARACTERISTICS=\"public.accessibility.transcribes-spoken-dialog\",URI=\"{PLAYLIST_URI}\"\n\
         #EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{CODECS}\",SUBTITLES=\"{GROUP}\"\nlive.m3u8\n"
    )
}

/// One subtitles segment as listed: its number and duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// Its Media Sequence Number (the audio segment's).
    pub msn: u64,
    /// Its duration (the audio segment's).
    pub duration: Duration,
    /// The wall clock of its start (the audio segment's `EXT-X-PROGRAM-DATE-TIME`), Unix ms.
    pub pdt_unix_ms: u64,
}

/// The subtitles media playlist: `segments` (consecutive numbers, oldest first) with
/// `target` seconds as `EXT-X-TARGETDURATION`; `ended` adds `EXT-X-ENDLIST`. With no segment
/// yet, `next_msn` is the sequence number the first one will have.
pub fn playlist(segments: &[Listed], target: u64, next_msn: u64, ended: bool) -> String {
    let first = segments.first().map_or(next_msn, |s| s.msn);
    let target = segments
        .iter()
        .map(|s| s.duration.as_secs_f64().round() as u64)
        .max()
        .unwrap_or(0)
        .max(target);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for s in segments {
        let _ = write!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{},\n{}\n",
            super::time::format(s.pdt_unix_ms),
            secs(s.duration),
            segment_uri(s.msn)
        );
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multivariant_playlist_names_the_subtitles() {
        let text = multivariant(96_000, "en");
        let parsed = m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap();
        let m3u8_rs::Playlist::MasterPlaylist(m) = parsed else {
            panic!("not multivariant")
        };
        assert_eq!(m.alternatives.len(), 1);
        let a = &m.alternatives[0];
        assert_eq!(a.media_type, m3u8_rs::AlternativeMediaType::Subtitles);
        assert_eq!(a.uri.as_deref(), Some(PLAYLIST_URI));
        assert_eq!(a.language.as_deref(), Some("en"));
        assert_eq!(m.variants[0].subtitles.as_deref(), Some(GROUP));
    }

    #[test]
    fn a_live_then_ended_playlist() {
        let segs = [
            Listed {
                msn: 4,
                duration: Duration::from_millis(2000),
                pdt_unix_ms: 1_700_000_000_000,
            },
            Listed {
                msn: 5,
                duration: Duration::from_millis(1920),
                pdt_unix_ms: 1_700_000_002_000,
            },
        ];
        let text = playlist(&segs, 2, 6, false);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:2.0,\nsubs/4.vtt\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n#EXTINF:1.92,\nsubs/5.vtt\n"
        );
        let parsed = m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap();
        let m3u8_rs::Playlist::MediaPlaylist(m) = parsed else {
            panic!("not a media playlist")
        };
        assert_eq!(m.media_sequence, 4);
        assert_eq!(m.segments.len(), 2);
        assert!(playlist(&segs, 2, 6, true).ends_with("#EXT-X-ENDLIST\n"));
        assert!(playlist(&[], 2, 9, false).contains("#EXT-X-MEDIA-SEQUENCE:9\n"));
    }
}
