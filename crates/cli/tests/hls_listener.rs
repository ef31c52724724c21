//! `tribune_client::hls`, the simulated HLS listener, against a real origin: low-latency mode
//! (blocking reloads, parts, segments), plain segment polling, and cancellation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tribune_client::hls::{self, Options, Report};

fn assert_clean(r: &Report) {
    assert_eq!(r.msn_gaps, 0, "{r:?}");
    assert_eq!(r.invalid_playlists, 0, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_listener_follows_the_live_edge() {
    let server = ServerProc::start("hls-listener", &[]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "hls listener").await;
    let speaker = speak(
        &format!("{base}/api/spaces/{id}/whip"),
        &host,
        440,
        12,
        &server.data_dir.join("a.wav"),
    );
    wait_speakers(&base, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let url = format!("{base}/spaces/{id}/hls/live.m3u8");
    let client = reqwest::Client::new();

    let ll = hls::run(
        &client,
        Options::new(&url, Duration::from_secs(6)),
        std::future::pending(),
    );
    let polling = hls::run(
        &client,
        Options {
            low_latency: false,
            ..Options::new(&url, Duration::from_secs(6))
        },
        std::future::pending(),
    );
    let no_segments = hls::run(
        &client,
        Options {
            fetch_segments: false,
            ..Options::new(&url, Duration::from_secs(3))
        },
        std::future::pending(),
    );
    // Cancelled after one second, long before its duration.
    let t0 = Instant::now();
    let cancelled = hls::run(
        &client,
        Options::new(&url, Duration::from_secs(60)),
        tokio::time::sleep(Duration::from_secs(1)),
    );
    let (ll, polling, no_segments, cancelled) = tokio::join!(ll, polling, no_segments, cancelled);
    assert!(t0.elapsed() < Duration::from_secs(8), "bounded");

    // 400 ms parts, 2 s segments: 6 s is ~15 parts and 2–3 whole segments.
    assert_clean(&ll);
    assert!(ll.parts >= 10 && ll.blocking_reloads >= 10, "{ll:?}");
    assert!(ll.segments >= 2, "{ll:?}");
    let (first, last) = (ll.first_msn.unwrap(), ll.last_msn.unwrap());
    assert!(last >= first + 2, "{ll:?}");

    assert_clean(&polling);
    assert_eq!(
        (polling.parts, polling.blocking_reloads),
        (0, 0),
        "{polling:?}"
    );
    assert!(
        polling.segments >= 2 && polling.playlists >= 3,
        "{polling:?}"
    );

    assert_clean(&no_segments);
    assert!(
        no_segments.parts >= 4 && no_segments.segments == 0,
        "{no_segments:?}"
    );

    assert_clean(&cancelled);
    assert!(cancelled.parts <= 5, "{cancelled:?}");

    // A listener of a dead URL reports the failure instead of hanging.
    let gone = hls::run(
        &client,
        Options::new(
            format!("{base}/spaces/nosuchspace/hls/live.m3u8"),
            Duration::from_secs(1),
        ),
        std::future::pending(),
    )
    .await;
    assert!(
        gone.errors.get("status 404").copied().unwrap_or(0) >= 1,
        "{gone:?}"
    );
    assert_eq!(gone.parts, 0);

    wait_ok(speaker, "speaker");
}
