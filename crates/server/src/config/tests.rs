//! Tests of the configuration: the merge order, every refusal (with the flags it names), and
//! a property test that whatever the merge accepts builds the parts of a space without a panic.

use std::time::{Duration, Instant, SystemTime};

use clap::{CommandFactory, Parser};
use proptest::prelude::*;

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

/// The environment as a map: tests never read or write the process environment.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| vars.get(k).cloned()
}

#[test]
fn env_beats_file_and_flag_beats_env() {
    let vars = env(&[
        ("TRIBUNE_BURST_MS", "250"),
        ("TRIBUNE_ADVERTISE", "192.0.2.1,192.0.2.2"),
    ]);
    let file = FileConfig {
        burst_ms: Some(3000),
        page_ms: Some(1000),
        ..FileConfig::default()
    };
    let layered = |argv: &[&str]| {
        Args::try_parse_from(argv)
            .unwrap()
            .over(Args::from_env(&vars).unwrap())
    };
    let c = merge(layered(&["serve", "--page-ms", "400"]), file.clone()).unwrap();
    assert_eq!(c.page, Duration::from_millis(400), "flag beats file");
    assert_eq!(c.burst, Duration::from_millis(250), "env beats file");
    assert_eq!(
        c.advertise.len(),
        2,
        "a list from the environment, as from the flag"
    );
    let c = merge(layered(&["serve", "--burst-ms", "100"]), file).unwrap();
    assert_eq!(c.burst, Duration::from_millis(100), "flag beats env");
}

#[test]
fn resolve_reads_the_config_path_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("tribune-config-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tribune.toml");
    std::fs::write(&path, "grace = 7\nhost_absence = 3\n").unwrap();
    let vars = env(&[
        ("TRIBUNE_CONFIG", path.to_str().unwrap()),
        ("TRIBUNE_HOST_ABSENCE", "5"),
    ]);
    let c = Args::default().resolve_with(&vars).unwrap();
    assert_eq!(
        c.grace,
        Duration::from_secs(7),
        "file named by the environment"
    );
    assert_eq!(
        c.host_absence,
        Duration::from_secs(5),
        "env beats that file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_environment_value_names_its_variable() {
    let e = Args::from_env(&env(&[("TRIBUNE_BURST_MS", "soon")]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("TRIBUNE_BURST_MS: "), "{e}");
    let e = Args::default()
        .resolve_with(&env(&[("TRIBUNE_TOKEN_TTL", "0")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--token-ttl 0"), "{e}");
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

fn refusal(argv: &[&str]) -> String {
    let mut full = vec!["serve"];
    full.extend_from_slice(argv);
    match merge(Args::try_parse_from(full).unwrap(), FileConfig::default()) {
        Ok(_) => panic!("{argv:?} accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hls_timings_that_panicked_every_space_are_refused_naming_the_flags() {
    // Issue 14: these started, then every space creation panicked in `Rendition::new`.
    let e = refusal(&["--part-ms", "1000", "--segment-ms", "1000"]);
    assert!(
        e.starts_with("--segment-ms 1000 must be at least 2000 with --part-ms 1000"),
        "{e}"
    );
    let e = refusal(&["--part-ms", "200", "--segment-ms", "200"]);
    assert!(
        e.starts_with("--segment-ms 200 must be at least 400 with --part-ms 200"),
        "{e}"
    );
    let e = refusal(&["--segment-ms", "400"]);
    assert!(
        e.starts_with("--segment-ms 400 must be at least 800 with --part-ms 400"),
        "{e}"
    );
    let e = refusal(&["--part-ms", "210", "--segment-ms", "2100"]);
    assert!(
        e.starts_with("--part-ms 210 must be a multiple of 20"),
        "{e}"
    );
    let e = refusal(&["--segment-ms", "2100"]);
    assert!(
        e.contains("--segment-ms 2100 must be a whole number of --part-ms 400"),
        "{e}"
    );
    let e = refusal(&["--part-ms", "1200"]);
    assert!(
        e.starts_with("--part-ms 1200 is out of range: it must be 200..=1000 ms"),
        "{e}"
    );
    let ok = |argv: &[&str]| {
        let mut full = vec!["serve"];
        full.extend_from_slice(argv);
        merge(Args::try_parse_from(full).unwrap(), FileConfig::default()).unwrap()
    };
    assert_eq!(
        ok(&["--part-ms", "1000", "--segment-ms", "2000"])
            .hls
            .segment_target
            .as_millis(),
        2000
    );
    ok(&["--part-ms", "200", "--segment-ms", "400"]);
}

#[test]
fn limits_that_cannot_work_are_refused() {
    for (flag, value) in [
        ("--token-ttl", "0"),
        ("--stage-limit", "0"),
        ("--max-listeners", "0"),
        ("--slow-listener-ms", "999"),
        ("--join-ttl", "9"),
        ("--max-inflight", "7"),
        ("--idle-timeout", "0"),
        ("--ice-timeout", "0"),
        ("--presence-window", "0"),
        ("--max-header-bytes", "1023"),
        ("--shield-joins-per-s", "0"),
        ("--shield-bits", "33"),
        ("--page-ms", "30"),
    ] {
        let e = refusal(&[flag, value]);
        assert!(e.starts_with(&format!("{flag} {value} ")), "{flag}: {e}");
    }
}

#[test]
fn values_that_overflow_later_are_refused_not_clamped() {
    // Each of these used to be taken: a ring of u64::MAX pages, an Instant past the end of
    // time, an expiry that wraps.
    let max = u64::MAX.to_string();
    for flag in [
        "--burst-ms",
        "--slow-listener-ms",
        "--token-ttl",
        "--ice-timeout",
        "--grace",
        "--host-absence",
        "--join-ttl",
        "--presence-window",
        "--idle-timeout",
        "--max-listeners",
    ] {
        let e = refusal(&[flag, &max]);
        assert!(
            e.starts_with(&format!("{flag} {max} is out of range")),
            "{e}"
        );
    }
    let e = refusal(&["--head-timeout-ms", "0"]);
    assert!(e.starts_with("--head-timeout-ms 0 "), "{e}");
}

#[test]
fn short_secrets_are_refused() {
    let e = refusal(&["--admin-key", "k"]);
    assert!(
        e.starts_with("--admin-key is 1 bytes long: use at least 16"),
        "{e}"
    );
    assert!(!e.contains(" k "), "the key is not printed: {e}");
    let e = refusal(&["--jwt-secret", "fifteen-bytes!!"]);
    assert!(e.starts_with("--jwt-secret is 15 bytes long"), "{e}");
    let file = FileConfig {
        admin_key: Some("change-me".into()),
        ..FileConfig::default()
    };
    assert!(merge(Args::default(), file).is_err(), "from the file too");
    let c = merge(
        Args::try_parse_from(["serve", "--admin-key", "sixteen-bytes-ok"]).unwrap(),
        FileConfig::default(),
    )
    .unwrap();
    assert_eq!(c.admin_key, "sixteen-bytes-ok");
    assert!(
        c.jwt_secret.len() >= options::MIN_SECRET_BYTES,
        "random secret"
    );
}

#[test]
fn help_shows_the_defaults_merge_uses() {
    let help = Args::command().render_long_help().to_string();
    let c = merge(Args::default(), FileConfig::default()).unwrap();
    for (flag, value) in [
        ("burst-ms", c.burst.as_millis().to_string()),
        ("part-ms", c.hls.part_target.as_millis().to_string()),
        ("token-ttl", c.token_ttl.as_secs().to_string()),
        ("stage-limit", c.stage_limit.to_string()),
        ("listen", c.listen.to_string()),
        ("log", c.log.clone()),
    ] {
        let at = help.find(&format!("--{flag} <")).expect(flag);
        let next = help[at + 2..]
            .find("\n  -")
            .map_or(help.len(), |n| at + 2 + n);
        let text = &help[at..next];
        assert!(text.contains(&format!("[default: {value}]")), "{text}");
        let env = format!("[env: TRIBUNE_{}]", flag.replace('-', "_").to_uppercase());
        assert!(text.contains(&env), "{text}");
    }
    for n in options::NUMS {
        if let Some(d) = n.default {
            assert!(
                n.check(d).is_ok(),
                "the default of --{} is in its range",
                n.flag
            );
        }
        assert!(
            Args::command()
                .get_arguments()
                .any(|a| a.get_long() == Some(n.flag)),
            "--{} is a flag",
            n.flag
        );
    }
}

/// Values of a timing flag: none, around its bounds, anything.
fn value() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        2 => Just(None),
        3 => (0u64..1200).prop_map(|v| Some(v * 20)),
        2 => (0u64..=100_000).prop_map(Some),
        1 => any::<u64>().prop_map(Some),
        1 => prop::sample::select(vec![0, 1, 9, 10, 999, 1000, 86_400, 86_401, 600_000, 600_001,
            u32::MAX as u64, u64::MAX]).prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Whatever timings the merge accepts, the parts of a space built from them never panic:
    /// the HLS rendition (with parts pushed), the live ring and the fan-out window, the room,
    /// presence, token expiry and the deadlines the server computes.
    #[test]
    fn accepted_timings_build_a_space(
        v in prop::collection::vec(value(), 14),
        stage in prop::option::of(0usize..200),
    ) {
        let args = Args {
            page_ms: v[0], burst_ms: v[1], slow_listener_ms: v[2], token_ttl: v[3],
            ice_timeout: v[4], max_listeners: v[5], grace: v[6], host_absence: v[7],
            join_ttl: v[8], presence_window: v[9], part_ms: v[10], segment_ms: v[11],
            idle_timeout: v[12], head_timeout_ms: v[13], stage_limit: stage,
            ..Args::default()
        };
        let Ok(c) = merge(args, FileConfig::default()) else { return Ok(()) };
        let mut r = tribune_media::hls::Rendition::new(c.hls);
        for i in 0..40 {
            r.push_part(c.hls.part_target, 1_700_000_000_000 + i * 400);
        }
        let _ = r.live_playlist(true);
        let header = tribune_media::oggopus::OggOpusWriter::new(1, 1, 312, vec![]);
        let live = tribune_engine::live::LiveStream::new(header, c.page, c.burst, c.slow_listener);
        let _ = tribune_engine::fanout::window::Window::new(live.capacity(), live.burst_pages(), vec![]);
        let room = tribune_room::Config {
            stage_limit: c.stage_limit,
            grace_ms: c.grace.as_millis() as u64,
            host_absence_ms: c.host_absence.as_millis() as u64,
            ..tribune_room::Config::default()
        };
        let _ = tribune_room::Room::new(room, tribune_room::Lifecycle::Live, None);
        let _ = tribune_room::Presence::new(c.presence_window.as_millis() as u64);
        let keys = crate::auth::Keys::new(&c.jwt_secret);
        let now = SystemTime::now();
        let _ = keys.mint("s", "u", "n", tribune_room::Role::Host, c.token_ttl, now);
        let _ = keys.mint("s", "u", "n", tribune_room::Role::Listener, c.join_ttl, now);
        let _ = c.clock.now_s() + c.join_ttl.as_secs() / 2;
        let _ = Instant::now() + c.ice_timeout;
        let _ = Instant::now() + c.head_timeout;
        let _ = c.limits.idle_timeout + c.limits.idle_timeout / 2;
    }
}
