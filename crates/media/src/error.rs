//! The error type of the media crate.
//!
//! Parsers never panic on bytes from the network: they return one of these instead.

/// Everything that can go wrong in the media cores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The packets handed to [`crate::ogg::encode_page`] need more than 255 lacing values.
    #[error("ogg: {lacing} lacing values do not fit on one page (at most 255)")]
    TooManySegments {
        /// How many lacing values the packets needed.
        lacing: usize,
    },
    /// Bytes that are not a valid Ogg page were skipped while looking for the next page.
    #[error("ogg: skipped {skipped} bytes of corrupt data ({reason})")]
    Corrupt {
        /// How many bytes were thrown away.
        skipped: usize,
        /// What was wrong with the first bad page.
        reason: &'static str,
    },
    /// A speaker with this id is already in the mixer.
    #[error("speaker {0} is already in the mixer")]
    DuplicateSpeaker(u64),
    /// libopus refused a call (creating or configuring an encoder or decoder).
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
