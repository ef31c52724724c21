//! Reactions: the emoji a participant may send, counted per interval.
//!
//! Counts are per emoji, so the cost is the same for ten reactions or ten million; the server
//! sends [`Reactions::take`] on the event stream every interval.

use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
