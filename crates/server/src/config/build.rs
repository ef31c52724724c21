//! Turning flags, environment and file into a [`Config`]: every value checked, each refusal
//! naming its flag.

use super::*;

pub(super) fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Field-by-field merge: `args` (flags over environment, see [`Args::over`]) wins over `file`,
/// which wins over the default of [`options`]. Every value is checked here, alone and with the
/// others it must work with, so a configuration this accepts starts spaces that work.
pub fn merge(args: Args, file: FileConfig) -> Result<Config, ConfigError> {
    use options as o;
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
    let page_ms = o::PAGE_MS.take(args.page_ms.or(file.page_ms))?;
    if !page_ms.is_multiple_of(20) {
        return Err(ConfigError::Combination(format!(
            "--page-ms {page_ms} must be a multiple of 20 (Opus frames are 20 ms)"
        )));
    }
    let bitrate = o::BITRATE.take(args.bitrate.or(file.bitrate).map(u64::from))?;
    let u32_of =
        |n: &o::Num, v: Option<u32>| n.take(v.map(u64::from)).map(|v| o::narrow(v, u32::MAX));
    let usize_of =
        |n: &o::Num, v: Option<usize>| n.take(o::wide(v)).map(|v| o::narrow(v, usize::MAX));
    let secs = |n: &o::Num, v: Option<u64>| n.take(v).map(Duration::from_secs);
    let millis = |n: &o::Num, v: Option<u64>| n.take(v).map(Duration::from_millis);
    let secret = |flag: &'static str, v: Option<String>, random: usize| match v {
        Some(v) if v.len() < o::MIN_SECRET_BYTES => {
            Err(ConfigError::ShortSecret { flag, len: v.len() })
        }
        Some(v) => Ok(v),
        None => Ok(crate::auth::random_id(random)),
    };
    let cluster = cluster(
        args.redis.clone().or(file.redis.clone()),
        args.node_id.clone().or(file.node_id.clone()),
        args.public_url.clone().or(file.public_url.clone()),
        args.admin_key.is_some() || file.admin_key.is_some(),
        args.jwt_secret.is_some() || file.jwt_secret.is_some(),
    )?;
    Ok(Config {
        cluster,
        listen,
        udp,
        advertise,
        admin_key: secret("admin-key", args.admin_key.or(file.admin_key), 32)?,
        jwt_secret_made: args.jwt_secret.is_none() && file.jwt_secret.is_none(),
        jwt_secret: secret("jwt-secret", args.jwt_secret.or(file.jwt_secret), 48)?,
        data_dir: args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(o::DATA_DIR)),
        bitrate: o::narrow(bitrate, u32::MAX),
        page: Duration::from_millis(page_ms),
        burst: millis(&o::BURST_MS, args.burst_ms.or(file.burst_ms))?,
        slow_listener: millis(
            &o::SLOW_LISTENER_MS,
            args.slow_listener_ms.or(file.slow_listener_ms),
        )?,
        token_ttl: secs(&o::TOKEN_TTL, args.token_ttl.or(file.token_ttl))?,
        max_body: usize_of(&o::MAX_BODY, args.max_body.or(file.max_body))?,
        ice_timeout: secs(&o::ICE_TIMEOUT, args.ice_timeout.or(file.ice_timeout))?,
        stage_limit: usize_of(&o::STAGE_LIMIT, args.stage_limit.or(file.stage_limit))?,
        max_listeners: match args.max_listeners.or(file.max_listeners) {
            Some(v) => o::MAX_LISTENERS.check(v)?,
            None => default_max_listeners(),
        },
        grace: secs(&o::GRACE, args.grace.or(file.grace))?,
        host_absence: secs(&o::HOST_ABSENCE, args.host_absence.or(file.host_absence))?,
        join_ttl: secs(&o::JOIN_TTL, args.join_ttl.or(file.join_ttl))?,
        presence_window: secs(
            &o::PRESENCE_WINDOW,
            args.presence_window.or(file.presence_window),
        )?,
        hls: hls_config(
            o::PART_MS.take(args.part_ms.or(file.part_ms))?,
            o::SEGMENT_MS.take(args.segment_ms.or(file.segment_ms))?,
        )?,
        tls: tls_config(
            args.tls_listen.or(file.tls_listen),
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        )?,
        captions_model: args.captions_model.or(file.captions_model),
        captions_language: {
            let l = args
                .captions_language
                .or(file.captions_language)
                .unwrap_or_else(|| "en".to_owned());
            if l.is_empty() || l.len() > 8 || !l.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(ConfigError::Invalid {
                    name: "captions-language",
                    reason: format!(
                        "{l:?} is not a language code (two or three lowercase letters, e.g. en)"
                    ),
                });
            }
            l
        },
        captions_slowdown: Duration::from_millis(
            args.captions_slowdown_ms.unwrap_or(0).min(60_000),
        ),
        captions: None,
        trusted_proxies: args
            .trusted_proxy
            .or(file.trusted_proxy)
            .unwrap_or_default()
            .into_iter()
            .map(|ip| ip.to_canonical())
            .collect(),
        limits: Limits {
            control_listen: args.control_listen.or(file.control_listen),
            max_conns_per_ip: u32_of(
                &o::MAX_CONNS_PER_IP,
                args.max_conns_per_ip.or(file.max_conns_per_ip),
            )?,
            max_inflight: u32_of(&o::MAX_INFLIGHT, args.max_inflight.or(file.max_inflight))?,
            ip_rate: u32_of(&o::IP_RATE, args.ip_rate.or(file.ip_rate))?,
            join_rate: u32_of(&o::JOIN_RATE, args.join_rate.or(file.join_rate))?,
            whip_rate: u32_of(&o::WHIP_RATE, args.whip_rate.or(file.whip_rate))?,
            idle_timeout: secs(&o::IDLE_TIMEOUT, args.idle_timeout.or(file.idle_timeout))?,
            max_header_bytes: usize_of(
                &o::MAX_HEADER_BYTES,
                args.max_header_bytes.or(file.max_header_bytes),
            )?,
        },
        shield: Shield {
            mode: args.shield.or(file.shield).unwrap_or(ShieldMode::Auto),
            bits: u32_of(&o::SHIELD_BITS, args.shield_bits.or(file.shield_bits))?,
            joins_per_s: u32_of(
                &o::SHIELD_JOINS_PER_S,
                args.shield_joins_per_s.or(file.shield_joins_per_s),
            )?,
        },
        log: args.log.or(file.log).unwrap_or_else(|| o::LOG.into()),
        head_timeout: millis(&o::HEAD_TIMEOUT_MS, args.head_timeout_ms)?,
        fanout_shard: usize_of(&o::FANOUT_SHARD, args.fanout_shard)?,
        clock: tribune_engine::clock::Clock::system(),
    })
}

/// The open-file limit (soft; the CLI raises it to the hard limit first) minus [`FD_RESERVE`].
pub fn default_max_listeners() -> u64 {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    soft.saturating_sub(FD_RESERVE).max(16)
}

pub(super) fn tls_config(
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

/// The HLS timing, checked by the rendition's own rule ([`tribune_media::hls::Config::check`],
/// which `Rendition::new` asserts), its refusal worded with the flags.
pub(super) fn hls_config(
    part_ms: u64,
    segment_ms: u64,
) -> Result<tribune_media::hls::Config, ConfigError> {
    use tribune_media::hls::ConfigError as E;
    let cfg = tribune_media::hls::Config {
        part_target: Duration::from_millis(part_ms),
        segment_target: Duration::from_millis(segment_ms),
        ..tribune_media::hls::Config::default()
    };
    let why = match cfg.check() {
        Ok(()) => return Ok(cfg),
        Err(E::Part { .. }) => {
            format!("--part-ms {part_ms} must be a multiple of 20 (Opus frames are 20 ms)")
        }
        Err(E::Segment { .. }) => format!(
            "--segment-ms {segment_ms} must be a whole number of --part-ms {part_ms} parts, \
             at most {} ms",
            tribune_media::hls::MAX_SEGMENT.as_millis()
        ),
        Err(E::Window {
            live_segments,
            target,
            min_segment,
            ..
        }) => format!(
            "--segment-ms {segment_ms} {} with --part-ms {part_ms}: live.m3u8 lists \
             {live_segments} segments, which must hold three target durations ({target} s \
             each; RFC 8216bis §6.2.2)",
            match min_segment {
                Some(m) => format!("must be at least {}", m.as_millis()),
                None => "cannot work".to_owned(),
            }
        ),
        Err(e) => format!("--part-ms {part_ms} --segment-ms {segment_ms}: {e}"),
    };
    Err(ConfigError::Combination(why))
}

pub(super) fn parse_advertise(s: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 0))
        .map_err(|_| ConfigError::Invalid {
            name: "--advertise",
            reason: format!("{s:?} is neither IP nor IP:PORT"),
        })
}

/// The cluster settings: all of `--redis`, `--node-id` and `--public-url`, or none; in a
/// cluster the keys must be given (a random one per node would make every node's tokens
/// worthless on the others).
pub(super) fn cluster(
    redis: Option<String>,
    node_id: Option<String>,
    public_url: Option<String>,
    admin_key: bool,
    jwt_secret: bool,
) -> Result<Option<Cluster>, ConfigError> {
    let invalid = |name: &'static str, reason: String| ConfigError::Invalid { name, reason };
    let Some(redis) = redis else {
        if node_id.is_some() || public_url.is_some() {
            return Err(invalid(
                "--node-id/--public-url",
                "they name this node in a cluster: give --redis too".into(),
            ));
        }
        return Ok(None);
    };
    if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
        return Err(invalid(
            "--redis",
            format!("{redis:?} is not redis://HOST:PORT[/DB]"),
        ));
    }
    let node_id =
        node_id.ok_or_else(|| invalid("--node-id", "a cluster node needs an id".into()))?;
    let id_ok = (1..=64).contains(&node_id.len())
        && node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(invalid(
            "--node-id",
            format!("{node_id:?} is not [A-Za-z0-9_-]{{1,64}}"),
        ));
    }
    let public_url = public_url.ok_or_else(|| {
        invalid(
            "--public-url",
            "a cluster node needs the URL others reach it at".into(),
        )
    })?;
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        return Err(invalid(
            "--public-url",
            format!("{public_url:?} is not an http(s) URL"),
        ));
    }
    if !admin_key || !jwt_secret {
        return Err(invalid(
            "--redis",
            "every node of a cluster needs the same --admin-key and --jwt-secret (a random one per \
             node would make tokens of one node worthless on the others)"
                .into(),
        ));
    }
    Ok(Some(Cluster {
        redis,
        node_id,
        public_url: public_url.trim_end_matches('/').to_owned(),
    }))
}
