//! A real nginx edge (`deploy/nginx/edge.conf`, Debian's nginx) in front of a `tribune serve`
//! origin, with 500 simulated LL-HLS listeners going through it for 30 s: every listener follows
//! the live edge without a media-sequence gap or an invalid playlist, and the origin serves each
//! part and segment at most three times (counted from the edge's access log: a request with
//! `$upstream_addr` set went to the origin), not once per listener. The Varnish edge passes the
//! same checks in `edge_varnish.rs`.
//!
//! Needs `/usr/sbin/nginx` (`scripts/packages.sh test` installs it).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::crowd::*;
use common::*;

/// The edge: `deploy/nginx/edge.conf` in front of `origin`; returns it and its base URL.
fn start_edge(origin: &str) -> (Nginx, String) {
    let prefix = temp_dir("edge");
    let cache = prefix.join("cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    // Debian's default is fine for a real edge; here the hard limit may be lower.
    let nofile = format!("worker_rlimit_nofile {};", nofile_limit());
    let nginx = Nginx::start(
        "edge.conf",
        prefix,
        &[
            ("worker_rlimit_nofile 65536;", &nofile),
            ("@ORIGIN@", origin),
            ("@CACHE@", cache.to_str().expect("UTF-8 temp dir")),
        ],
    );
    let base = format!("http://127.0.0.1:{}", nginx.port);
    (nginx, base)
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
    let (server, id, mut speaker) = origin_with_speaker("edge-origin").await;
    let origin = server.base.trim_start_matches("http://").to_owned();
    let (mut nginx, edge) = start_edge(&origin);
    let live = format!("{edge}/spaces/{id}/hls/live.m3u8");
    wait_edge(&live).await;
    let reports = run_crowd(&live).await;

    // Let the access log's buffer flush (flush=1s), stop the edge, read what reached the origin.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nginx.stop();
    // The speaker outlives the listeners by design; end it now.
    let _ = speaker.kill();
    let _ = speaker.wait();
    let log = nginx.access_log();
    eprintln!("nginx: edge requests {}", log.lines().count());
    assert_crowd("nginx", &reports, &origin_fetches(&log));
    // Passed: the edge's cache and logs go (kept on failure for a look).
    let _ = std::fs::remove_dir_all(&nginx.prefix);
}
