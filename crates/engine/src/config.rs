//! What a space runs with: the part of the server's configuration the space runtime reads.

use std::path::PathBuf;
use std::time::Duration;

/// A space's settings (the server makes one from its configuration).
#[derive(Debug, Clone)]
pub struct SpaceConfig {
    /// Where recordings (`recordings/`) and HLS objects (`hls/`) go.
    pub data_dir: PathBuf,
    /// Opus bitrate of the mix, bits per second.
    pub bitrate: u32,
    /// Ogg page duration of the live stream and the recording.
    pub page: Duration,
    /// Audio a new live.opus listener gets at once.
    pub burst: Duration,
    /// A live.opus listener this far behind is dropped.
    pub slow_listener: Duration,
    /// Most people on stage (host included).
    pub stage_limit: usize,
    /// A live space with nobody on stage connected ends after this.
    pub grace: Duration,
    /// The host counts as gone (a co-host may take over) after this without a sign of life.
    pub host_absence: Duration,
    /// A participant counts as present this long after its last sign of life.
    pub presence_window: Duration,
    /// LL-HLS part and segment timings.
    pub hls: tribune_media::hls::Config,
    /// Lean listeners per fan-out shard.
    pub fanout_shard: usize,
    /// The header lines (`name: value\r\n`…) of a live.opus answer for a space of this title,
    /// description and bitrate: HTTP is the server's, the fan-out only writes the bytes.
    pub live_head: fn(title: &str, description: &str, bitrate: u32) -> Vec<u8>,
    /// The wall clock the space reads.
    pub clock: crate::clock::Clock,
    /// Live captions, when the server has a speech model (`--captions-model`).
    pub captions: Option<CaptionsConfig>,
}

/// How a server captions its spaces: one engine (the loaded model) for all of them.
#[derive(Clone)]
pub struct CaptionsConfig {
    pub engine: std::sync::Arc<dyn tribune_captions::engine::Transcriber>,
    /// The spoken language, as HLS names it (`LANGUAGE`, BCP 47: `en`).
    pub language: String,
    pub settings: tribune_captions::worker::Settings,
}

impl std::fmt::Debug for CaptionsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptionsConfig")
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}
