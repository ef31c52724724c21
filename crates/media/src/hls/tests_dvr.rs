//! The incremental playlists are the whole ones: `dvr.m3u8` kept as segments close
//! ([`Rendition::dvr_text`]) is byte for byte [`Rendition::dvr_playlist`], and `live.m3u8`'s
//! Discontinuity Sequence Number (counted from a list of discontinuities) is the count over
//! every segment before its window, for any run of parts, restarts (through the journal) and end.

use std::time::Duration;

use proptest::prelude::*;

use super::dvr::PIECE;
use super::journal::{self, Entry};
use super::validate;
use super::{Config, DvrText, Rendition};

const START_MS: u64 = 1_717_000_000_000;

/// What happens next to the rendition.
#[derive(Debug, Clone)]
enum Op {
    /// `n` parts of `us` microseconds each (at most the part target), each dated its duration
    /// plus `gap_ms` (wall time the audio did not cover: a stall) after the one before.
    Parts { n: usize, us: u64, gap_ms: u64 },
    /// The server stops (suspend) and a new run continues from the journal.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..80, 1u64..=400_000, 0u64..1000)
            .prop_map(|(n, us, gap_ms)| Op::Parts { n, us, gap_ms }),
        1 => Just(Op::Restart),
    ]
}

/// A restarted server's rendition: the journal's text parsed back, as the server reads it.
fn resumed(r: &Rendition) -> Rendition {
    let entries: Vec<Entry> = r.segments().map(|s| Entry::of(s, s.msn)).collect();
    let j = journal::parse(&journal::render(&entries));
    assert_eq!(j.unusable, 0);
    let parts = j.parts();
    Rendition::resume(
        *r.config(),
        j.entries.iter().map(Entry::segment).collect(),
        parts,
    )
}

/// Every way of reading the kept `dvr.m3u8` gives the whole rendering.
fn same_dvr(r: &Rendition) -> Result<DvrText, TestCaseError> {
    let whole = r.dvr_playlist();
    let kept = r.dvr_text();
    prop_assert_eq!(&kept.render(), &whole);
    prop_assert_eq!(&kept.to_string(), &whole);
    prop_assert_eq!(kept.len(), whole.len());
    Ok(kept)
}

/// `EXT-X-DISCONTINUITY-SEQUENCE` of `live.m3u8` is there exactly when a discontinuity has left
/// the window, with their number: as the whole count over the segments before it gave.
fn same_discontinuity_sequence(r: &Rendition) -> Result<(), TestCaseError> {
    let start = r.live_window().start;
    let expected = r
        .segments()
        .take_while(|s| s.msn < start)
        .filter(|s| s.discontinuity)
        .count() as u64;
    for skip in [false, true] {
        let text = r.live_playlist(skip);
        let p = validate::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(p.has_discontinuity_sequence, expected > 0, "{}", text);
        prop_assert_eq!(p.discontinuity_sequence, expected, "{}", text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After every part, restart and the end, the kept `dvr.m3u8` is the whole rendering; a
    /// snapshot taken earlier still reads as it did (later segments do not touch it); and the
    /// final playlist passes the validator.
    #[test]
    fn incremental_equals_whole(
        ops in prop::collection::vec(op(), 1..24),
        short_window in any::<bool>(),
        end in any::<bool>(),
    ) {
        let cfg = if short_window {
            Config { live_segments: 4, part_segments: 2, ..Config::default() }
        } else {
            Config::default()
        };
        let mut r = Rendition::new(cfg);
        let mut pdt = START_MS;
        let mut earlier: Vec<(DvrText, String)> = Vec::new();
        same_dvr(&r)?;
        for op in ops {
            match op {
                Op::Parts { n, us, gap_ms } => {
                    for _ in 0..n {
                        let d = Duration::from_micros(us).min(cfg.part_target);
                        r.push_part(d, pdt);
                        pdt += d.as_millis() as u64 + gap_ms;
                        same_dvr(&r)?;
                        same_discontinuity_sequence(&r)?;
                    }
                }
                Op::Restart => {
                    r.suspend();
                    same_dvr(&r)?;
                    r = resumed(&r);
                    same_dvr(&r)?;
                    same_discontinuity_sequence(&r)?;
                }
            }
            let kept = same_dvr(&r)?;
            let text = kept.render();
            earlier.push((kept, text));
        }
        if end {
            r.end();
            same_dvr(&r)?;
            same_discontinuity_sequence(&r)?;
        }
        for (kept, text) in &earlier {
            prop_assert_eq!(&kept.render(), text);
        }
        let dvr = r.dvr_text().render();
        let p = validate::parse(&dvr).map_err(|e| TestCaseError::fail(format!("{e}\n{dvr}")))?;
        if let Err(errs) = validate::check(&p) {
            return Err(TestCaseError::fail(format!("{errs:#?}\n{dvr}")));
        }
    }
}

/// Three simulated hours of 400 ms parts with two restarts: the kept text spans many pieces and
/// stays the whole rendering (checked at every segment close near the restarts and every
/// hundredth elsewhere, to keep the test quick), including once ended.
#[test]
fn three_hours_across_pieces() {
    let cfg = Config::default();
    let part = Duration::from_millis(400);
    let mut r = Rendition::new(cfg);
    let parts_per_hour = 3600 * 1000 / 400;
    for i in 0..3 * parts_per_hour {
        if i > 0 && i % parts_per_hour == 0 {
            r.suspend();
            r = resumed(&r);
            assert_eq!(r.dvr_text().render(), r.dvr_playlist());
        }
        r.push_part(part, START_MS + i * 400 + i % 7);
        let msn = r.next_part().msn;
        if r.next_part().part == 0 && (msn.is_multiple_of(100) || msn % 1800 < 3) {
            assert_eq!(
                r.dvr_text().render(),
                r.dvr_playlist(),
                "after segment {msn}"
            );
        }
    }
    r.end();
    let kept = r.dvr_text();
    assert_eq!(kept.render(), r.dvr_playlist());
    assert!(
        kept.pieces().count() > kept.len() / PIECE / 2,
        "many pieces"
    );
    assert!(r.dvr_playlist().ends_with("#EXT-X-ENDLIST\n"));
}
