//! The speaking timeline: who spoke when, for the replay page.
//!
//! Fed with per-speaker audio levels a few times per second, it turns them into segments with
//! hysteresis, so breaths and short pauses do not split a sentence and a cough does not count:
//! - a speaker is *speaking* while its level is above [`SPEAKING_DBFS`];
//! - a segment starts at the first loud sample and ends at the last loud one, once the speaker has
//!   been quiet (or absent from the levels) for [`HANGOVER_MS`];
//! - segments shorter than [`MIN_SEGMENT_MS`] are dropped (a single loud sample is one).
//!
//! Times are milliseconds since the recording started, so segments index straight into the replay.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Above this level (dBFS) a speaker counts as speaking: well over room noise through a
/// decent microphone (about −60), well under conversational speech (about −30 to −20).
pub const SPEAKING_DBFS: f32 = -45.0;
/// Quiet this long ends a segment: longer than the pauses inside a sentence.
pub const HANGOVER_MS: u64 = 600;
/// Segments shorter than this are noise (a cough, a click), not speech.
pub const MIN_SEGMENT_MS: u64 = 200;

/// One stretch of speech by one speaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Speaker id.
    pub sub: String,
    /// Display name at the time.
    pub name: String,
    /// Start, ms since the recording started.
    pub start_ms: u64,
    /// End (the last loud sample), ms since the recording started.
    pub end_ms: u64,
}

/// A speaker currently speaking.
#[derive(Debug, Clone)]
struct Open {
    name: String,
    start_ms: u64,
    last_loud_ms: u64,
}

/// Builds [`Segment`]s from level samples.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    open: BTreeMap<String, Open>,
    closed: Vec<Segment>,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Levels `(sub, name, dBFS)` of the speakers at `t_ms`; speakers not listed are quiet.
    /// Call in increasing `t_ms`, a few times per second.
    pub fn push_levels(&mut self, t_ms: u64, levels: &[(String, String, f32)]) {
        for (sub, name, dbfs) in levels {
            if *dbfs <= SPEAKING_DBFS || dbfs.is_nan() {
                continue;
            }
            match self.open.get_mut(sub) {
                Some(open) => open.last_loud_ms = t_ms,
                None => {
                    self.open.insert(
                        sub.clone(),
                        Open {
                            name: name.clone(),
                            start_ms: t_ms,
                            last_loud_ms: t_ms,
                        },
                    );
                }
            }
        }
        let quiet: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| t_ms.saturating_sub(o.last_loud_ms) >= HANGOVER_MS)
            .map(|(sub, _)| sub.clone())
            .collect();
        for sub in quiet {
            self.close(sub);
        }
    }

    fn close(&mut self, sub: String) {
        if let Some(open) = self.open.remove(&sub)
            && open.last_loud_ms - open.start_ms >= MIN_SEGMENT_MS
        {
            self.closed.push(Segment {
                sub,
                name: open.name,
                start_ms: open.start_ms,
                end_ms: open.last_loud_ms,
            });
        }
    }

    /// The closed segments so far, by start time.
    pub fn segments(&self) -> Vec<Segment> {
        let mut segs = self.closed.clone();
        segs.sort_by(|a, b| (a.start_ms, &a.sub).cmp(&(b.start_ms, &b.sub)));
        segs
    }

    /// Take the segments closed since the last call (for persisting them as they happen).
    pub fn take_closed(&mut self) -> Vec<Segment> {
        let mut segs = std::mem::take(&mut self.closed);
        segs.sort_by(|a, b| (a.start_ms, &a.sub).cmp(&(b.start_ms, &b.sub)));
        segs
    }

    /// The recording ended at `t_ms`: close every open segment and return all segments, by start.
    pub fn finish(&mut self, t_ms: u64) -> Vec<Segment> {
        let _ = t_ms; // open segments end at their last loud sample, which is ≤ t_ms
        let open: Vec<String> = self.open.keys().cloned().collect();
        for sub in open {
            self.close(sub);
        }
        self.segments()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(sub: &str, db: f32) -> (String, String, f32) {
        (sub.into(), sub.to_uppercase(), db)
    }

    /// Push `a`'s level every 250 ms from `from` to `to` (exclusive).
    fn run(tl: &mut Timeline, from: u64, to: u64, a: f32, b: f32) {
        let mut t = from;
        while t < to {
            tl.push_levels(t, &[lv("a", a), lv("b", b)]);
            t += 250;
        }
    }

    #[test]
    fn segments_with_hysteresis() {
        let mut tl = Timeline::new();
        run(&mut tl, 0, 1000, -20.0, -70.0); // a speaks 0..750
        run(&mut tl, 1000, 1500, -60.0, -70.0); // a short pause (500 ms < 600)
        run(&mut tl, 1500, 2500, -25.0, -70.0); // a again: same segment
        run(&mut tl, 2500, 4000, -60.0, -20.0); // b speaks
        let segs = tl.finish(4000);
        assert_eq!(
            segs,
            vec![
                Segment {
                    sub: "a".into(),
                    name: "A".into(),
                    start_ms: 0,
                    end_ms: 2250
                },
                Segment {
                    sub: "b".into(),
                    name: "B".into(),
                    start_ms: 2500,
                    end_ms: 3750
                },
            ]
        );
    }

    #[test]
    fn blips_are_dropped_and_absence_is_quiet() {
        let mut tl = Timeline::new();
        tl.push_levels(0, &[lv("a", -10.0)]); // one loud sample: 0 ms long
        tl.push_levels(250, &[]);
        tl.push_levels(1000, &[]);
        assert!(tl.segments().is_empty());
        tl.push_levels(2000, &[lv("a", -10.0)]);
        tl.push_levels(2250, &[lv("a", -10.0)]);
        tl.push_levels(3000, &[]); // closes after 750 ms of absence
        assert_eq!(tl.segments().len(), 1);
        assert_eq!(
            (tl.segments()[0].start_ms, tl.segments()[0].end_ms),
            (2000, 2250)
        );
    }
}
