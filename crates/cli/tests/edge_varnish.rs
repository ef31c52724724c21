//! A real Varnish edge (`deploy/varnish/edge.vcl`, Debian's Varnish 7.1) in front of a `tribune
//! serve` origin: the same 500 simulated LL-HLS listeners for 30 s and the same checks as the
//! nginx edge (`edge.rs`): no gap, no invalid playlist, each part and segment fetched from the
//! origin at most three times. What reached the origin is Varnish's own backend log
//! (`varnishncsa -b`). The never-cached paths are checked too: the API, the Ogg stream and the
//! event stream reach the origin on every request.
//!
//! Needs `varnishd` and `varnishncsa` (`scripts/packages.sh test` installs Debian's `varnish`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::crowd::*;

/// Backend requests per request URI.
fn origin_fetches(log: &[(u64, String)]) -> BTreeMap<String, u64> {
    let mut per_uri = BTreeMap::new();
    for (_, uri) in log {
        *per_uri.entry(uri.clone()).or_default() += 1;
    }
    per_uri
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_listeners_behind_varnish() {
    let (server, id, mut speaker) = origin_with_speaker("varnish-origin").await;
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("origin port");
    let varnish = common::varnish::start(port, &[]).await;
    let edge = format!("http://127.0.0.1:{}", varnish.port);
    let live = format!("{edge}/spaces/{id}/hls/live.m3u8");
    wait_edge(&live).await;

    // Never cached: the API, the Ogg stream and the event stream reach the origin each time.
    let c = reqwest::Client::new();
    for _ in 0..3 {
        let r = c
            .get(format!("{edge}/api/spaces/{id}"))
            .send()
            .await
            .expect("GET space");
        assert_eq!(r.status(), 200);
        let mut ogg = c
            .get(format!("{edge}/spaces/{id}/live.opus"))
            .send()
            .await
            .expect("live.opus");
        assert_eq!(ogg.status(), 200);
        let first = tokio::time::timeout(Duration::from_secs(5), ogg.chunk())
            .await
            .expect("live.opus bytes in time")
            .expect("live.opus body");
        assert!(first.is_some_and(|b| b.starts_with(b"OggS")));
    }

    let reports = run_crowd(&live).await;
    // Let varnishncsa catch up with the log, read it, then stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fetches = origin_fetches(&varnish.backend_requests());
    let dir = varnish.dir().to_owned();
    drop(varnish);
    let _ = speaker.kill();
    let _ = speaker.wait();
    let api = fetches
        .get(&format!("/api/spaces/{id}"))
        .copied()
        .unwrap_or(0);
    assert!(api >= 3, "each API request reached the origin ({api} of 3)");
    assert_crowd("varnish", &reports, &fetches);
    let _ = std::fs::remove_dir_all(&dir);
}
