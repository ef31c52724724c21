//! Live captions of a space, offline, on the server.
//!
//! The mixer hands each 20 ms tick of the listener mix to a [`worker::Captions`] without
//! waiting (a full tap drops the frame and counts it). A gathering thread brings it to 16 kHz
//! ([`resample`]), cuts it at pauses ([`chunker`]) and queues the chunks in a [`backlog`] bounded
//! by duration, which drops the oldest audio (counted) when the engine falls behind; the engine
//! thread transcribes one chunk at a time ([`engine`], Whisper through CTranslate2) and emits
//! [`Cue`]s timed in the mixer's ticks, the space's clock. [`vtt`] writes them as WebVTT.
//!
//! Nothing here touches the network or the mixer's thread.

pub mod backlog;
pub mod chunker;
pub mod engine;
pub mod resample;
pub mod vtt;
pub mod worker;

/// One caption: what was said between two instants of the space's mix, in milliseconds of the
/// mixer's tick clock (tick × 20 ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// The mixer's tick: 20 ms.
pub const TICK_MS: u64 = 20;
/// The engine's sample rate (Whisper's).
pub const RATE: usize = 16_000;
/// Samples of one tick at [`RATE`].
pub const TICK_SAMPLES: usize = RATE / 50;

/// The words of a text as a word error rate compares them: lowercase, letters, digits and
/// apostrophes only.
pub fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hyp` against `reference`: the word-level edit distance (substitutions,
/// insertions, deletions) over the reference's length. For tests and benchmarks.
pub fn word_error_rate(reference: &str, hyp: &str) -> f64 {
    let (r, h) = (words(reference), words(hyp));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_error_rate_counts_edits_over_the_reference() {
        assert_eq!(word_error_rate("a b c d", "a b c d"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a b y c d"), 0.25);
        assert_eq!(word_error_rate("The fox, jumps!", "the fox jumps"), 0.0);
        assert_eq!(word_error_rate("a b", ""), 1.0);
    }
}
