//! The error type of the clients.

use std::time::Duration;

/// Everything that can end a [`crate::speak::run`] or [`crate::listen::run`] early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP request itself failed (connection refused, reset, timeout, bad URL).
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The WHIP endpoint answered with something other than `201 Created`.
    #[error("WHIP endpoint answered {status}: {body}")]
    WhipStatus {
        /// The HTTP status code.
        status: u16,
        /// The response body, as text (servers put their reason there).
        body: String,
    },
    /// The WHIP `201 Created` response had no usable `Location` header.
    #[error("WHIP response has no usable Location header: {0}")]
    Location(String),
    /// An URL given to us could not be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The SDP answer could not be parsed or applied.
    #[error("SDP: {0}")]
    Sdp(String),
    /// The WebRTC engine (str0m) failed.
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// ICE and DTLS did not complete in time.
    #[error("WebRTC connection not established within {0:?}")]
    ConnectTimeout(Duration),
    /// The peer connection was lost (ICE disconnected).
    #[error("WebRTC connection lost")]
    Disconnected,
    /// Opus encoding or decoding could not be set up.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// Reading or writing a WAV file failed.
    #[error("WAV: {0}")]
    Wav(#[from] hound::Error),
    /// A socket or file operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An audio source cannot be used (empty file, unsupported sample format).
    #[error("audio source: {0}")]
    Source(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
