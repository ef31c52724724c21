//! The one source of every option's default and accepted range: [`super::merge`] takes its
//! values from here, and `--help` is annotated from here ([`annotate`]), so the two cannot
//! disagree. The environment variable of a flag is its name in capitals after `TRIBUNE_`
//! ([`env_name`]).
//!
//! A value out of range is refused at start with a message naming the flag, never clamped in
//! silence: every upper bound keeps the server's arithmetic (deadlines, ring sizes) far from
//! overflow, and every lower bound is the least that works.

use clap::Arg;
use tribune_media::hls;

use super::{ConfigError, DEFAULT_LISTEN};

/// A numeric option: its flag (without `--`), default, accepted range and unit.
#[derive(Debug, Clone, Copy)]
pub struct Num {
    /// The long flag; the file key is the same with `_` for `-`.
    pub flag: &'static str,
    /// Used when neither flag, environment nor file gives one (`None`: a rule documented on
    /// the flag decides).
    pub default: Option<u64>,
    /// Least accepted value.
    pub min: u64,
    /// Greatest accepted value.
    pub max: u64,
    /// Unit, as the messages print it.
    pub unit: &'static str,
}

const fn num(flag: &'static str, default: u64, min: u64, max: u64, unit: &'static str) -> Num {
    Num {
        flag,
        default: Some(default),
        min,
        max,
        unit,
    }
}

/// A day, in seconds: the longest any of the server's waits may be configured to.
const DAY: u64 = 86_400;

/// Opus' own bitrate range.
pub const BITRATE: Num = num("bitrate", 32_000, 6_000, 510_000, "b/s");
/// Page cadence (also a multiple of 20: see [`super::merge`]); 200 ms keeps the latency of
/// the Ogg stream low at a few bytes of page header each.
pub const PAGE_MS: Num = num("page-ms", 200, 20, 1000, "ms");
/// A second of audio at once lets a player start without waiting; a minute at most, since every
/// space keeps that many pages for new listeners.
pub const BURST_MS: Num = num("burst-ms", 1000, 0, 60_000, "ms");
/// At least a second (a listener must survive a hiccup of the network), at most ten minutes
/// (the ring of every space holds that many pages).
pub const SLOW_LISTENER_MS: Num = num("slow-listener-ms", 10_000, 1000, 600_000, "ms");
/// Twelve hours; a token that expires at once lets nobody in, one that lives for years cannot
/// be revoked by rotating the secret in time.
pub const TOKEN_TTL: Num = num("token-ttl", 43_200, 1, 365 * DAY, "s");
/// 64 KiB fits any SDP offer; below 1 KiB no offer fits, above 64 MiB one request could take
/// the memory of many.
pub const MAX_BODY: Num = num("max-body", 64 * 1024, 1024, 64 << 20, "bytes");
/// RFC 7675 consent: 30 s; an hour at most, so a dead speaker does not hold the stage longer.
pub const ICE_TIMEOUT: Num = num("ice-timeout", 30, 1, 3600, "s");
/// X's stage (1 host + 2 co-hosts + 10 speakers); every speaker costs the space's mixer a
/// mix-minus encode each 20 ms, so at most 100.
pub const STAGE_LIMIT: Num = num("stage-limit", 13, 1, 100, "speakers");
/// 0 would refuse every listener; the default is the open-file limit minus a reserve.
pub const MAX_LISTENERS: Num = Num {
    flag: "max-listeners",
    default: None,
    min: 1,
    max: 100_000_000,
    unit: "listeners",
};
/// Five minutes, so a network blip never ends the show; 0 ends it at once.
pub const GRACE: Num = num("grace", 300, 0, DAY, "s");
/// A minute; 0 lets a co-host take over as soon as the host drops.
pub const HOST_ABSENCE: Num = num("host-absence", 60, 0, DAY, "s");
/// Fifteen minutes, renewed at half-life; under 10 s a listener would renew all the time.
pub const JOIN_TTL: Num = num("join-ttl", 900, 10, DAY, "s");
/// Two minutes (pages beacon every minute).
pub const PRESENCE_WINDOW: Num = num("presence-window", 120, 1, DAY, "s");
/// 400 ms: 20 Opus frames. The range is the HLS rendition's ([`hls::MIN_PART`],
/// [`hls::MAX_PART`]); multiples of 20 ms only, checked with the segment by
/// [`hls::Config::check`].
pub const PART_MS: Num = num(
    "part-ms",
    400,
    hls::MIN_PART.as_millis() as u64,
    hls::MAX_PART.as_millis() as u64,
    "ms",
);
/// 2 s; a whole number of parts, long enough for `live.m3u8` to hold three target durations
/// ([`hls::Config::check`] says, with the shortest that would do).
pub const SEGMENT_MS: Num = num(
    "segment-ms",
    2000,
    hls::MIN_PART.as_millis() as u64,
    hls::MAX_SEGMENT.as_millis() as u64,
    "ms",
);
/// Carrier-grade NAT puts many listeners behind one address; 0: no limit.
pub const MAX_CONNS_PER_IP: Num = num("max-conns-per-ip", 256, 0, u32::MAX as u64, "connections");
/// At least 8, so every request class gets a share.
pub const MAX_INFLIGHT: Num = num("max-inflight", 1024, 8, 1_000_000, "requests");
/// 0: no limit.
pub const IP_RATE: Num = num("ip-rate", 50, 0, u32::MAX as u64, "requests/s");
/// 0: no limit.
pub const JOIN_RATE: Num = num("join-rate", 5, 0, u32::MAX as u64, "joins/s");
/// 0: no limit.
pub const WHIP_RATE: Num = num("whip-rate", 12, 0, u32::MAX as u64, "offers/min");
/// A minute; a day at most (the HTTP/2 keep-alive ping is one and a half of it).
pub const IDLE_TIMEOUT: Num = num("idle-timeout", 60, 1, DAY, "s");
/// 16 KiB; a browser's head with cookies needs more than 1 KiB, and 1 MiB is plenty.
pub const MAX_HEADER_BYTES: Num = num("max-header-bytes", 16 * 1024, 1024, 1 << 20, "bytes");
/// Leading zero bits of SHA-256 (see `crate::shield::DEFAULT_BITS`).
pub const SHIELD_BITS: Num = num(
    "shield-bits",
    crate::shield::DEFAULT_BITS as u64,
    1,
    32,
    "bits",
);
/// Above what a node admits without strain (5,000/s measured).
pub const SHIELD_JOINS_PER_S: Num =
    num("shield-joins-per-s", 10_000, 1, u32::MAX as u64, "joins/s");
/// See [`super::FANOUT_SHARD`].
pub const FANOUT_SHARD: Num = num(
    "fanout-shard",
    super::FANOUT_SHARD as u64,
    1,
    65_536,
    "listeners",
);
/// See [`super::HEAD_TIMEOUT`]; an hour at most.
pub const HEAD_TIMEOUT_MS: Num = num(
    "head-timeout-ms",
    super::HEAD_TIMEOUT.as_millis() as u64,
    1,
    3_600_000,
    "ms",
);

/// Every numeric option.
pub const NUMS: &[Num] = &[
    BITRATE,
    PAGE_MS,
    BURST_MS,
    SLOW_LISTENER_MS,
    TOKEN_TTL,
    MAX_BODY,
    ICE_TIMEOUT,
    STAGE_LIMIT,
    MAX_LISTENERS,
    GRACE,
    HOST_ABSENCE,
    JOIN_TTL,
    PRESENCE_WINDOW,
    PART_MS,
    SEGMENT_MS,
    MAX_CONNS_PER_IP,
    MAX_INFLIGHT,
    IP_RATE,
    JOIN_RATE,
    WHIP_RATE,
    IDLE_TIMEOUT,
    MAX_HEADER_BYTES,
    SHIELD_BITS,
    SHIELD_JOINS_PER_S,
    FANOUT_SHARD,
    HEAD_TIMEOUT_MS,
];

/// Default directory for recordings, HLS segments and the database.
pub const DATA_DIR: &str = "data";
/// Default log filter.
pub const LOG: &str = "info";
/// Shortest `--admin-key` and `--jwt-secret`: 16 bytes (128 bits if random), so neither can be
/// guessed online nor, for the secret, brute-forced from one token offline.
pub const MIN_SECRET_BYTES: usize = 16;

/// Flags read from no environment variable (test knobs).
const NO_ENV: &[&str] = &["head-timeout-ms"];

impl Num {
    /// `value` (or the default), refused outside `min..=max`.
    pub fn take(&self, value: Option<u64>) -> Result<u64, ConfigError> {
        match value.or(self.default) {
            Some(v) => self.check(v),
            None => Err(self.range_error(0)),
        }
    }

    /// `v`, refused outside `min..=max`.
    pub fn check(&self, v: u64) -> Result<u64, ConfigError> {
        if (self.min..=self.max).contains(&v) {
            Ok(v)
        } else {
            Err(self.range_error(v))
        }
    }

    fn range_error(&self, value: u64) -> ConfigError {
        ConfigError::Range {
            flag: self.flag,
            value,
            min: self.min,
            max: self.max,
            unit: self.unit,
        }
    }
}

/// A `usize` option as `u64` (lossless on every platform the server runs on).
pub fn wide(v: Option<usize>) -> Option<u64> {
    v.map(|v| u64::try_from(v).unwrap_or(u64::MAX))
}

/// A checked value back to a narrower type; every range above fits, so the fallback is never
/// taken.
pub fn narrow<T: TryFrom<u64> + Copy>(v: u64, max: T) -> T {
    T::try_from(v).unwrap_or(max)
}

/// The environment variable of a flag (`burst-ms` → `TRIBUNE_BURST_MS`), if it has one.
pub fn env_name(flag: &str) -> Option<String> {
    (!NO_ENV.contains(&flag)).then(|| format!("TRIBUNE_{}", flag.replace('-', "_").to_uppercase()))
}

/// The default of a non-numeric option, as `--help` shows it.
fn other_default(flag: &str) -> Option<String> {
    Some(match flag {
        "listen" => DEFAULT_LISTEN.to_string(),
        "data-dir" => format!("./{DATA_DIR}"),
        "log" => LOG.to_owned(),
        "shield" => "auto".to_owned(),
        _ => return None,
    })
}

/// Appends `[default: …]`, the accepted range and `[env: …]` to a flag's help, from the
/// tables above (the doc comments of [`super::Args`] never repeat them).
pub fn annotate(arg: Arg) -> Arg {
    let Some(flag) = arg.get_long().map(str::to_owned) else {
        return arg;
    };
    let mut extra = String::new();
    if let Some(n) = NUMS.iter().find(|n| n.flag == flag) {
        if let Some(d) = n.default {
            extra.push_str(&format!(" [default: {d}]"));
        }
        extra.push_str(&format!(" [accepted: {}..={} {}]", n.min, n.max, n.unit));
    } else if let Some(d) = other_default(&flag) {
        extra.push_str(&format!(" [default: {d}]"));
    }
    if let Some(env) = env_name(&flag) {
        extra.push_str(&format!(" [env: {env}]"));
    }
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    let long = arg.get_long_help().map(|h| h.to_string());
    let arg = arg.help(format!("{help}{extra}"));
    match long {
        Some(l) => arg.long_help(format!("{l}{extra}")),
        None => arg,
    }
}
