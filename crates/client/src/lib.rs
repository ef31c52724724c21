//! Clients of tribune, as a library: `speak` (a WHIP publisher built on str0m) and `listen`
//! (an Ogg/Opus stream decoder). The `tribune` binary, the demo's built-in speakers and the tests
//! all use these.
//!
//! - [`speak`] publishes one Opus stream to any WHIP endpoint (RFC 9725) and records what comes
//!   back (tribune's mix-minus) to a WAV file.
//! - [`listen`] reads an Ogg/Opus HTTP stream, checks its framing (page sequence, granule
//!   positions, CRCs, Opus headers) and decodes it.
//! - [`hls`] follows an LL-HLS (or plain HLS) media playlist like a player and checks what it
//!   fetched: playlist rules, media-sequence continuity.
//! - [`page`] opens the web page of a space as an anonymous listener does (shell, app files,
//!   snapshot, LL-HLS with its in-band metadata, the sampled count beacon).
//! - [`pow`] solves the proof-of-work challenge of a shielded node (`pow::solve`).
//! - [`tones`] tells whether a test tone is audible in decoded audio, for end-to-end tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod hls;
pub mod listen;
pub mod page;
pub mod pow;
pub mod speak;
pub mod tones;
mod wav;

pub use error::{Error, Result};

/// The sample rate of everything this crate decodes or writes: Opus' native rate.
pub const SAMPLE_RATE: u32 = tribune_media::mixer::SAMPLE_RATE;

/// Samples in one 20 ms Opus frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = tribune_media::mixer::FRAME_SAMPLES;

/// Sleeps until `at`, or forever.
pub(crate) async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the unit tests.
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh path in the temp directory, unique within this process and across processes.
    pub(crate) fn temp_path(name: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("tribune-client-{}-{n}-{name}", std::process::id()))
    }
}
