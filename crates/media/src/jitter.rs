//! Per-speaker adaptive jitter buffer (sans-IO). Work in progress: API stable.

use std::time::{Duration, Instant};

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Smallest playout delay.
    pub min_delay: Duration,
    /// Largest playout delay.
    pub max_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self { min_delay: Duration::from_millis(40), max_delay: Duration::from_millis(400) }
    }
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Buffered for playout.
    Accepted,
    /// Behind the playout point: dropped.
    Late,
    /// Already buffered or played: dropped.
    Duplicate,
    /// Not a valid Opus packet: dropped.
    Invalid,
}

/// The next unit of audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// A packet to decode.
    Packet {
        /// The Opus packet.
        data: Vec<u8>,
        /// Its duration in 48 kHz samples.
        samples: u32,
    },
    /// A lost packet to conceal.
    Lost {
        /// The next packet, whose in-band FEC can rebuild the lost one.
        fec: Option<Vec<u8>>,
        /// Samples to conceal.
        samples: u32,
    },
    /// Nothing to play: DTX gap, not started, or the speaker stopped sending.
    Silence {
        /// Samples of silence.
        samples: u32,
    },
}

/// Counters and gauges of a jitter buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Audio buffered ahead of the playout point.
    pub buffered: Duration,
    /// Current target delay.
    pub target: Duration,
    /// Packets dropped as late.
    pub late: u64,
    /// Packets missing at playout.
    pub lost: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// Concealment units produced.
    pub concealed: u64,
    /// Frames dropped to correct clock drift.
    pub drift_drops: u64,
    /// Units inserted to correct clock drift.
    pub drift_inserts: u64,
}

/// Per-speaker adaptive jitter buffer.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: Config,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: Config) -> Self {
        Self { cfg }
    }

    /// Takes in one packet.
    pub fn push(&mut self, _now: Instant, _seq: u64, _rtp_ts: u64, _payload: &[u8]) -> Push {
        Push::Late
    }

    /// The next unit of audio.
    pub fn pop(&mut self, _now: Instant) -> Playout {
        Playout::Silence { samples: 960 }
    }

    /// Current statistics.
    pub fn stats(&self) -> Stats {
        Stats { target: self.cfg.min_delay, ..Stats::default() }
    }
}
