//! A rendition continued across restarts: numbering goes on, the replay keeps every run with a
//! discontinuity between them, and `live.m3u8` slides past a discontinuity as the spec says.

use std::time::Duration;

use super::journal::{self, Entry};
use super::validate::{self, MediaPlaylist};
use super::{Block, Config, PartId, Rendition};

const START_MS: u64 = 1_717_000_000_000;
const PART: Duration = Duration::from_millis(400);

fn valid(text: &str) -> MediaPlaylist {
    let p = validate::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    if let Err(errs) = validate::check(&p) {
        panic!("{errs:#?}\n{text}");
    }
    p
}

fn sequence_ok(prev: &MediaPlaylist, next: &MediaPlaylist, what: &str) {
    if let Err(errs) = validate::check_sequence(prev, next) {
        panic!("{what}: {errs:#?}\n{prev:#?}\n{next:#?}");
    }
}

/// The journal of a rendition, through its text form, as a restarted server reads it.
fn journal_of(r: &Rendition) -> journal::Journal {
    let entries: Vec<Entry> = r.segments().map(|s| Entry::of(s, s.msn * 7)).collect();
    journal::parse(&journal::render(&entries))
}

fn resumed(r: &Rendition) -> Rendition {
    let j = journal_of(r);
    assert_eq!(j.unusable, 0);
    let parts = j.parts();
    Rendition::resume(
        *r.config(),
        j.entries.iter().map(Entry::segment).collect(),
        parts,
    )
}

/// Three runs (the server stopped twice): no msn or part is named twice, the replay holds all
/// three with a discontinuity where each later run starts, every playlist is valid, and live
/// playlists fetched in a row (across the slide past each discontinuity) change only as
/// allowed: every segment keeps its Discontinuity Sequence Number.
#[test]
fn three_runs_one_rendition() {
    let cfg = Config::default();
    let mut r = Rendition::new(cfg);
    let mut t = START_MS;
    let mut named: Vec<PartId> = Vec::new();
    let mut prev_live: Option<MediaPlaylist> = None;
    let mut prev_dvr: Option<MediaPlaylist> = None;
    let mut run_starts = Vec::new();
    for (run, parts) in [33u64, 61, 90].into_iter().enumerate() {
        if run > 0 {
            r.suspend();
            let before = valid(&r.live_playlist(false));
            assert!(!before.endlist, "a suspended rendition is not over");
            prev_dvr = Some(valid(&r.dvr_playlist()));
            r = resumed(&r);
            // The server was down for a minute.
            t += 60_000;
            run_starts.push(r.next_part().msn);
            assert_eq!(r.next_part().part, 0);
        }
        for _ in 0..parts {
            let id = r.push_part(PART, t);
            t += 400;
            assert!(!named.contains(&id), "{id:?} named twice");
            named.push(id);
            let live = valid(&r.live_playlist(false));
            if let Some(prev) = &prev_live {
                sequence_ok(prev, &live, "live");
            }
            let delta = valid(&r.live_playlist(true));
            validate::check_delta(&live, &delta).unwrap_or_else(|e| panic!("{e:#?}"));
            prev_live = Some(live);
            let dvr = valid(&r.dvr_playlist());
            if let Some(prev) = &prev_dvr {
                sequence_ok(prev, &dvr, "dvr");
            }
            prev_dvr = Some(dvr);
        }
    }
    r.end();
    let dvr = valid(&r.dvr_playlist());
    assert!(dvr.endlist);
    assert_eq!(dvr.discontinuity_sequence, 0);
    let msns: Vec<u64> = dvr.segments.iter().map(|s| s.msn).collect();
    assert_eq!(msns, (0..msns.len() as u64).collect::<Vec<_>>());
    let at: Vec<u64> = dvr
        .segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.msn)
        .collect();
    assert_eq!(at, run_starts, "a discontinuity where each run starts");
    let total: f64 = dvr.segments.iter().map(|s| s.duration).sum();
    assert!((total - (33.0 + 61.0 + 90.0) * 0.4).abs() < 1e-3, "{total}");
    assert!(dvr.segments.iter().all(|s| s.pdt_ms.is_some()));
    // m3u8-rs reads the discontinuities the same way.
    let theirs = m3u8_rs::parse_media_playlist_res(r.dvr_playlist().as_bytes()).unwrap();
    let theirs_at: Vec<u64> = theirs
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.discontinuity)
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(theirs_at, run_starts);
}

/// Right after a restart: the open segment of the new run carries the discontinuity (before
/// its parts), the earlier segments are listed without parts, and the Discontinuity Sequence
/// Number appears once the window has slid past the discontinuity.
#[test]
fn the_live_window_slides_past_a_discontinuity() {
    let cfg = Config::default();
    let mut r = Rendition::new(cfg);
    for i in 0..40 {
        r.push_part(PART, START_MS + i * 400);
    }
    r.suspend();
    let mut r = resumed(&r);
    let first = r.next_part().msn;
    assert_eq!(first, 8);
    // A blocking reload for a part of the earlier run is answered at once.
    assert_eq!(r.blocking(3, Some(2)), Block::Ready);
    assert_eq!(r.blocking(7, Some(0)), Block::Ready);
    assert_eq!(r.blocking(6, Some(9)), Block::Ready);
    assert_eq!(r.blocking(8, Some(0)), Block::Wait);
    r.push_part(PART, START_MS + 100_000);
    let text = r.live_playlist(false);
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2024-05-29T16:28:20.000Z\n#EXT-X-PART:DURATION=0.4,URI=\"part/8.0.m4s\""),
        "{text}"
    );
    assert!(
        !text.contains("part/7."),
        "no parts of the earlier run: {text}"
    );
    let p = valid(&text);
    assert!(p.trailing_discontinuity && !p.has_discontinuity_sequence);
    // Until msn 8 leaves the window, no number; then 1.
    let mut i = 1;
    loop {
        r.push_part(PART, START_MS + 100_000 + i * 400);
        i += 1;
        let p = valid(&r.live_playlist(false));
        if p.media_sequence > first {
            assert_eq!(p.discontinuity_sequence, 1, "{}", r.live_playlist(false));
            assert!(p.segments.iter().all(|s| !s.discontinuity));
            break;
        }
        assert_eq!(p.discontinuity_sequence, 0);
        assert!(p.segment(first).is_none_or(|s| s.discontinuity));
    }
}

/// The validator's discontinuity rules.
#[test]
fn validator_checks_discontinuities() {
    let head = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n";
    let seg = |msn: u64, pdt: &str| {
        format!("#EXT-X-PROGRAM-DATE-TIME:2024-05-29T16:{pdt}.000Z\n#EXTINF:2.0,\nseg/{msn}.m4s\n")
    };
    // Well-formed: a discontinuity, dated.
    let ok = format!(
        "{head}#EXT-X-DISCONTINUITY-SEQUENCE:2\n{}#EXT-X-DISCONTINUITY\n{}{}{}",
        seg(4, "26:40"),
        seg(5, "30:00"),
        seg(6, "30:02"),
        seg(7, "30:04")
    );
    let p = valid(&ok);
    assert_eq!(
        p.discontinuity_numbers(),
        Some(vec![(4, 2), (5, 3), (6, 3), (7, 3)])
    );
    // The number after the first segment or after a discontinuity tag: a syntax error.
    for bad in [
        format!("{head}{}#EXT-X-DISCONTINUITY-SEQUENCE:1\n", seg(4, "26:40")),
        format!(
            "{head}#EXT-X-DISCONTINUITY\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n{}",
            seg(4, "26:40")
        ),
        format!(
            "{head}#EXT-X-DISCONTINUITY\n#EXT-X-DISCONTINUITY\n{}",
            seg(4, "26:40")
        ),
        format!(
            "{head}#EXT-X-DISCONTINUITY-SEQUENCE:01x\n{}",
            seg(4, "26:40")
        ),
    ] {
        assert!(validate::parse(&bad).is_err(), "{bad}");
    }
    // Undated after a discontinuity in a dated playlist.
    let undated = format!(
        "{head}{}#EXT-X-DISCONTINUITY\n#EXTINF:2.0,\nseg/5.m4s\n",
        seg(4, "26:40")
    );
    let errs = validate::check(&validate::parse(&undated).unwrap()).unwrap_err();
    assert!(errs.iter().any(|e| e.contains("§4.3.2.6")), "{errs:?}");
    // A slide past the discontinuity (msn 4 and 5 removed) must raise the number to 3.
    let slid = |dsn: u64| {
        format!(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:6\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:{dsn}\n{}{}{}",
            seg(6, "30:02"),
            seg(7, "30:04"),
            seg(8, "30:06")
        )
    };
    let errs = validate::check_sequence(&p, &valid(&slid(2))).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("Discontinuity Sequence Number")),
        "{errs:?}"
    );
    validate::check_sequence(&p, &valid(&slid(3))).unwrap();
    // Removing msn 4 alone (no discontinuity on it) leaves the number as it is.
    let one_off = ok
        .replace("MEDIA-SEQUENCE:4", "MEDIA-SEQUENCE:5")
        .replace(&seg(4, "26:40"), "")
        + &seg(8, "30:06");
    validate::check_sequence(&p, &valid(&one_off)).unwrap();
    // A discontinuity that appears on a segment already listed.
    let moved = ok.replace("#EXT-X-DISCONTINUITY\n", "").replace(
        "#EXT-X-DISCONTINUITY-SEQUENCE:2\n",
        "#EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXT-X-DISCONTINUITY\n",
    );
    assert!(validate::check_sequence(&p, &valid(&moved)).is_err());
    // A date that goes back across the discontinuity.
    let back = ok.replace("30:00", "20:00");
    let errs = validate::check(&validate::parse(&back).unwrap()).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("before the end")),
        "{errs:?}"
    );
    // An EVENT playlist from 0 with a number.
    let event = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXTINF:2.0,\nseg/0.m4s\n";
    assert!(validate::check(&validate::parse(event).unwrap()).is_err());
}
