//! A crowd of simulated LL-HLS listeners (`tribune_client::hls`) through an HTTP edge in front
//! of a `tribune serve` origin, and what must hold afterwards whatever the edge (nginx, Varnish):
//! every listener followed the live edge without a gap or an invalid playlist, and the origin
//! served each part and segment at most [`MAX_ORIGIN_FETCHES`] times, not once per listener.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use tribune_client::hls::{self, Options, Report};

use super::*;

pub const LISTENERS: usize = 500;
pub const LISTEN: Duration = Duration::from_secs(30);
/// Origin fetches allowed per part or segment URL, whichever the number of listeners.
pub const MAX_ORIGIN_FETCHES: u64 = 3;

/// The hard limit on open files (what an edge's workers may raise theirs to).
pub fn nofile_limit() -> u64 {
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
pub fn raise_nofile() {
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

/// An origin with a live space and a 440 Hz speaker that outlives the crowd.
pub async fn origin_with_speaker(name: &str) -> (ServerProc, String, Child) {
    raise_nofile();
    let server = ServerProc::start(name, &[]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, name).await;
    let speaker = speak(
        &format!("{base}/api/spaces/{id}/whip"),
        &host,
        440,
        LISTEN.as_secs() as u32 + 15,
        &server.data_dir.join("speaker.wav"),
    );
    wait_speakers(&base, 1).await;
    (server, id, speaker)
}

/// Waits until the edge serves `live` (the playlist URL through it), then a few seconds more so
/// that a segment or two are listed before the crowd arrives.
pub async fn wait_edge(live: &str) {
    assert!(
        eventually(Duration::from_secs(10), async || {
            reqwest::get(live)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await,
        "the edge serves the playlist"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// [`LISTENERS`] listeners follow `live` for [`LISTEN`], arriving over about a second.
pub async fn run_crowd(live: &str) -> Vec<Report> {
    // One client, one connection pool, for all the listeners.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(LISTENERS);
    for _ in 0..LISTENERS {
        let client = client.clone();
        let opts = Options::new(live.to_owned(), LISTEN);
        tasks.push(tokio::spawn(async move {
            hls::run(&client, opts, std::future::pending()).await
        }));
        // Arrivals spread over a second rather than one SYN burst.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut reports = Vec::with_capacity(LISTENERS);
    for t in tasks {
        reports.push(t.await.expect("listener task"));
    }
    let took = t0.elapsed();
    assert!(
        took < LISTEN + Duration::from_secs(5),
        "bounded by duration: {took:?}"
    );
    reports
}

/// What the listeners got and what reached the origin (`fetches`: origin requests per request
/// URI, from the edge's own log) are what an edge must give; `edge` names it in messages.
pub fn assert_crowd(edge: &str, reports: &[Report], fetches: &BTreeMap<String, u64>) {
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in reports {
        for (k, n) in &r.errors {
            *errors.entry(k.clone()).or_default() += n;
        }
    }
    let min_parts = reports.iter().map(|r| r.parts).min().unwrap_or(0);
    let min_segments = reports.iter().map(|r| r.segments).min().unwrap_or(0);
    let blocking = sum(|r| r.blocking_reloads);
    eprintln!(
        "{edge}: {LISTENERS} listeners for {LISTEN:?}: playlists {} (blocking {blocking}), parts \
         {} (min {min_parts}), segments {} (min {min_segments}), bytes {}, msn gaps {}, invalid \
         playlists {}, errors {errors:?}",
        sum(|r| r.playlists),
        sum(|r| r.parts),
        sum(|r| r.segments),
        sum(|r| r.bytes),
        sum(|r| r.msn_gaps),
        sum(|r| r.invalid_playlists),
    );
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
    for (uri, n) in fetches {
        let e = by_kind.entry(kind(uri)).or_default();
        e.0 += 1;
        e.1 += n;
        e.2 = e.2.max(*n);
    }
    eprintln!("{edge}: origin fetches by kind (urls, fetches, max per url): {by_kind:?}");
    let worst: Vec<_> = fetches
        .iter()
        .filter(|(uri, n)| matches!(kind(uri), "part" | "segment") && **n > MAX_ORIGIN_FETCHES)
        .collect();

    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.msn_gaps, 0, "{edge}: listener {i}: {r:?}");
        assert_eq!(r.invalid_playlists, 0, "{edge}: listener {i}: {r:?}");
        // 30 s of 400 ms parts and 2 s segments, less the edges of the window.
        assert!(
            r.parts >= 60 && r.segments >= 12,
            "{edge}: listener {i} kept up: {r:?}"
        );
        let (first, last) = (r.first_msn.unwrap_or(0), r.last_msn.unwrap_or(0));
        assert!(
            r.segments >= last.saturating_sub(first + 1),
            "{edge}: listener {i} got every segment of msn {first}..={last}: {r:?}"
        );
    }
    assert!(
        worst.is_empty(),
        "{edge}: parts/segments fetched from the origin more than {MAX_ORIGIN_FETCHES} times: \
         {worst:?}"
    );
    let parts = by_kind.get("part").copied().unwrap_or_default();
    let segments = by_kind.get("segment").copied().unwrap_or_default();
    assert!(parts.0 >= 60 && segments.0 >= 12, "{edge}: {by_kind:?}");
    let reloads = by_kind.get("blocking reload").copied().unwrap_or_default();
    assert!(
        reloads.1 * 50 <= blocking,
        "{edge}: blocking reloads reaching the origin ({}) are a small fraction of the \
         listeners' ({blocking})",
        reloads.1
    );
    assert!(
        reloads.2 <= MAX_ORIGIN_FETCHES,
        "{edge}: a blocking-reload URL reached the origin {} times",
        reloads.2
    );
    let total_errors: u64 = errors.values().sum();
    assert!(
        total_errors <= LISTENERS as u64 / 10,
        "{edge}: errors: {errors:?}"
    );
}
