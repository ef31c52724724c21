//! A simulated hour of a live rendition, every playlist through the validator (and through
//! `m3u8-rs` as an independent parser), blocking-reload decisions, the replay, and the
//! validator's own rejections.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::validate::{self, MediaPlaylist};
use super::{Block, Config, PartId, Rendition, multivariant};

const START_MS: u64 = 1_717_000_000_000;
const PART: Duration = Duration::from_millis(400);

/// Parses and checks a playlist, panicking with the text and the errors.
fn valid(text: &str) -> MediaPlaylist {
    let p = validate::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    if let Err(errs) = validate::check(&p) {
        panic!("{errs:#?}\n{text}");
    }
    p
}

fn sequence_ok(prev: &MediaPlaylist, next: &MediaPlaylist) {
    if let Err(errs) = validate::check_sequence(prev, next) {
        panic!("{errs:#?}\n{prev:#?}\n{next:#?}");
    }
}

/// The same playlist read by m3u8-rs: same segments, media sequence, target and end.
fn cross_check(text: &str, ours: &MediaPlaylist) {
    let theirs = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("m3u8-rs parses it");
    assert_eq!(theirs.media_sequence, ours.media_sequence);
    assert_eq!(Some(theirs.target_duration), ours.target_duration);
    assert_eq!(theirs.end_list, ours.endlist);
    assert_eq!(theirs.segments.len(), ours.segments.len());
    for (t, o) in theirs.segments.iter().zip(&ours.segments) {
        assert_eq!(t.uri, o.uri);
        assert!((f64::from(t.duration) - o.duration).abs() < 1e-4);
        let pdt = t
            .program_date_time
            .expect("every segment has a date")
            .timestamp_millis();
        assert_eq!(Some(pdt), o.pdt_ms);
    }
}

/// An hour of 400 ms parts with jittery wall-clock times: every full playlist and delta update
/// is valid, a delta merged into the full playlist (now, or from up to half the Skip Boundary
/// ago) is the full playlist, successive playlists change only as allowed, the preload hint
/// names the next part, and `live.m3u8` stays the same size whatever the age.
#[test]
fn simulated_hour() {
    let cfg = Config::default();
    let mut r = Rendition::new(cfg);
    let mut rng = StdRng::seed_from_u64(7);
    let parts = 3600 * 1000 / PART.as_millis() as u64;
    let mut history: VecDeque<MediaPlaylist> = VecDeque::new(); // full playlists, last 6 s
    let mut prev_dvr: Option<MediaPlaylist> = None;
    let (mut max_lines, mut max_bytes, mut deltas) = (0, 0, 0);
    for i in 0..parts {
        let hinted = r.next_part();
        let pdt = START_MS + i * 400 + rng.random_range(0..40);
        assert_eq!(r.push_part(PART, pdt), hinted);
        assert!(r.has_part(hinted));

        let text = r.live_playlist(false);
        let full = valid(&text);
        max_lines = max_lines.max(text.lines().count());
        max_bytes = max_bytes.max(text.len());
        let hint = &full.preload_hints[0].uri;
        assert_eq!(*hint, super::part_uri(r.next_part()));
        assert!(!r.has_part(r.next_part()));

        let delta_text = r.live_playlist(true);
        let delta = valid(&delta_text);
        if let Err(errs) = validate::check_delta(&full, &delta) {
            panic!("{errs:#?}\n{text}\n{delta_text}");
        }
        if delta.skipped.is_some() {
            deltas += 1;
            // A client may hold a full playlist up to half the Skip Boundary old (§6.3.7).
            let oldest = history.front().expect("history");
            assert_eq!(validate::apply_delta(oldest, &delta).as_ref(), Ok(&full));
        }
        if let Some(prev) = history.back() {
            sequence_ok(prev, &full);
            sequence_ok(prev, &delta);
        }
        history.push_back(full.clone());
        if history.len() > (r.skip_until() / 2).as_millis() as usize / 400 {
            history.pop_front();
        }
        if i % 97 == 0 {
            cross_check(&text, &full);
        }
        if i % 250 == 0 {
            let dvr_text = r.dvr_playlist();
            let dvr = valid(&dvr_text);
            assert_eq!(dvr.segments.len(), r.segments().count());
            cross_check(&dvr_text, &dvr);
            if let Some(prev) = &prev_dvr {
                sequence_ok(prev, &dvr);
            }
            prev_dvr = Some(dvr);
        }
    }
    // Bounded whatever the age: 7 header lines, 10 segments of 3 lines, 4 segments' parts.
    assert!(max_lines <= 60, "{max_lines} lines");
    assert!(max_bytes <= 2500, "{max_bytes} bytes");
    assert!(
        deltas > parts - 100,
        "delta updates skipped segments only {deltas} times"
    );

    r.end();
    let ended = valid(&r.live_playlist(false));
    assert!(ended.endlist && ended.preload_hints.is_empty() && ended.trailing_parts.is_empty());
    assert_eq!(
        r.live_playlist(true),
        r.live_playlist(false),
        "_HLS_skip is ignored once ended"
    );
    sequence_ok(history.back().unwrap(), &ended);
    let dvr_text = r.dvr_playlist();
    let dvr = valid(&dvr_text);
    sequence_ok(prev_dvr.as_ref().unwrap(), &dvr);
    cross_check(&dvr_text, &dvr);
    assert!(dvr.endlist && dvr.playlist_type.as_deref() == Some("EVENT"));
    assert_eq!(dvr.segments.len(), 1800);
    assert_eq!(
        dvr.segments.iter().map(|s| s.duration).sum::<f64>().round(),
        3600.0
    );
    assert_eq!(
        dvr.segments[0].pdt_ms.map(|t| t as u64 / 1000),
        Some(START_MS / 1000)
    );
}

/// Parts of varying length (300–400 ms), the brief's 6-segment window: segments stay within
/// the target duration, playlists stay valid; with only 12 s listed no segment is far enough
/// behind the Skip Boundary, so a delta update is the full playlist.
#[test]
fn uneven_parts() {
    let cfg = Config {
        live_segments: 6,
        ..Config::default()
    };
    let mut r = Rendition::new(cfg);
    let mut rng = StdRng::seed_from_u64(3);
    let mut now = START_MS;
    let mut prev: Option<MediaPlaylist> = None;
    for _ in 0..2000 {
        let d = Duration::from_millis(rng.random_range(300..=400));
        r.push_part(d, now);
        now += d.as_millis() as u64;
        let full = valid(&r.live_playlist(false));
        let delta = valid(&r.live_playlist(true));
        validate::check_delta(&full, &delta).unwrap();
        if let Some(p) = &prev {
            sequence_ok(p, &full);
        }
        prev = Some(full);
    }
    for s in r.segments() {
        assert!(
            s.duration >= Duration::from_millis(1800) && s.duration < Duration::from_millis(2300),
            "{s:?}"
        );
        assert_eq!(s.duration, s.parts.iter().sum());
    }
    assert_eq!(r.target_duration(), 2);
}

/// `_HLS_msn` / `_HLS_part` answers (bis §6.2.5.2).
#[test]
fn blocking_decisions() {
    use Block::{Ready, TooFar, Wait};
    let mut r = Rendition::new(Config::default());
    assert_eq!(r.blocking(0, None), Wait);
    assert_eq!(r.blocking(0, Some(0)), Wait);
    assert_eq!(r.blocking(1, None), Wait);
    assert_eq!(
        r.blocking(2, None),
        TooFar,
        "more than the last msn (none: -1) plus two"
    );
    for i in 0..7 {
        r.push_part(PART, START_MS + i * 400);
    }
    // msn 0 complete (parts 0-4), msn 1 open with parts 0-1.
    assert!(r.has_segment(0) && !r.has_segment(1));
    assert_eq!(r.next_part(), PartId { msn: 1, part: 2 });
    assert_eq!(r.blocking(0, None), Ready);
    assert_eq!(r.blocking(1, None), Wait);
    assert_eq!(r.blocking(2, None), Wait, "last msn 0 plus two");
    assert_eq!(r.blocking(3, None), TooFar);
    assert_eq!(r.blocking(1, Some(1)), Ready);
    assert_eq!(r.blocking(1, Some(2)), Wait, "the preload-hinted part");
    assert_eq!(r.blocking(0, Some(4)), Ready);
    assert_eq!(
        r.blocking(0, Some(5)),
        Ready,
        "past the last part of msn 0: part 0 of msn 1"
    );
    assert_eq!(r.blocking(0, Some(1000)), Ready);
    // Advance Part Limit: 3 / 0.4 s = 7.5 parts past the last one (msn 1 part 1).
    assert_eq!(r.advance_part_limit(), 7.5);
    assert_eq!(r.blocking(1, Some(8)), Wait);
    assert_eq!(r.blocking(1, Some(9)), TooFar);
    assert_eq!(
        r.blocking(2, Some(3)),
        Wait,
        "msn 1 has 5 parts: msn 2 part 3 is 7 ahead"
    );
    assert_eq!(r.blocking(2, Some(4)), TooFar);
    // Once ended, directives are ignored.
    r.end();
    assert_eq!(r.blocking(1, Some(2)), Ready);
    assert_eq!(r.blocking(99, Some(99)), Ready);
}

/// The replay: every segment since the start, `EVENT` while live, `EXT-X-ENDLIST` appended at
/// the end (the type stays `EVENT`: bis §6.2.1 allows only appending to an EVENT playlist).
#[test]
fn dvr_and_end() {
    let mut r = Rendition::new(Config::default());
    for i in 0..23 {
        r.push_part(PART, START_MS + i * 400);
    }
    let live = valid(&r.dvr_playlist());
    assert_eq!(live.segments.len(), 4);
    assert!(!live.endlist && live.playlist_type.as_deref() == Some("EVENT"));
    assert!(live.server_control.is_none() && live.part_target.is_none());
    r.end();
    let ended = valid(&r.dvr_playlist());
    sequence_ok(&live, &ended);
    assert_eq!(ended.segments.len(), 5);
    assert_eq!(ended.segments[4].duration, 1.2);
    assert!(ended.endlist);
    let uris: Vec<_> = ended.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "seg/0.m4s",
            "seg/1.m4s",
            "seg/2.m4s",
            "seg/3.m4s",
            "seg/4.m4s"
        ]
    );
    let text = r.live_playlist(false);
    assert!(
        text.ends_with("#EXT-X-ENDLIST\n") && !text.contains("PRELOAD-HINT"),
        "{text}"
    );
}

#[test]
#[should_panic(expected = "push_part after end")]
fn no_parts_after_end() {
    let mut r = Rendition::new(Config::default());
    r.end();
    r.push_part(PART, START_MS);
}

#[test]
fn first_playlists() {
    let mut r = Rendition::new(Config::default());
    let empty = valid(&r.live_playlist(false));
    assert!(empty.segments.is_empty());
    assert_eq!(empty.preload_hints[0].uri, "part/0.0.m4s");
    r.push_part(PART, START_MS);
    let text = r.live_playlist(false);
    let one = valid(&text);
    sequence_ok(&empty, &one);
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.2,CAN-SKIP-UNTIL=12.0\n\
         #EXT-X-PART-INF:PART-TARGET=0.4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2024-05-29T16:26:40.000Z\n\
         #EXT-X-PART:DURATION=0.4,URI=\"part/0.0.m4s\",INDEPENDENT=YES\n\
         #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part/0.1.m4s\"\n"
    );
}

#[test]
fn multivariant_points_to_live() {
    assert_eq!(
        multivariant(96_000),
        "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=96000,CODECS=\"opus\"\nlive.m3u8\n"
    );
    let m = m3u8_rs::parse_playlist_res(multivariant(96_000).as_bytes()).unwrap();
    let m3u8_rs::Playlist::MasterPlaylist(m) = m else {
        panic!("not a multivariant playlist")
    };
    assert_eq!(m.variants.len(), 1);
    assert_eq!(m.variants[0].uri, "live.m3u8");
}

/// A rendition 30 s in, for the validator's negative tests.
fn sample() -> (Rendition, String) {
    let mut r = Rendition::new(Config::default());
    for i in 0..77 {
        r.push_part(PART, START_MS + i * 400);
    }
    let text = r.live_playlist(false);
    (r, text)
}

fn errors(text: &str) -> Vec<String> {
    validate::check(&validate::parse(text).unwrap()).expect_err(text)
}

#[test]
fn validator_rejects() {
    let (r, text) = sample();
    valid(&text);
    let bad = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        errors(&text.replacen(from, to, 1)).join("\n")
    };
    assert!(validate::parse(&text["#EXTM3U\n".len()..]).is_err());
    assert!(validate::parse(&format!("\u{feff}{text}")).is_err());
    assert!(bad("VERSION:9", "VERSION:5").contains("§8"));
    assert!(bad("TARGETDURATION:2", "TARGETDURATION:1").contains("§4.4.3.1"));
    assert!(bad("PART-HOLD-BACK=1.2", "PART-HOLD-BACK=0.7").contains("MUST"));
    assert!(bad("PART-HOLD-BACK=1.2", "PART-HOLD-BACK=1.0").contains("SHOULD"));
    assert!(bad("CAN-SKIP-UNTIL=12.0", "CAN-SKIP-UNTIL=11.0").contains("CAN-SKIP-UNTIL"));
    assert!(
        bad("DURATION=0.4,URI=\"part/14", "DURATION=0.41,URI=\"part/14").contains("PART-TARGET")
    );
    assert!(bad("\"part/15.1.m4s\"", "\"part/15.3.m4s\"").contains("not part 1"));
    assert!(
        validate::parse(&text.replacen("#EXT-X-VERSION", "#EXTM3U\n#EXT-X-VERSION", 1)).is_err()
    );
    let next = super::part_uri(r.next_part());
    assert!(bad(&next, "part/15.4.m4s").contains("preload hint"));
    let ended = format!("{text}#EXT-X-ENDLIST\n");
    assert!(errors(&ended).join("\n").contains("MUST NOT"));

    // Parts far from the live edge, or out of order.
    let mut p = validate::parse(&text).unwrap();
    p.segments[0].parts = p.segments.last().unwrap().parts.clone();
    let e = validate::check(&p).unwrap_err().join("\n");
    assert!(
        e.contains("out of order") && e.contains("3 target durations"),
        "{e}"
    );

    // Sequences: going back, a changed segment, a changed header.
    let (mut r2, _) = sample();
    let older = validate::parse(&r2.live_playlist(false)).unwrap();
    for i in 77..90 {
        r2.push_part(PART, START_MS + i * 400);
    }
    let newer = validate::parse(&r2.live_playlist(false)).unwrap();
    validate::check_sequence(&older, &newer).unwrap();
    let e = validate::check_sequence(&newer, &older)
        .unwrap_err()
        .join("\n");
    assert!(
        e.contains("went back") && e.contains("removed from the end"),
        "{e}"
    );
    let mut changed = newer.clone();
    changed.segments[3].uri = "seg/other.m4s".into();
    assert!(validate::check_sequence(&older, &changed).is_err());
    changed = newer.clone();
    changed.target_duration = Some(3);
    assert!(validate::check_sequence(&older, &changed).is_err());

    // A delta update cannot be merged into a playlist that lacks the skipped segments.
    let mut r3 = Rendition::new(Config::default());
    for i in 0..400 {
        r3.push_part(PART, START_MS + i * 400);
    }
    let delta = validate::parse(&r3.live_playlist(true)).unwrap();
    assert!(delta.skipped.is_some());
    assert!(matches!(
        validate::apply_delta(&older, &delta),
        Err(validate::Error::Delta(_))
    ));
    let full = validate::parse(&r3.live_playlist(false)).unwrap();
    let mut wrong = delta.clone();
    wrong.skipped = Some(delta.skipped.unwrap() + 1);
    assert!(validate::check_delta(&full, &wrong).is_err());
}

/// Playlist lines the fuzzer recombines: valid fragments and near misses.
const LINES: &[&str] = &[
    "#EXTM3U",
    "#EXT-X-VERSION:9",
    "#EXT-X-VERSION:x",
    "#EXT-X-TARGETDURATION:2",
    "#EXT-X-MEDIA-SEQUENCE:18446744073709551615",
    "#EXT-X-MEDIA-SEQUENCE:3",
    "#EXT-X-SKIP:SKIPPED-SEGMENTS=18446744073709551615",
    "#EXT-X-SKIP:SKIPPED-SEGMENTS=2",
    "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.2,CAN-SKIP-UNTIL=12.0",
    "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=\"YES",
    "#EXT-X-PART-INF:PART-TARGET=0.4",
    "#EXT-X-PART-INF:PART-TARGET=1e400",
    "#EXT-X-MAP:URI=\"init.mp4\"",
    "#EXT-X-PROGRAM-DATE-TIME:2024-05-29T16:26:40.000Z",
    "#EXT-X-PROGRAM-DATE-TIME:2024-0é-29T16",
    "#EXTINF:2.0,",
    "#EXTINF:99999999999999999999999999999999.5,",
    "#EXTINF:,",
    "seg/1.m4s",
    "#EXT-X-PART:DURATION=0.4,URI=\"part/1.0.m4s\",INDEPENDENT=YES",
    "#EXT-X-PART:DURATION=0.4,URI=",
    "#EXT-X-PART:DURATION=0.4,,URI=\"x\"",
    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part/1.1.m4s\"",
    "#EXT-X-ENDLIST",
    "#EXT-X-PLAYLIST-TYPE:EVENT",
    "# comment",
    "",
    "é",
    "#EXT-X-UNKNOWN:A=B",
    "#EXT-X-DISCONTINUITY",
    "#EXT-X-DISCONTINUITY:",
    "#EXT-X-DISCONTINUITY-SEQUENCE:18446744073709551615",
    "#EXT-X-DISCONTINUITY-SEQUENCE:1",
    "#EXT-X-DISCONTINUITY-SEQUENCE:01",
    "#EXT-X-PROGRAM-DATE-TIME:9999-12-31T23:59:59.999Z",
    "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z",
];

proptest! {
    #[test]
    fn parser_never_panics_on_text(text in "\\PC*") {
        let _ = validate::parse(&text);
        let _ = validate::parse(&format!("#EXTM3U\n{text}"));
    }

    #[test]
    fn parser_and_checks_never_panic_on_lines(idx in prop::collection::vec(0..LINES.len(), 0..40)) {
        let body: Vec<&str> = idx.iter().map(|&i| LINES[i]).collect();
        let text = format!("#EXTM3U\n{}\n", body.join("\n"));
        if let Ok(p) = validate::parse(&text) {
            let _ = validate::check(&p);
            let _ = validate::check_sequence(&p, &p);
            if let Ok(m) = validate::apply_delta(&p, &p) {
                let _ = validate::check_delta(&m, &p);
            }
        }
    }

    #[test]
    fn parser_never_panics_on_damaged_playlists(cut in 0usize..4000, drop in 0usize..80) {
        let (_, text) = sample();
        let mut lines: Vec<&str> = text.lines().collect();
        if drop < lines.len() {
            lines.remove(drop);
        }
        let joined = lines.join("\n");
        let mut end = cut.min(joined.len());
        while !joined.is_char_boundary(end) {
            end -= 1;
        }
        if let Ok(p) = validate::parse(&joined[..end]) {
            let _ = validate::check(&p);
        }
    }

    #[test]
    fn directives_never_panic(q in "\\PC*") {
        let _ = super::Directives::parse(&q);
    }
}
