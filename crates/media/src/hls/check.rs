//! [`Config::check`]: which rendition timings give valid playlists. [`Rendition::new`]
//! (super::Rendition::new) and the server's configuration both call it, so a timing the
//! server accepts at start-up can never make a space panic later.

use std::time::Duration;

use super::Config;

/// One Opus frame: parts are cut from whole 20 ms packets of the mix, so a part target that is
/// not a multiple of it would give parts longer than `PART-TARGET` (bis §4.4.4.9).
pub const FRAME: Duration = Duration::from_millis(20);
/// Shortest part target: Apple's low end for LL-HLS (shorter parts cost a request each and a
/// playlist update each, for no gain in latency an audio player can use).
pub const MIN_PART: Duration = Duration::from_millis(200);
/// Longest part target: Apple's high end for LL-HLS (and the Advance Part Limit of bis
/// §6.2.5.2 stops growing with it).
pub const MAX_PART: Duration = Duration::from_secs(1);
/// Longest segment target: Apple's recommended 6 s plus room; longer segments make a new
/// player wait longer for its first complete segment and a restart lose more.
pub const MAX_SEGMENT: Duration = Duration::from_secs(10);
/// Most segments `live.m3u8` may list (each is about 100 bytes of every playlist response).
pub const MAX_LIVE_SEGMENTS: usize = 1000;

/// Why a [`Config`] cannot give valid playlists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `part_target` is not a whole number of [`FRAME`]s in [`MIN_PART`]`..=`[`MAX_PART`].
    #[error(
        "part target {} ms is not a multiple of 20 ms between 200 and 1000 ms",
        .part.as_millis()
    )]
    Part {
        /// The part target.
        part: Duration,
    },
    /// `segment_target` is not a whole number of parts, or is longer than [`MAX_SEGMENT`].
    #[error(
        "segment target {} ms is not a whole number of {} ms parts up to 10000 ms",
        .segment.as_millis(), .part.as_millis()
    )]
    Segment {
        /// The segment target.
        segment: Duration,
        /// The part target.
        part: Duration,
    },
    /// `live_segments` is 0 or more than [`MAX_LIVE_SEGMENTS`], or `part_segments` is more
    /// than `live_segments`.
    #[error(
        "{live_segments} live segments with parts on {part_segments} of them: need \
         1..=1000 live segments and at most as many with parts"
    )]
    Counts {
        /// `live_segments`.
        live_segments: usize,
        /// `part_segments`.
        part_segments: usize,
    },
    /// `live_segments` segments of the shortest length a segment may close at
    /// (`segment_target` minus half a part) hold less than three target durations, the least
    /// a live playlist may hold (bis §6.2.2).
    #[error(
        "{live_segments} segments of {} ms (with {} ms parts) cannot hold three target \
         durations of {target} s{}",
        .segment.as_millis(), .part.as_millis(),
        .min_segment.map_or(String::new(), |m| format!("; segments of at least {} ms can", m.as_millis()))
    )]
    Window {
        /// The segment target.
        segment: Duration,
        /// The part target.
        part: Duration,
        /// `live_segments`.
        live_segments: usize,
        /// `EXT-X-TARGETDURATION` these timings give, seconds.
        target: u64,
        /// The shortest whole number of parts (up to [`MAX_SEGMENT`]) that would do, if any.
        min_segment: Option<Duration>,
    },
}

impl Config {
    /// Whether these timings give valid playlists: see [`ConfigError`] for each rule.
    pub fn check(&self) -> Result<(), ConfigError> {
        let (part, segment) = (self.part_target, self.segment_target);
        if !(MIN_PART..=MAX_PART).contains(&part) || part.as_nanos() % FRAME.as_nanos() != 0 {
            return Err(ConfigError::Part { part });
        }
        if segment < part || segment > MAX_SEGMENT || segment.as_nanos() % part.as_nanos() != 0 {
            return Err(ConfigError::Segment { segment, part });
        }
        if !(1..=MAX_LIVE_SEGMENTS).contains(&self.live_segments)
            || self.part_segments > self.live_segments
        {
            return Err(ConfigError::Counts {
                live_segments: self.live_segments,
                part_segments: self.part_segments,
            });
        }
        if !window_holds(part, segment, self.live_segments) {
            let min_segment = (1..=MAX_SEGMENT.as_nanos() / part.as_nanos())
                .map(|k| part * k as u32)
                .find(|&s| window_holds(part, s, self.live_segments));
            return Err(ConfigError::Window {
                segment,
                part,
                live_segments: self.live_segments,
                target: target_duration(part, segment),
                min_segment,
            });
        }
        Ok(())
    }

    /// `EXT-X-TARGETDURATION` in whole seconds: the longest a segment can get
    /// (`segment_target` plus half a part), rounded to the nearest second as §4.4.3.1 rounds
    /// `EXTINF`, and at least 1.
    pub fn target_duration(&self) -> u64 {
        target_duration(self.part_target, self.segment_target)
    }
}

fn target_duration(part: Duration, segment: Duration) -> u64 {
    rounded(segment + part / 2).max(1)
}

/// Seconds rounded to the nearest integer, as §4.4.3.1 compares `EXTINF` with the target.
pub(super) fn rounded(d: Duration) -> u64 {
    d.as_secs_f64().round() as u64
}

/// Whether `live_segments` segments of the shortest length one may close at hold three target
/// durations (bis §6.2.2). Needs `segment >= part`.
fn window_holds(part: Duration, segment: Duration, live_segments: usize) -> bool {
    let shortest = segment.saturating_sub(part / 2);
    let target = target_duration(part, segment);
    shortest.as_nanos() * live_segments as u128 >= 3 * u128::from(target) * 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::Rendition;
    use proptest::prelude::*;

    fn cfg(part_ms: u64, segment_ms: u64) -> Config {
        Config {
            part_target: Duration::from_millis(part_ms),
            segment_target: Duration::from_millis(segment_ms),
            ..Config::default()
        }
    }

    #[test]
    fn one_part_segments_are_refused_with_the_shortest_that_works() {
        // Issue 14: these started the server, then panicked every space creation.
        let e = cfg(1000, 1000).check().unwrap_err();
        assert_eq!(
            e,
            ConfigError::Window {
                segment: Duration::from_secs(1),
                part: Duration::from_secs(1),
                live_segments: 10,
                target: 2,
                min_segment: Some(Duration::from_secs(2)),
            }
        );
        assert!(e.to_string().contains("at least 2000 ms"), "{e}");
        let e = cfg(200, 200).check().unwrap_err();
        assert!(e.to_string().contains("at least 400 ms"), "{e}");
        assert!(cfg(1000, 2000).check().is_ok());
        assert!(cfg(200, 400).check().is_ok());
        assert!(Config::default().check().is_ok());
    }

    #[test]
    fn parts_segments_and_counts_are_bounded() {
        assert!(matches!(
            cfg(210, 2100).check(),
            Err(ConfigError::Part { .. })
        ));
        assert!(matches!(
            cfg(180, 1800).check(),
            Err(ConfigError::Part { .. })
        ));
        assert!(matches!(
            cfg(0, 2000).check(),
            Err(ConfigError::Part { .. })
        ));
        assert!(matches!(
            cfg(400, 2200).check(),
            Err(ConfigError::Segment { .. })
        ));
        assert!(matches!(
            cfg(400, 10_400).check(),
            Err(ConfigError::Segment { .. })
        ));
        let none = Config {
            live_segments: 0,
            part_segments: 0,
            ..Config::default()
        };
        assert!(matches!(none.check(), Err(ConfigError::Counts { .. })));
        let more_parts = Config {
            part_segments: 11,
            ..Config::default()
        };
        assert!(matches!(
            more_parts.check(),
            Err(ConfigError::Counts { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "cannot hold three target durations")]
    fn rendition_new_refuses_what_check_refuses() {
        Rendition::new(cfg(1000, 1000));
    }

    proptest! {
        /// Whatever `check` accepts, a rendition can be built from and fed parts of any length
        /// up to the target, with playlists rendered after each; whatever it refuses,
        /// `Rendition::new` refuses too.
        #[test]
        fn accepted_timings_never_panic(
            part_ms in prop_oneof![0u64..2000, (10u64..=50).prop_map(|k| k * 20)],
            parts in 0u64..60,
            live_segments in 0usize..30,
            part_segments in 0usize..30,
            pushes in prop::collection::vec(1u64..=100, 0..80),
        ) {
            let c = Config {
                part_target: Duration::from_millis(part_ms),
                segment_target: Duration::from_millis(part_ms * parts),
                live_segments,
                part_segments,
            };
            let made = std::panic::catch_unwind(|| Rendition::new(c));
            prop_assert_eq!(made.is_ok(), c.check().is_ok());
            if let Ok(mut r) = made {
                let mut now = 1_700_000_000_000;
                for pct in pushes {
                    let d = c.part_target * pct as u32 / 100;
                    r.push_part(d, now);
                    now += d.as_millis() as u64;
                    let _ = (r.live_playlist(false), r.live_playlist(true), r.dvr_playlist());
                    let _ = r.blocking(r.next_part().msn + 1, Some(3));
                }
                r.end();
                let _ = r.live_playlist(false);
            }
        }
    }
}
