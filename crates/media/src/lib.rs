//! Pure media cores of tribune: Ogg/Opus framing, the per-speaker jitter buffer and the mixer.
//!
//! Nothing here does IO or reads the clock: every function that needs time takes `now` as an
//! argument, so a two-hour space can be simulated in a test in seconds.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod fmp4;
pub mod hls;
pub mod jitter;
pub mod mixer;
pub mod ogg;
pub mod oggopus;
pub mod synth;

pub use error::{Error, Result};
