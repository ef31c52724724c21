//! A real nginx edge (`deploy/nginx/edge.conf`, Debian's nginx) in front of a `tribune serve`
//! origin, with 500 simulated LL-HLS listeners going through it for 30 s: every listener follows
//! the live edge without a media-sequence gap or an invalid playlist, and the origin serves each
//! part and segment at most [`MAX_ORIGIN_FETCHES`] times (counted from the edge's access log:
//! a request with `$upstream_addr` set went to the origin), not once per listener.
//!
//! Needs `/usr/sbin/nginx` (`scripts/packages.sh test` installs it).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use tribune_client::hls::{self, Options, Report};

const LISTENERS: usize = 500;
const LISTEN: Duration = Duration::from_secs(30);
/// Origin fetches allowed per part or segment URL, whichever the number of listeners.
const MAX_ORIGIN_FETCHES: u64 = 3;
/// The edge: `deploy/nginx/edge.conf` in front of `origin`; returns it and its base URL.
fn start_edge(origin: &str) -> (Nginx, String) {
    let prefix = temp_dir("edge");
    let cache = prefix.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // Debian's default is fine for a real edge; here the hard limit may be lower.
    let nofile = format!("worker_rlimit_nofile {};", nofile_limit());
    let nginx = Nginx::start(
        "edge.conf",
        prefix,
        &[
            ("worker_rlimit_nofile 65536;", &nofile),
            ("@ORIGIN@", origin),
            ("@CACHE@", cache.to_str().unwrap()),
        ],
    );
    let base = format!("http://127.0.0.1:{}", nginx.port);
    (nginx, base)
}

/// The hard limit on open files (what nginx's workers may raise theirs to).
fn nofile_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
        r.rlim_max.min(65_536)
    } else {
        4096
    }
}

/// Up to the hard limit: 500 listeners hold ~1500 sockets.
fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// What went to the origin, per request URI (from the edge's `access_log`).
fn origin_fetches(log: &str) -> BTreeMap<String, u64> {
    let mut per_uri = BTreeMap::new();
    for line in log.lines() {
        let Some(uri) = line
            .split_once("\"GET ")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(uri, _)| uri)
        else {
            continue;
        };
        let Some(up) = line.split_whitespace().find_map(|w| w.strip_prefix("up=")) else {
            continue;
        };
        if up == "-" {
            continue;
        }
        // Retries list several addresses: each was a request to the origin.
        let n = up.split(',').count() as u64;
        *per_uri.entry(uri.to_owned()).or_default() += n;
    }
    per_uri
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_listeners_behind_nginx() {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} missing: run scripts/packages.sh test"
    );
    raise_nofile();
    let server = ServerProc::start("edge-origin", &[]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "edge").await;
    let mut speaker = speak(
        &format!("{base}/api/spaces/{id}/whip"),
        &host,
        440,
        LISTEN.as_secs() as u32 + 15,
        &server.data_dir.join("speaker.wav"),
    );
    wait_speakers(&base, 1).await;

    let origin = base.trim_start_matches("http://").to_owned();
    let (mut nginx, edge) = start_edge(&origin);
    let live = format!("{edge}/spaces/{id}/hls/live.m3u8");
    assert!(
        eventually(Duration::from_secs(10), async || {
            reqwest::get(&live)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await,
        "the edge serves the playlist"
    );
    // A segment or two in the playlist before the crowd arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // One client, one connection pool, for all the listeners.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(LISTENERS);
    for _ in 0..LISTENERS {
        let client = client.clone();
        let opts = Options::new(live.clone(), LISTEN);
        tasks.push(tokio::spawn(async move {
            hls::run(&client, opts, std::future::pending()).await
        }));
        // Arrivals spread over a second rather than one SYN burst.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut reports: Vec<Report> = Vec::with_capacity(LISTENERS);
    for t in tasks {
        reports.push(t.await.expect("listener task"));
    }
    let took = t0.elapsed();
    // Close the pool's idle connections so nginx stops cleanly.
    drop(client);
    assert!(
        took < LISTEN + Duration::from_secs(5),
        "bounded by duration: {took:?}"
    );

    // Let the access log's buffer flush (flush=1s), stop the edge, read what reached the origin.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nginx.stop();
    // The speaker outlives the listeners by design; end it now.
    let _ = speaker.kill();
    let _ = speaker.wait();
    let log = nginx.access_log();
    let fetches = origin_fetches(&log);
    let edge_requests = log.lines().count() as u64;

    // Listener outcomes.
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in &reports {
        for (k, n) in &r.errors {
            *errors.entry(k.clone()).or_default() += n;
        }
    }
    let min_parts = reports.iter().map(|r| r.parts).min().unwrap_or(0);
    let min_segments = reports.iter().map(|r| r.segments).min().unwrap_or(0);
    let blocking = sum(|r| r.blocking_reloads);
    eprintln!(
        "{LISTENERS} listeners for {LISTEN:?}: playlists {} (blocking {blocking}), parts {} \
         (min {min_parts}), segments {} (min {min_segments}), bytes {}, msn gaps {}, invalid \
         playlists {}, errors {errors:?}; edge requests {edge_requests}",
        sum(|r| r.playlists),
        sum(|r| r.parts),
        sum(|r| r.segments),
        sum(|r| r.bytes),
        sum(|r| r.msn_gaps),
        sum(|r| r.invalid_playlists),
    );

    // What the origin served.
    let kind = |uri: &str| {
        if uri.contains("/hls/part/") {
            "part"
        } else if uri.contains("/hls/seg/") {
            "segment"
        } else if uri.contains("live.m3u8?") && uri.contains("_HLS_msn=") {
            "blocking reload"
        } else if uri.contains("live.m3u8") {
            "live.m3u8"
        } else {
            "other"
        }
    };
    let mut by_kind: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new(); // (urls, fetches, max)
    for (uri, n) in &fetches {
        let e = by_kind.entry(kind(uri)).or_default();
        e.0 += 1;
        e.1 += n;
        e.2 = e.2.max(*n);
    }
    eprintln!("origin fetches by kind (urls, fetches, max per url): {by_kind:?}");
    let worst: Vec<_> = fetches
        .iter()
        .filter(|(uri, n)| matches!(kind(uri), "part" | "segment") && **n > MAX_ORIGIN_FETCHES)
        .collect();

    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.msn_gaps, 0, "listener {i}: {r:?}");
        assert_eq!(r.invalid_playlists, 0, "listener {i}: {r:?}");
        // 30 s of 400 ms parts and 2 s segments, less the edges of the window.
        assert!(
            r.parts >= 60 && r.segments >= 12,
            "listener {i} kept up: {r:?}"
        );
        let (first, last) = (r.first_msn.unwrap(), r.last_msn.unwrap());
        assert!(
            r.segments >= last - first - 1,
            "listener {i} got every segment of msn {first}..={last}: {r:?}"
        );
    }
    assert!(
        worst.is_empty(),
        "parts/segments fetched from the origin more than {MAX_ORIGIN_FETCHES} times: {worst:?}"
    );
    let parts = by_kind.get("part").copied().unwrap_or_default();
    let segments = by_kind.get("segment").copied().unwrap_or_default();
    assert!(parts.0 >= 60 && segments.0 >= 12, "{by_kind:?}");
    let reloads = by_kind.get("blocking reload").copied().unwrap_or_default();
    assert!(
        reloads.1 * 50 <= blocking,
        "blocking reloads reaching the origin ({}) are a small fraction of the listeners' \
         ({blocking})",
        reloads.1
    );
    assert!(
        reloads.2 <= MAX_ORIGIN_FETCHES,
        "a blocking-reload URL reached the origin {} times",
        reloads.2
    );
    let total_errors: u64 = errors.values().sum();
    assert!(total_errors <= LISTENERS as u64 / 10, "errors: {errors:?}");
    // Passed: the edge's cache and logs go (kept on failure for a look).
    let _ = std::fs::remove_dir_all(&nginx.prefix);
}
