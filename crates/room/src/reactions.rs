//! Reactions: the emoji a participant may send, counted per interval and in total.
//!
//! Counts are per emoji, so the cost is the same for ten reactions or ten million; the server
//! sends [`Reactions::take`] on the event stream every interval. [`Tally`] is the same count
//! without a lock: one atomic add per emoji of a request, however many requests arrive at once,
//! and running totals for the public snapshot and the in-band metadata.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The emoji accepted by `POST /api/spaces/{id}/reactions` (anything else is a 400).
pub const EMOJI: &[&str] = &[
    "👏", "❤️", "😂", "😮", "💯", "🙌", "🔥", "👍", "👎", "😢", "🎉", "✋",
];

/// The variation selector-16 some clients add or drop (`❤` vs `❤️`).
const VS16: char = '\u{FE0F}';

/// The canonical entry of [`EMOJI`] for `emoji`, ignoring a missing or extra VS16.
pub fn canonical(emoji: &str) -> Option<&'static str> {
    let bare = |s: &str| s.chars().filter(|&c| c != VS16).collect::<String>();
    let wanted = bare(emoji);
    EMOJI.iter().copied().find(|e| bare(e) == wanted)
}

/// Reaction counts since the last [`Reactions::take`].
#[derive(Debug, Clone, Default)]
pub struct Reactions {
    counts: BTreeMap<&'static str, u64>,
}

impl Reactions {
    /// Count one `emoji`; false (and nothing counted) when it is not in [`EMOJI`].
    pub fn add(&mut self, emoji: &str) -> bool {
        match canonical(emoji) {
            Some(e) => {
                *self.counts.entry(e).or_default() += 1;
                true
            }
            None => false,
        }
    }

    /// The counts since the last call, or `None` when there were none.
    pub fn take(&mut self) -> Option<BTreeMap<String, u64>> {
        if self.counts.is_empty() {
            return None;
        }
        let counts = std::mem::take(&mut self.counts);
        Some(
            counts
                .into_iter()
                .map(|(e, n)| (e.to_string(), n))
                .collect(),
        )
    }
}

/// The index of `emoji` (canonical or not) in [`EMOJI`].
pub fn index(emoji: &str) -> Option<usize> {
    let c = canonical(emoji)?;
    EMOJI.iter().position(|e| *e == c)
}

/// Reaction counts kept with atomics: pending since the last [`Tally::take`], and totals.
#[derive(Debug, Default)]
pub struct Tally {
    pending: [AtomicU64; 12],
    total: [AtomicU64; 12],
}

impl Tally {
    /// Adds `n` reactions of the emoji at `index` (of [`EMOJI`]); O(1), no lock.
    pub fn add(&self, index: usize, n: u64) {
        if let (Some(p), Some(t)) = (self.pending.get(index), self.total.get(index)) {
            p.fetch_add(n, Relaxed);
            t.fetch_add(n, Relaxed);
        }
    }

    /// The counts added since the last call (emoji with none left out), or `None`.
    pub fn take(&self) -> Option<BTreeMap<String, u64>> {
        let out: BTreeMap<String, u64> = EMOJI
            .iter()
            .zip(&self.pending)
            .filter_map(|(e, p)| match p.swap(0, Relaxed) {
                0 => None,
                n => Some((e.to_string(), n)),
            })
            .collect();
        (!out.is_empty()).then_some(out)
    }

    /// Every emoji's total so far (emoji never sent left out).
    pub fn totals(&self) -> BTreeMap<String, u64> {
        EMOJI
            .iter()
            .zip(&self.total)
            .filter_map(|(e, t)| match t.load(Relaxed) {
                0 => None,
                n => Some((e.to_string(), n)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_adds_takes_and_totals() {
        let t = Tally::default();
        assert_eq!(t.take(), None);
        t.add(index("👏").unwrap(), 3);
        t.add(index("❤").unwrap(), 1);
        t.add(99, 5); // out of range: ignored
        let got = t.take().unwrap();
        assert_eq!(got["👏"], 3);
        assert_eq!(got["❤️"], 1);
        assert_eq!(t.take(), None);
        t.add(0, 2);
        assert_eq!(t.totals()["👏"], 5);
        assert_eq!(t.totals().len(), 2);
    }

    #[test]
    fn tally_counts_every_add_from_many_threads() {
        let t = std::sync::Arc::new(Tally::default());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        t.add(i % 12, 1);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let sum: u64 = t.totals().values().sum();
        assert_eq!(sum, 40_000);
        assert_eq!(t.take().unwrap().values().sum::<u64>(), 40_000);
    }

    #[test]
    fn counts_known_emoji_and_resets() {
        let mut r = Reactions::default();
        assert_eq!(r.take(), None);
        assert!(r.add("👏"));
        assert!(r.add("👏"));
        assert!(r.add("❤")); // without VS16
        assert!(!r.add("<script>"));
        assert!(!r.add(""));
        let got = r.take().unwrap();
        assert_eq!(got["👏"], 2);
        assert_eq!(got["❤️"], 1);
        assert_eq!(got.len(), 2);
        assert_eq!(r.take(), None);
    }

    #[test]
    fn a_dozen_distinct_emoji() {
        assert_eq!(EMOJI.len(), 12);
        for (i, e) in EMOJI.iter().enumerate() {
            assert!(!EMOJI[i + 1..].contains(e));
        }
    }
}
