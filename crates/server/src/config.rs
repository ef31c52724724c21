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

/// Default HTTP address: loopback, so a fresh `tribune serve` exposes nothing by accident.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Flags of `tribune serve` (and `tribune demo`). Each may also come from the environment.
#[derive(Debug, Clone, Default, Parser)]
pub struct Args {
    /// TOML configuration file; its keys are the long flag names with `_` for `-`.
    /// Flags and environment variables override it.
    #[arg(long, env = "TRIBUNE_CONFIG")]
    pub config: Option<PathBuf>,

    /// HTTP address to listen on (API, streams, recordings). [default: 127.0.0.1:8080]
    #[arg(long, env = "TRIBUNE_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// UDP address for WebRTC media of every speaker (one shared port).
    /// [default: the IP of --listen, port 8081; port 0 if --listen uses port 0]
    #[arg(long, env = "TRIBUNE_UDP")]
    pub udp: Option<SocketAddr>,

    /// Addresses advertised as ICE host candidates, comma separated, each `IP` or `IP:PORT`
    /// (a public address behind NAT; IPv4 and IPv6). [default: the --udp IP, or 127.0.0.1 when
    /// --udp binds an unspecified address]
    #[arg(long, env = "TRIBUNE_ADVERTISE", value_delimiter = ',')]
    pub advertise: Option<Vec<String>>,

    /// Operator key (`Authorization: Bearer <key>` on operator requests).
    /// [default: a random key, printed at start]
    #[arg(long, env = "TRIBUNE_ADMIN_KEY")]
    pub admin_key: Option<String>,

    /// Secret that signs tokens (HS256). [default: random per run, so tokens die with the process]
    #[arg(long, env = "TRIBUNE_JWT_SECRET")]
    pub jwt_secret: Option<String>,

    /// Directory for recordings. [default: ./data]
    #[arg(long, env = "TRIBUNE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Bitrate of the listener stream and of each mix-minus, bits/s. [default: 32000]
    #[arg(long, env = "TRIBUNE_BITRATE")]
    pub bitrate: Option<u32>,

    /// Ogg page cadence of the live stream, milliseconds (20..=1000). [default: 200]
    #[arg(long, env = "TRIBUNE_PAGE_MS")]
    pub page_ms: Option<u64>,

    /// Recent audio sent at once to a new listener, milliseconds. [default: 1000]
    #[arg(long, env = "TRIBUNE_BURST_MS")]
    pub burst_ms: Option<u64>,

    /// How far (milliseconds) a listener may fall behind before it is dropped. [default: 10000]
    #[arg(long, env = "TRIBUNE_SLOW_LISTENER_MS")]
    pub slow_listener_ms: Option<u64>,

    /// Lifetime of minted tokens, seconds. [default: 43200]
    #[arg(long, env = "TRIBUNE_TOKEN_TTL")]
    pub token_ttl: Option<u64>,

    /// Largest accepted request body (SDP offers, JSON), bytes. [default: 65536]
    #[arg(long, env = "TRIBUNE_MAX_BODY")]
    pub max_body: Option<usize>,

    /// A speaker silent on the network this long is dropped (ICE consent, RFC 7675), seconds.
    /// [default: 30]
    #[arg(long, env = "TRIBUNE_ICE_TIMEOUT")]
    pub ice_timeout: Option<u64>,

    /// Most people on stage, host and co-hosts included. [default: 13]
    #[arg(long, env = "TRIBUNE_STAGE_LIMIT")]
    pub stage_limit: Option<usize>,

    /// Most live.opus listeners on this node; past it a new listener gets 503 with Retry-After
    /// (and the HLS URL, which edges serve). [default: the open-file limit minus 1,024 kept for
    /// control traffic, recordings and HLS]
    #[arg(long, env = "TRIBUNE_MAX_LISTENERS")]
    pub max_listeners: Option<u64>,

    /// A live space whose speakers all dropped stays live this long, seconds. [default: 300]
    #[arg(long, env = "TRIBUNE_GRACE")]
    pub grace: Option<u64>,

    /// A co-host may take over as host once the host has been gone this long, seconds.
    /// [default: 60]
    #[arg(long, env = "TRIBUNE_HOST_ABSENCE")]
    pub host_absence: Option<u64>,

    /// Lifetime of listener tokens from /join (renewable), seconds. [default: 900]
    #[arg(long, env = "TRIBUNE_JOIN_TTL")]
    pub join_ttl: Option<u64>,

    /// A listener counts as present this long after its last renewal or beacon, seconds.
    /// [default: 120]
    #[arg(long, env = "TRIBUNE_PRESENCE_WINDOW")]
    pub presence_window: Option<u64>,

    /// LL-HLS part duration, milliseconds (a multiple of 20, 200..=1000). [default: 400]
    #[arg(long, env = "TRIBUNE_PART_MS")]
    pub part_ms: Option<u64>,

    /// LL-HLS segment duration, milliseconds (a whole number of parts). [default: 2000]
    #[arg(long, env = "TRIBUNE_SEGMENT_MS")]
    pub segment_ms: Option<u64>,

    /// HTTPS address to listen on, serving the same API and streams as --listen (which stays
    /// plain HTTP for proxies, edges and health checks). Needs --tls-cert and --tls-key.
    /// [default: no HTTPS]
    #[arg(long, env = "TRIBUNE_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,

    /// PEM file with the HTTPS certificate chain, the server's certificate first.
    /// Needs --tls-listen and --tls-key.
    #[arg(long, env = "TRIBUNE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of --tls-cert (PKCS#8, RSA or SEC1).
    /// Needs --tls-listen and --tls-cert.
    #[arg(long, env = "TRIBUNE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Reverse proxies whose `X-Forwarded-For` is believed, comma separated IPs (e.g. 127.0.0.1
    /// for an nginx on the same machine). A request from one of them is attributed to the
    /// rightmost forwarded address that is not itself a trusted proxy (for address bans).
    /// [default: none; the TCP peer is the client]
    #[arg(long, env = "TRIBUNE_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Option<Vec<IpAddr>>,

    /// A second plain-HTTP address reserved for hosts, speakers and operators: the whole API
    /// with none of the audience limits (per-address connection caps, rate limits, class
    /// limits, the shield). Keep it off the public network (a private interface, a firewall or
    /// an operator VPN). [default: none]
    #[arg(long, env = "TRIBUNE_CONTROL_LISTEN")]
    pub control_listen: Option<SocketAddr>,

    /// Most connections open at once from one client address on the audience listeners
    /// (--listen, --tls-listen); 0 for no limit. Carrier-grade NAT puts many listeners behind one
    /// address, so keep it generous. [default: 256]
    #[arg(long, env = "TRIBUNE_MAX_CONNS_PER_IP")]
    pub max_conns_per_ip: Option<u32>,

    /// Requests in progress at once (until their response head), all classes together: host
    /// and speaker control may use all of it, listener joins 3/4, anything else 1/2.
    /// [default: 1024]
    #[arg(long, env = "TRIBUNE_MAX_INFLIGHT")]
    pub max_inflight: Option<u32>,

    /// Requests per second from one client address (listener and browsing requests; bursts of
    /// twice as many); 0 for no limit. [default: 50]
    #[arg(long, env = "TRIBUNE_IP_RATE")]
    pub ip_rate: Option<u32>,

    /// Joins per second from one client address (`/join`, live.opus, event streams; bursts of
    /// four times as many); 0 for no limit. [default: 5]
    #[arg(long, env = "TRIBUNE_JOIN_RATE")]
    pub join_rate: Option<u32>,

    /// WHIP offers per minute from one client address, and per token; 0 for no limit.
    /// [default: 12]
    #[arg(long, env = "TRIBUNE_WHIP_RATE")]
    pub whip_rate: Option<u32>,

    /// A kept-alive HTTP connection with no request this long is closed, seconds. [default: 60]
    #[arg(long, env = "TRIBUNE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,

    /// Largest request head (request line and headers) accepted, bytes. [default: 16384]
    #[arg(long, env = "TRIBUNE_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,

    /// Shield mode: `auto` (on when joins pass --shield-joins-per-s, off after a calm minute),
    /// `on` or `off`. With the shield on, a new listener must bring a proof-of-work ticket.
    /// [default: auto]
    #[arg(long, env = "TRIBUNE_SHIELD")]
    pub shield: Option<ShieldMode>,

    /// Proof-of-work difficulty, in leading zero bits of SHA-256: each bit doubles a client's
    /// work (see `tribune-bench pow`). [default: 21, about 0.2 s of a native client's CPU]
    #[arg(long, env = "TRIBUNE_SHIELD_BITS")]
    pub shield_bits: Option<u32>,

    /// Joins per second on this node (admitted or not) that switch an `auto` shield on: above
    /// what a node admits without strain (5,000/s measured), so a real flash crowd of players
    /// that cannot solve proofs of work is never asked for one. [default: 10000]
    #[arg(long, env = "TRIBUNE_SHIELD_JOINS_PER_S")]
    pub shield_joins_per_s: Option<u32>,

    /// Log filter (tracing `EnvFilter` syntax). [default: info]
    #[arg(long, env = "TRIBUNE_LOG")]
    pub log: Option<String>,

    /// Listeners per fan-out writer task on the plain HTTP port (a benchmark knob; 1 gives every
    /// listener its own task). [default: 256]
    #[arg(long, env = "TRIBUNE_FANOUT_SHARD", hide = true)]
    pub fanout_shard: Option<usize>,

    /// How long a client has to send its request head, milliseconds (a test knob: slow-client
    /// tests need seconds, not the default ten). [default: 10000]
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
    #[error("invalid option {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(
        "HTTPS needs --tls-listen, --tls-cert and --tls-key together \
         (TRIBUNE_TLS_LISTEN/_CERT/_KEY, or tls_listen/tls_cert/tls_key in the file): \
         missing {missing}"
    )]
    TlsIncomplete { missing: String },
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
    /// Limits on audience traffic (issue 7: floods and flash crowds).
    pub limits: Limits,
    /// Proof-of-work admission under attack.
    pub shield: Shield,
    pub log: String,
    /// How long a plain-HTTP client has to send its request head before it is disconnected.
    pub head_timeout: Duration,
    /// Listeners served by one fan-out writer task (see [`crate::fanout`]).
    pub fanout_shard: usize,
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
    /// Merge flags/environment (already merged by clap) over the TOML file over defaults.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        merge(self.clone(), file)
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Field-by-field merge: `args` wins over `file`, which wins over the default.
pub fn merge(args: Args, file: FileConfig) -> Result<Config, ConfigError> {
    let listen = args.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN);
    let udp = args.udp.or(file.udp).unwrap_or_else(|| {
        let port = if listen.port() == 0 {
            0
        } else {
            listen.port().wrapping_add(1)
        };
        SocketAddr::new(listen.ip(), port)
    });
    let advertise_raw = args.advertise.or(file.advertise).unwrap_or_default();
    let mut advertise = Vec::new();
    for a in advertise_raw
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        advertise.push(parse_advertise(a)?);
    }
    if advertise.is_empty() {
        let ip = if udp.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            udp.ip()
        };
        advertise.push(SocketAddr::new(ip, 0));
    }
    let page_ms = args.page_ms.or(file.page_ms).unwrap_or(200);
    if !(20..=1000).contains(&page_ms) || !page_ms.is_multiple_of(20) {
        return Err(ConfigError::Invalid {
            name: "page_ms",
            reason: format!("{page_ms} is not a multiple of 20 between 20 and 1000"),
        });
    }
    let bitrate = args.bitrate.or(file.bitrate).unwrap_or(32_000);
    if !(6_000..=510_000).contains(&bitrate) {
        return Err(ConfigError::Invalid {
            name: "bitrate",
            reason: format!("{bitrate} is outside Opus' 6000..=510000 b/s"),
        });
    }
    Ok(Config {
        listen,
        udp,
        advertise,
        admin_key: args
            .admin_key
            .or(file.admin_key)
            .unwrap_or_else(|| crate::auth::random_id(32)),
        jwt_secret: args
            .jwt_secret
            .or(file.jwt_secret)
            .unwrap_or_else(|| crate::auth::random_id(48)),
        data_dir: args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data")),
        bitrate,
        page: Duration::from_millis(page_ms),
        burst: Duration::from_millis(args.burst_ms.or(file.burst_ms).unwrap_or(1000)),
        slow_listener: Duration::from_millis(
            args.slow_listener_ms
                .or(file.slow_listener_ms)
                .unwrap_or(10_000)
                .max(1000),
        ),
        token_ttl: Duration::from_secs(args.token_ttl.or(file.token_ttl).unwrap_or(43_200)),
        max_body: args.max_body.or(file.max_body).unwrap_or(64 * 1024),
        ice_timeout: Duration::from_secs(
            args.ice_timeout.or(file.ice_timeout).unwrap_or(30).max(1),
        ),
        stage_limit: args.stage_limit.or(file.stage_limit).unwrap_or(13).max(1),
        max_listeners: args
            .max_listeners
            .or(file.max_listeners)
            .unwrap_or_else(default_max_listeners),
        grace: Duration::from_secs(args.grace.or(file.grace).unwrap_or(300)),
        host_absence: Duration::from_secs(args.host_absence.or(file.host_absence).unwrap_or(60)),
        join_ttl: Duration::from_secs(args.join_ttl.or(file.join_ttl).unwrap_or(900).max(10)),
        presence_window: Duration::from_secs(
            args.presence_window
                .or(file.presence_window)
                .unwrap_or(120)
                .max(1),
        ),
        hls: hls_config(
            args.part_ms.or(file.part_ms).unwrap_or(400),
            args.segment_ms.or(file.segment_ms).unwrap_or(2000),
        )?,
        tls: tls_config(
            args.tls_listen.or(file.tls_listen),
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        )?,
        trusted_proxies: args
            .trusted_proxy
            .or(file.trusted_proxy)
            .unwrap_or_default()
            .into_iter()
            .map(|ip| ip.to_canonical())
            .collect(),
        limits: Limits {
            control_listen: args.control_listen.or(file.control_listen),
            max_conns_per_ip: args
                .max_conns_per_ip
                .or(file.max_conns_per_ip)
                .unwrap_or(256),
            max_inflight: args
                .max_inflight
                .or(file.max_inflight)
                .unwrap_or(1024)
                .max(8),
            ip_rate: args.ip_rate.or(file.ip_rate).unwrap_or(50),
            join_rate: args.join_rate.or(file.join_rate).unwrap_or(5),
            whip_rate: args.whip_rate.or(file.whip_rate).unwrap_or(12),
            idle_timeout: Duration::from_secs(
                args.idle_timeout.or(file.idle_timeout).unwrap_or(60).max(1),
            ),
            max_header_bytes: args
                .max_header_bytes
                .or(file.max_header_bytes)
                .unwrap_or(16 * 1024)
                .max(1024),
        },
        shield: Shield {
            mode: args.shield.or(file.shield).unwrap_or(ShieldMode::Auto),
            bits: {
                let bits = args
                    .shield_bits
                    .or(file.shield_bits)
                    .unwrap_or(crate::shield::DEFAULT_BITS);
                if !(1..=32).contains(&bits) {
                    return Err(ConfigError::Invalid {
                        name: "shield_bits",
                        reason: format!("{bits} is outside 1..=32"),
                    });
                }
                bits
            },
            joins_per_s: args
                .shield_joins_per_s
                .or(file.shield_joins_per_s)
                .unwrap_or(10_000)
                .max(1),
        },
        log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
        head_timeout: args
            .head_timeout_ms
            .map_or(HEAD_TIMEOUT, Duration::from_millis)
            .max(Duration::from_millis(1)),
        fanout_shard: args.fanout_shard.unwrap_or(FANOUT_SHARD).max(1),
    })
}

/// All three TLS options or none; anything in between names what is missing.
/// File descriptors kept out of the listeners' reach: control requests, event streams, HLS,
/// recordings, the database and WHIP sessions.
pub const FD_RESERVE: u64 = 1024;

/// The open-file limit (soft; the CLI raises it to the hard limit first) minus [`FD_RESERVE`].
pub fn default_max_listeners() -> u64 {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    soft.saturating_sub(FD_RESERVE).max(16)
}

fn tls_config(
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<Tls>, ConfigError> {
    match (listen, cert, key) {
        (None, None, None) => Ok(None),
        (Some(listen), Some(cert), Some(key)) => Ok(Some(Tls { listen, cert, key })),
        (listen, cert, key) => {
            let missing: Vec<&str> = [
                (listen.is_none(), "--tls-listen"),
                (cert.is_none(), "--tls-cert"),
                (key.is_none(), "--tls-key"),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect();
            Err(ConfigError::TlsIncomplete {
                missing: missing.join(" and "),
            })
        }
    }
}

fn hls_config(part_ms: u64, segment_ms: u64) -> Result<tribune_media::hls::Config, ConfigError> {
    if !(200..=1000).contains(&part_ms) || !part_ms.is_multiple_of(20) {
        return Err(ConfigError::Invalid {
            name: "part_ms",
            reason: format!("{part_ms} is not a multiple of 20 between 200 and 1000"),
        });
    }
    if segment_ms < part_ms || !segment_ms.is_multiple_of(part_ms) || segment_ms > 10_000 {
        return Err(ConfigError::Invalid {
            name: "segment_ms",
            reason: format!("{segment_ms} is not a whole number of {part_ms} ms parts up to 10 s"),
        });
    }
    Ok(tribune_media::hls::Config {
        part_target: Duration::from_millis(part_ms),
        segment_target: Duration::from_millis(segment_ms),
        ..tribune_media::hls::Config::default()
    })
}

fn parse_advertise(s: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 0))
        .map_err(|_| ConfigError::Invalid {
            name: "advertise",
            reason: format!("{s:?} is neither IP nor IP:PORT"),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            bitrate = 48000
            page_ms = 1000
            "#,
        )
        .unwrap();
        let args = Args {
            bitrate: Some(24_000),
            ..Args::default()
        };
        let c = merge(args, file).unwrap();
        assert_eq!(c.bitrate, 24_000, "flag wins over file");
        assert_eq!(c.listen.port(), 9000, "file wins over default");
        assert_eq!(c.page, Duration::from_secs(1));
        assert_eq!(c.burst, Duration::from_millis(1000), "default");
        assert_eq!(c.udp.port(), 9001, "udp defaults to listen port + 1");
    }

    #[test]
    #[allow(unsafe_code)]
    fn env_beats_file_and_flag_beats_env() {
        // Only this test reads TRIBUNE_BURST_MS, so setting it cannot disturb other tests.
        // SAFETY: no other thread reads or writes this variable.
        unsafe { std::env::set_var("TRIBUNE_BURST_MS", "250") };
        let file = FileConfig {
            burst_ms: Some(3000),
            page_ms: Some(1000),
            ..FileConfig::default()
        };
        let args = Args::try_parse_from(["serve", "--page-ms", "400"]).unwrap();
        let c = merge(args, file.clone()).unwrap();
        assert_eq!(c.page, Duration::from_millis(400), "flag beats file");
        assert_eq!(c.burst, Duration::from_millis(250), "env beats file");
        let args = Args::try_parse_from(["serve", "--burst-ms", "100"]).unwrap();
        let c = merge(args, file).unwrap();
        assert_eq!(c.burst, Duration::from_millis(100), "flag beats env");
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("listen_port = 3").is_err());
    }

    #[test]
    fn bad_values_are_rejected() {
        let args = Args {
            page_ms: Some(30),
            ..Args::default()
        };
        assert!(merge(args, FileConfig::default()).is_err());
        let args = Args {
            advertise: Some(vec!["not-an-ip".into()]),
            ..Args::default()
        };
        assert!(merge(args, FileConfig::default()).is_err());
    }

    #[test]
    fn tls_options_merge_field_by_field() {
        let file: FileConfig = toml::from_str(
            r#"
            tls_listen = "127.0.0.1:8443"
            tls_cert = "/etc/tribune/file-cert.pem"
            tls_key = "/etc/tribune/key.pem"
            trusted_proxy = ["10.0.0.1"]
            "#,
        )
        .unwrap();
        let args = Args::try_parse_from([
            "serve",
            "--tls-cert",
            "/flag/cert.pem",
            "--trusted-proxy",
            "127.0.0.1,::ffff:192.0.2.1,::1",
        ])
        .unwrap();
        let c = merge(args, file).unwrap();
        let tls = c.tls.expect("TLS on");
        assert_eq!(tls.cert, PathBuf::from("/flag/cert.pem"), "flag beats file");
        assert_eq!(tls.key, PathBuf::from("/etc/tribune/key.pem"), "file");
        assert_eq!(tls.listen.port(), 8443);
        assert_eq!(
            c.trusted_proxies,
            ["127.0.0.1", "192.0.2.1", "::1"]
                .map(|s| s.parse::<IpAddr>().unwrap())
                .to_vec(),
            "the flag's list replaces the file's; IPv4-mapped addresses become IPv4"
        );
        let c = merge(Args::default(), FileConfig::default()).unwrap();
        assert_eq!(c.tls, None, "no TLS by default");
        assert!(c.trusted_proxies.is_empty(), "no trusted proxy by default");
    }

    #[test]
    fn tls_options_go_together() {
        let args = Args::try_parse_from(["serve", "--tls-cert", "c.pem"]).unwrap();
        let e = merge(args, FileConfig::default()).unwrap_err().to_string();
        assert!(
            e.contains("missing --tls-listen and --tls-key"),
            "names what is missing: {e}"
        );
        let file = FileConfig {
            tls_listen: Some("127.0.0.1:8443".parse().unwrap()),
            tls_key: Some("k.pem".into()),
            ..FileConfig::default()
        };
        let e = merge(Args::default(), file).unwrap_err().to_string();
        assert!(e.ends_with("missing --tls-cert"), "{e}");
    }

    #[test]
    fn advertise_forms() {
        assert_eq!(
            parse_advertise("203.0.113.7").unwrap(),
            "203.0.113.7:0".parse().unwrap()
        );
        assert_eq!(
            parse_advertise("[2001:db8::1]:4000").unwrap(),
            "[2001:db8::1]:4000".parse().unwrap()
        );
        assert_eq!(
            parse_advertise("2001:db8::1").unwrap(),
            "[2001:db8::1]:0".parse().unwrap()
        );
    }
}
