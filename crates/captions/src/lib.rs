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
