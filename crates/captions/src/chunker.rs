//! Cutting the mix at pauses (voice activity by level): a chunk starts at the first loud tick
//! (with a little audio before it), and ends after a pause of [`Params::pause_ticks`] or at
//! [`Params::max_ticks`], so no caption waits longer than that for its words. Silence between
//! chunks is never sent to the engine.

use crate::TICK_SAMPLES;

/// How the mix is cut.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// A tick at or above this level (dBFS, RMS) is speech.
    pub speech_dbfs: f32,
    /// Quiet ticks that end a chunk (a pause between sentences).
    pub pause_ticks: u32,
    /// The longest chunk, in ticks.
    pub max_ticks: u32,
    /// Quiet ticks kept before the first loud one (the start of a word).
    pub lead_ticks: u32,
    /// A chunk with fewer loud ticks than this is a click, not speech: dropped.
    pub min_speech_ticks: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            speech_dbfs: -45.0,
            pause_ticks: 30, // 600 ms
            max_ticks: 300,  // 6 s
            lead_ticks: 10,  // 200 ms
            min_speech_ticks: 5,
        }
    }
}

/// A stretch of speech: ticks `[start_tick, end_tick)`, 16 kHz samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub start_tick: u64,
    pub end_tick: u64,
    pub samples: Vec<f32>,
    /// Unix ms of `start_tick`, when the caller knows it (0 from the chunker).
    pub start_unix_ms: u64,
}

/// The streaming cutter. Feed it every tick, in order.
pub struct Chunker {
    p: Params,
    lead: std::collections::VecDeque<(u64, Vec<f32>)>,
    open: Option<Open>,
    /// The last chunk was cut at its longest: one starting right after it continues its speech.
    cut_at: Option<u64>,
}

struct Open {
    start_tick: u64,
    next_tick: u64,
    samples: Vec<f32>,
    quiet_run: u32,
    loud: u32,
    continued: bool,
}

/// The level of a block, dBFS (RMS; -120 for silence).
pub fn level_dbfs(x: &[f32]) -> f32 {
    if x.is_empty() {
        return -120.0;
    }
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    (10.0 * ms.max(1e-12).log10()).max(-120.0)
}

impl Chunker {
    pub fn new(p: Params) -> Self {
        Chunker {
            p,
            lead: Default::default(),
            open: None,
            cut_at: None,
        }
    }

    /// One tick (`TICK_SAMPLES` samples at 16 kHz, `tick` counting up by one). Returns the
    /// chunk it closes, if any. A tick out of order (a gap) closes the open chunk first.
    pub fn push(&mut self, tick: u64, samples: &[f32]) -> Option<Chunk> {
        let loud = level_dbfs(samples) >= self.p.speech_dbfs;
        let mut done = None;
        if self.open.as_ref().is_some_and(|o| o.next_tick != tick) {
            done = self.close();
        }
        match &mut self.open {
            Some(o) => {
                o.samples.extend_from_slice(samples);
                o.next_tick = tick + 1;
                if loud {
                    o.quiet_run = 0;
                    o.loud += 1;
                } else {
                    o.quiet_run += 1;
                }
                let len = (o.next_tick - o.start_tick) as u32;
                if o.quiet_run >= self.p.pause_ticks {
                    return self.close().or(done);
                }
                if len >= self.p.max_ticks {
                    let c = self.close();
                    self.cut_at = c.as_ref().map(|c| c.end_tick);
                    return c.or(done);
                }
            }
            None if loud => {
                let start_tick = self.lead.front().map_or(tick, |(t, _)| *t);
                let mut buf = Vec::with_capacity(TICK_SAMPLES * self.p.max_ticks as usize);
                for (_, s) in self.lead.drain(..) {
                    buf.extend_from_slice(&s);
                }
                buf.extend_from_slice(samples);
                self.open = Some(Open {
                    start_tick,
                    next_tick: tick + 1,
                    samples: buf,
                    quiet_run: 0,
                    loud: 1,
                    continued: self.cut_at.take().is_some_and(|t| t >= start_tick),
                });
            }
            None => {
                if self.lead.back().is_some_and(|(t, _)| *t + 1 != tick) {
                    self.lead.clear();
                }
                self.lead.push_back((tick, samples.to_vec()));
                while self.lead.len() > self.p.lead_ticks as usize {
                    self.lead.pop_front();
                }
            }
        }
        done
    }

    /// The first tick that may still become part of a chunk: the open chunk's start, else the
    /// oldest tick kept as lead, else `next` (the tick to come). Everything before it is done.
    pub fn pending_from(&self, next: u64) -> u64 {
        match (&self.open, self.lead.front()) {
            (Some(o), _) => o.start_tick,
            (None, Some((t, _))) => *t,
            (None, None) => next,
        }
    }

    /// Ends the open chunk now (the space ends, or a gap): returns it if it holds speech.
    pub fn close(&mut self) -> Option<Chunk> {
        let o = self.open.take()?;
        if o.loud < self.p.min_speech_ticks && !o.continued {
            return None;
        }
        // The trailing pause is not speech: cut it, keeping a little of it.
        let keep_quiet = o.quiet_run.min(self.p.lead_ticks) as u64;
        let end_tick = o.next_tick - o.quiet_run as u64 + keep_quiet;
        let mut samples = o.samples;
        samples.truncate(((end_tick - o.start_tick) as usize) * TICK_SAMPLES);
        Some(Chunk {
            start_tick: o.start_tick,
            end_tick,
            samples,
            start_unix_ms: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tick(loud: bool) -> Vec<f32> {
        (0..TICK_SAMPLES)
            .map(|i| {
                if loud {
                    0.3 * ((i as f32) * 0.2).sin()
                } else {
                    0.0
                }
            })
            .collect()
    }

    fn run(pattern: &[bool], p: Params) -> Vec<Chunk> {
        let mut c = Chunker::new(p);
        let mut out = Vec::new();
        for (i, &l) in pattern.iter().enumerate() {
            out.extend(c.push(i as u64, &tick(l)));
        }
        out.extend(c.close());
        out
    }

    #[test]
    fn cut_at_pauses_with_a_lead() {
        let mut pat = vec![false; 50];
        pat.extend(vec![true; 100]); // ticks 50..150 speech
        pat.extend(vec![false; 100]);
        pat.extend(vec![true; 20]); // 250..270
        pat.extend(vec![false; 40]);
        let chunks = run(&pat, Params::default());
        assert_eq!(
            chunks.len(),
            2,
            "{:?}",
            chunks
                .iter()
                .map(|c| (c.start_tick, c.end_tick))
                .collect::<Vec<_>>()
        );
        assert_eq!((chunks[0].start_tick, chunks[0].end_tick), (40, 160));
        assert_eq!((chunks[1].start_tick, chunks[1].end_tick), (240, 280));
        for c in &chunks {
            assert_eq!(
                c.samples.len(),
                (c.end_tick - c.start_tick) as usize * TICK_SAMPLES
            );
        }
    }

    #[test]
    fn long_speech_is_cut_at_the_longest_chunk() {
        let chunks = run(&vec![true; 700], Params::default());
        assert_eq!(
            chunks
                .iter()
                .map(|c| c.end_tick - c.start_tick)
                .collect::<Vec<_>>(),
            vec![300, 300, 100]
        );
    }

    #[test]
    fn clicks_and_silence_send_nothing() {
        let mut pat = vec![false; 100];
        pat[50] = true;
        pat[51] = true;
        assert!(run(&pat, Params::default()).is_empty());
        assert!(run(&[false; 500], Params::default()).is_empty());
    }

    proptest! {
        /// Any pattern: chunks in order, never overlapping, each within the longest, each
        /// holding exactly its ticks' samples, and every loud tick of a long enough run inside
        /// one.
        #[test]
        fn chunks_are_ordered_bounded_and_cover_speech(pattern in proptest::collection::vec(proptest::bool::weighted(0.4), 0..1500)) {
            let p = Params::default();
            let chunks = run(&pattern, p);
            let mut last_end = 0;
            for c in &chunks {
                prop_assert!(c.start_tick >= last_end);
                prop_assert!(c.end_tick > c.start_tick);
                prop_assert!(c.end_tick - c.start_tick <= p.max_ticks as u64);
                prop_assert_eq!(c.samples.len(), (c.end_tick - c.start_tick) as usize * TICK_SAMPLES);
                last_end = c.end_tick;
            }
            let inside = |t: u64| chunks.iter().any(|c| c.start_tick <= t && t < c.end_tick);
            // A run of at least min_speech_ticks loud ticks is never lost.
            let mut run_start = None;
            for (i, &l) in pattern.iter().chain(std::iter::once(&false)).enumerate() {
                match (l, run_start) {
                    (true, None) => run_start = Some(i),
                    (false, Some(s)) => {
                        if i - s >= p.min_speech_ticks as usize {
                            for t in s..i {
                                prop_assert!(inside(t as u64), "loud tick {} outside every chunk", t);
                            }
                        }
                        run_start = None;
                    }
                    _ => {}
                }
            }
        }
    }
}
