//! Server configuration: command-line flags, then `TRIBUNE_…` environment variables, then an
//! optional TOML file, then built-in defaults — in that order of precedence.
//!
//! Every option is an `Option` in both the flag struct ([`Args`]) and the file struct
//! ([`FileConfig`]); [`Args::resolve`] merges them field by field into the final [`Config`].
//! clap itself gives flags precedence over the environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

mod build;
mod env;
pub mod options;
#[cfg(test)]
mod tests;

use build::load_file;
#[cfg(test)]
use build::parse_advertise;
pub use build::{default_max_listeners, merge};

/// Default HTTP address: loopback, so a fresh `tribune serve` exposes nothing by accident.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Flags of `tribune serve` (and `tribune demo`). Each may also come from the environment
/// ([`Args::from_env`]). Defaults and accepted ranges live in [`options`], which also writes
/// them into `--help`.
#[derive(Debug, Clone, Default, Parser)]
#[command(mut_args(options::annotate))]
pub struct Args {
    /// TOML configuration file; its keys are the long flag names with `_` for `-`.
    /// Flags and environment variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// HTTP address to listen on (API, streams, recordings).
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// UDP address for WebRTC media of every speaker (one shared port).
    /// [default: the IP of --listen, port 8081; port 0 if --listen uses port 0]
    #[arg(long)]
    pub udp: Option<SocketAddr>,

    /// Addresses advertised as ICE host candidates, comma separated, each `IP` or `IP:PORT`
    /// (a public address behind NAT; IPv4 and IPv6). [default: the --udp IP, or 127.0.0.1 when
    /// --udp binds an unspecified address]
    #[arg(long, value_delimiter = ',')]
    pub advertise: Option<Vec<String>>,

    /// Operator key (`Authorization: Bearer <key>` on operator requests, and on `/metrics`
    /// except on --control-listen), at least 16 bytes. [default: a random key, printed at start]
    #[arg(long)]
    pub admin_key: Option<String>,

    /// Secret that signs tokens (HS256), at least 16 bytes.
    /// [default: random per run, so tokens die with the process]
    #[arg(long)]
    pub jwt_secret: Option<String>,

    /// Directory for recordings.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Bitrate of the listener stream and of each mix-minus, bits/s.
    #[arg(long)]
    pub bitrate: Option<u32>,

    /// Ogg page cadence of the live stream, milliseconds (a multiple of 20).
    #[arg(long)]
    pub page_ms: Option<u64>,

    /// Recent audio sent at once to a new listener, milliseconds.
    #[arg(long)]
    pub burst_ms: Option<u64>,

    /// How far (milliseconds) a listener may fall behind before it is dropped.
    #[arg(long)]
    pub slow_listener_ms: Option<u64>,

    /// Lifetime of minted tokens, seconds.
    #[arg(long)]
    pub token_ttl: Option<u64>,

    /// Largest accepted request body (SDP offers, JSON), bytes.
    #[arg(long)]
    pub max_body: Option<usize>,

    /// A speaker silent on the network this long is dropped (ICE consent, RFC 7675), seconds.
    #[arg(long)]
    pub ice_timeout: Option<u64>,

    /// Most people on stage, host and co-hosts included.
    #[arg(long)]
    pub stage_limit: Option<usize>,

    /// Most live.opus listeners on this node; past it a new listener gets 503 with Retry-After
    /// (and the HLS URL, which edges serve). [default: the open-file limit minus 1,024 kept for
    /// control traffic, recordings and HLS]
    #[arg(long)]
    pub max_listeners: Option<u64>,

    /// A live space whose speakers all dropped stays live this long, seconds.
    #[arg(long)]
    pub grace: Option<u64>,

    /// A co-host may take over as host once the host has been gone this long, seconds.
    #[arg(long)]
    pub host_absence: Option<u64>,

    /// Lifetime of listener tokens from /join (renewable), seconds.
    #[arg(long)]
    pub join_ttl: Option<u64>,

    /// A listener counts as present this long after its last renewal or beacon, seconds.
    #[arg(long)]
    pub presence_window: Option<u64>,

    /// LL-HLS part duration, milliseconds (a multiple of 20).
    #[arg(long)]
    pub part_ms: Option<u64>,

    /// LL-HLS segment duration, milliseconds: a whole number of parts, long enough for
    /// `live.m3u8` (10 segments) to hold three target durations (e.g. at least 2000 with
    /// 1000 ms parts).
    #[arg(long)]
    pub segment_ms: Option<u64>,

    /// HTTPS address to listen on, serving the same API and streams as --listen (which stays
    /// plain HTTP for proxies, edges and health checks). Needs --tls-cert and --tls-key.
    /// [default: no HTTPS]
    #[arg(long)]
    pub tls_listen: Option<SocketAddr>,

    /// PEM file with the HTTPS certificate chain, the server's certificate first.
    /// Needs --tls-listen and --tls-key.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of --tls-cert (PKCS#8, RSA or SEC1).
    /// Needs --tls-listen and --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,

    /// Reverse proxies whose `X-Forwarded-For` is believed, comma separated IPs (e.g. 127.0.0.1
    /// for an nginx on the same machine). A request from one of them is attributed to the
    /// rightmost forwarded address that is not itself a trusted proxy (for address bans).
    /// [default: none; the TCP peer is the client]
    #[arg(long, value_delimiter = ',')]
    pub trusted_proxy: Option<Vec<IpAddr>>,

    /// Live captions: a CTranslate2 Whisper model directory (fetch the pinned base model with
    /// scripts/captions-model.sh DIR). Each live space's mix is transcribed on the server, and
    /// the captions go out as a WebVTT rendition of the LL-HLS stream, in-band, on the event
    /// stream and beside the recording. [default: no captions]
    #[arg(long)]
    pub captions_model: Option<PathBuf>,

    /// The language spoken, for the captions (a Whisper language code: en, fr, de…).
    /// [default: en]
    #[arg(long)]
    pub captions_language: Option<String>,

    /// Slows the caption engine by this much per stretch of speech (for tests of an engine
    /// that falls behind). [default: 0]
    #[arg(long, hide = true)]
    pub captions_slowdown_ms: Option<u64>,

    /// A second plain-HTTP address reserved for hosts, speakers and operators: the whole API
    /// with none of the audience limits (per-address connection caps, rate limits, class
    /// limits, the shield). Keep it off the public network (a private interface, a firewall or
    /// an operator VPN). [default: none]
    #[arg(long)]
    pub control_listen: Option<SocketAddr>,

    /// Most connections open at once from one client address on the audience listeners
    /// (--listen, --tls-listen); 0 for no limit. Carrier-grade NAT puts many listeners behind one
    /// address, so keep it generous.
    #[arg(long)]
    pub max_conns_per_ip: Option<u32>,

    /// Requests in progress at once (until their response head), all classes together: host
    /// and speaker control may use all of it, listener joins 3/4, anything else 1/2.
    #[arg(long)]
    pub max_inflight: Option<u32>,

    /// Requests per second from one client address (listener and browsing requests; bursts of
    /// twice as many); 0 for no limit.
    #[arg(long)]
    pub ip_rate: Option<u32>,

    /// Joins per second from one client address (`/join`, live.opus, event streams; bursts of
    /// four times as many); 0 for no limit.
    #[arg(long)]
    pub join_rate: Option<u32>,

    /// WHIP offers per minute from one client address, and per token; 0 for no limit.
    #[arg(long)]
    pub whip_rate: Option<u32>,

    /// A kept-alive HTTP connection with no request this long is closed, seconds.
    #[arg(long)]
    pub idle_timeout: Option<u64>,

    /// Largest request head (request line and headers) accepted, bytes.
    #[arg(long)]
    pub max_header_bytes: Option<usize>,

    /// Shield mode: `auto` (on when joins pass --shield-joins-per-s, off after a calm minute),
    /// `on` or `off`. With the shield on, a new listener must bring a proof-of-work ticket.
    #[arg(long)]
    pub shield: Option<ShieldMode>,

    /// Proof-of-work difficulty, in leading zero bits of SHA-256: each bit doubles a client's
    /// work (see `tribune-bench pow`); the default takes about 0.2 s of a native client's CPU.
    #[arg(long)]
    pub shield_bits: Option<u32>,

    /// Joins per second on this node (admitted or not) that switch an `auto` shield on: above
    /// what a node admits without strain (5,000/s measured), so a real flash crowd of players
    /// that cannot solve proofs of work is never asked for one.
    #[arg(long)]
    pub shield_joins_per_s: Option<u32>,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long)]
    pub log: Option<String>,

    /// Join a cluster of nodes sharing this Redis (`redis://HOST:PORT[/DB]`). Needs `--node-id`,
    /// `--public-url`, and the same `--jwt-secret` and `--admin-key` on every node.
    /// [default: none; one node on its own]
    #[arg(long)]
    pub redis: Option<String>,

    /// This node's id in the cluster (`[A-Za-z0-9_-]{1,64}`). [default: none]
    #[arg(long)]
    pub node_id: Option<String>,

    /// Where clients and the other nodes reach this node's HTTP API, e.g. `http://10.0.0.5:8080`.
    /// [default: none]
    #[arg(long)]
    pub public_url: Option<String>,

    /// Listeners per fan-out writer task on the plain HTTP port (a benchmark knob; 1 gives every
    /// listener its own task).
    #[arg(long, hide = true)]
    pub fanout_shard: Option<usize>,

    /// How long a client has to send its request head, milliseconds (a test knob: slow-client
    /// tests need seconds, not the default ten).
    #[arg(long, hide = true)]
    pub head_timeout_ms: Option<u64>,
}

/// The TOML file: the same options as [`Args`], all optional; unknown keys are an error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub udp: Option<SocketAddr>,
    pub advertise: Option<Vec<String>>,
    pub admin_key: Option<String>,
    pub jwt_secret: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub bitrate: Option<u32>,
    pub page_ms: Option<u64>,
    pub burst_ms: Option<u64>,
    pub slow_listener_ms: Option<u64>,
    pub token_ttl: Option<u64>,
    pub max_body: Option<usize>,
    pub ice_timeout: Option<u64>,
    pub stage_limit: Option<usize>,
    pub max_listeners: Option<u64>,
    pub grace: Option<u64>,
    pub host_absence: Option<u64>,
    pub join_ttl: Option<u64>,
    pub presence_window: Option<u64>,
    pub part_ms: Option<u64>,
    pub segment_ms: Option<u64>,
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub trusted_proxy: Option<Vec<IpAddr>>,
    pub captions_model: Option<PathBuf>,
    pub captions_language: Option<String>,
    pub control_listen: Option<SocketAddr>,
    pub max_conns_per_ip: Option<u32>,
    pub max_inflight: Option<u32>,
    pub ip_rate: Option<u32>,
    pub join_rate: Option<u32>,
    pub whip_rate: Option<u32>,
    pub idle_timeout: Option<u64>,
    pub max_header_bytes: Option<usize>,
    pub shield: Option<ShieldMode>,
    pub shield_bits: Option<u32>,
    pub shield_joins_per_s: Option<u32>,
    pub log: Option<String>,
    pub redis: Option<String>,
    pub node_id: Option<String>,
    pub public_url: Option<String>,
}

/// Errors while building the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(
        "HTTPS needs --tls-listen, --tls-cert and --tls-key together \
         (TRIBUNE_TLS_LISTEN/_CERT/_KEY, or tls_listen/tls_cert/tls_key in the file): \
         missing {missing}"
    )]
    TlsIncomplete { missing: String },
    /// A numeric option outside its range ([`options::Num`]).
    #[error(
        "--{flag} {value} is out of range: it must be {min}..={max} {unit} \
         (the same holds for its environment variable and file key)"
    )]
    Range {
        flag: &'static str,
        value: u64,
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// Options that are each in range but do not work together (the HLS timing).
    #[error("{0}")]
    Combination(String),
    /// `--admin-key` or `--jwt-secret` shorter than [`options::MIN_SECRET_BYTES`].
    #[error(
        "--{flag} is {len} bytes long: use at least {} (e.g. `openssl rand -hex 16`), or leave \
         it out for a random one",
        options::MIN_SECRET_BYTES
    )]
    ShortSecret { flag: &'static str, len: usize },
    /// An environment variable whose value its flag would not take.
    #[error("{name}: {reason}")]
    Env { name: String, reason: String },
}

/// The HTTPS listener: all three options, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, RSA or SEC1).
    pub key: PathBuf,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub udp: SocketAddr,
    /// Advertised candidates; a port of 0 means "the port the UDP socket got".
    pub advertise: Vec<SocketAddr>,
    pub admin_key: String,
    pub jwt_secret: String,
    /// No `--jwt-secret` was given: the secret is the data directory's (made on first start,
    /// [`crate::app::DATA_SECRET_FILE`]), so tokens outlive a restart.
    pub jwt_secret_made: bool,
    pub data_dir: PathBuf,
    pub bitrate: u32,
    pub page: Duration,
    pub burst: Duration,
    pub slow_listener: Duration,
    pub token_ttl: Duration,
    pub max_body: usize,
    pub ice_timeout: Duration,
    pub stage_limit: usize,
    /// Most live.opus listeners on this node.
    pub max_listeners: u64,
    pub grace: Duration,
    pub host_absence: Duration,
    pub join_ttl: Duration,
    pub presence_window: Duration,
    /// LL-HLS timing (parts and segments).
    pub hls: tribune_media::hls::Config,
    /// The HTTPS listener, if any.
    pub tls: Option<Tls>,
    /// Proxies whose `X-Forwarded-For` is believed (see [`crate::client_addr`]).
    pub trusted_proxies: Vec<IpAddr>,
    /// Live captions: the model directory, its language, and the engine's test slow-down.
    pub captions_model: Option<PathBuf>,
    pub captions_language: String,
    pub captions_slowdown: Duration,
    /// The loaded engine (by `App::bind`, from `captions_model`).
    pub captions: Option<tribune_engine::CaptionsConfig>,
    /// Limits on audience traffic (issue 7: floods and flash crowds).
    pub limits: Limits,
    /// Proof-of-work admission under attack.
    pub shield: Shield,
    pub log: String,
    /// How long a plain-HTTP client has to send its request head before it is disconnected.
    pub head_timeout: Duration,
    /// Listeners served by one fan-out writer task (see [`tribune_engine::fanout`]).
    pub fanout_shard: usize,
    /// The wall clock the server reads (a test may run on a manual one).
    /// The cluster this node is part of, if any (`--redis`).
    pub cluster: Option<Cluster>,
    pub clock: tribune_engine::clock::Clock,
}

/// Limits on what the audience may take (see `--max-conns-per-ip` and the options after it).
#[derive(Debug, Clone)]
pub struct Limits {
    /// The control listener, if any.
    pub control_listen: Option<SocketAddr>,
    /// Connections per client address on the audience listeners; 0: no limit.
    pub max_conns_per_ip: u32,
    /// Requests in progress, all classes.
    pub max_inflight: u32,
    /// Requests per second per address (listener and browsing classes); 0: no limit.
    pub ip_rate: u32,
    /// Joins per second per address; 0: no limit.
    pub join_rate: u32,
    /// WHIP offers per minute per address and per token; 0: no limit.
    pub whip_rate: u32,
    /// Idle kept-alive connections are closed after this.
    pub idle_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
}

/// Membership of a cluster (`--redis`, `--node-id`, `--public-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub redis: String,
    pub node_id: String,
    pub public_url: String,
}

/// When the shield asks for proof of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ShieldMode {
    /// On above the join-rate threshold, off after a calm minute.
    Auto,
    /// Always on.
    On,
    /// Never on.
    Off,
}

/// Proof-of-work admission (see `--shield`).
#[derive(Debug, Clone)]
pub struct Shield {
    pub mode: ShieldMode,
    /// Leading zero bits of SHA-256 a ticket needs.
    pub bits: u32,
    /// Joins per second that switch an `auto` shield on.
    pub joins_per_s: u32,
}

/// A client that has not sent its request head by then is disconnected (as a TLS handshake is).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Listeners per fan-out writer task: enough that a page wakes one task per few hundred
/// listeners, few enough that one pass over them (a `write` each, a few µs) stays around a
/// millisecond, so a writer never holds a runtime thread for long and the work spreads over
/// every thread.
pub const FANOUT_SHARD: usize = 256;

impl Args {
    /// Merge these flags over the process environment over the TOML file over defaults.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.resolve_with(&|name| std::env::var(name).ok())
    }

    /// [`Args::resolve`] with the environment given as a lookup (tests pass a map, so they
    /// never touch the process environment).
    pub fn resolve_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let args = self.clone().over(Args::from_env(env)?);
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        merge(args, file)
    }
}

pub use tribune_net::conn_limit::FD_RESERVE;

impl Config {
    /// What each space runs with.
    pub fn space_config(&self) -> tribune_engine::SpaceConfig {
        tribune_engine::SpaceConfig {
            data_dir: self.data_dir.clone(),
            bitrate: self.bitrate,
            page: self.page,
            burst: self.burst,
            slow_listener: self.slow_listener,
            stage_limit: self.stage_limit,
            grace: self.grace,
            host_absence: self.host_absence,
            presence_window: self.presence_window,
            hls: self.hls,
            fanout_shard: self.fanout_shard,
            clock: self.clock.clone(),
            captions: self.captions.clone(),
            live_head: |title, description, bitrate| {
                tribune_net::response::fields(&crate::streams::live_headers(
                    title,
                    description,
                    bitrate,
                ))
                .to_vec()
            },
        }
    }
}

impl Config {
    /// A configuration for tests: loopback, ephemeral ports, the given data directory.
    pub fn for_tests(data_dir: PathBuf) -> Config {
        let args = Args {
            listen: Some("127.0.0.1:0".parse().expect("literal")),
            data_dir: Some(data_dir),
            ..Args::default()
        };
        merge(args, FileConfig::default()).expect("test defaults are valid")
    }
}
