//! 2,000 simulated listeners of the web page through one Varnish edge cost the origin what 500
//! do (2,000 is what one edge carries on this test's 2-core machine, where the pages, the edge
//! and the origin share the cores: `tribune-bench page-listeners` measures 1,000 to 15,000). Each is `tribune_client::page`: the page's own anonymous request pattern (the shell, the
//! app's files, the public snapshot, LL-HLS with its in-band metadata, the sampled count beacon),
//! from its own loopback address (HTTP/1.1: the blocking reload and the part it waits for on two
//! connections, as a browser's player holds them).
//!
//! 500 pages open and play for 60 s, then 1,500 more join them for 60 s. Over the last 30 s of
//! each phase: the requests that reached the origin (Varnish's own backend log) other than count
//! beacons are as many a second with 5,000 as with 500, the beacons stay within the sampling's
//! bound (about 3,000 sampled pages per 30 s, whatever the audience), and the origin's memory
//! does not grow with the audience. Every page got the shell, the app, a snapshot, audio and
//! in-band metadata; the count the origin shows is within the sampling's stated accuracy of the
//! real audience; no join, event stream, presence beacon, token or reaction reached the origin.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::crowd::{raise_nofile, wait_edge};
use common::varnish::rss_kib;
use common::*;
use serde_json::Value;
use tribune_client::page::{self, Jitter, Report};

const FIRST: usize = 500;
const ALL: usize = 2000;
const PHASE: Duration = Duration::from_secs(60);
/// The measured window: the last half of each phase (the count has settled: every sampled page
/// has beaconed at least once).
const WINDOW: Duration = Duration::from_secs(30);
/// The sampling's target (`crates/room/src/viewers.rs` `TARGET_SAMPLE`) and interval.
const TARGET_SAMPLE: f64 = 3000.0;
const BEACON_INTERVAL_S: f64 = 30.0;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The origin's own counts, from one scrape: (HTTP requests, count beacon requests among them).
async fn origin_counts(base: &str) -> (f64, f64) {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        page::client_from(std::net::Ipv4Addr::LOCALHOST.into()).expect("metrics client")
    });
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("metric {name} missing"))
    };
    (
        get("tribune_http_requests_total"),
        get("tribune_beacon_requests_total"),
    )
}

/// Pages `range`, the `i`th from 127.1.(i / 250).(i % 250 + 1), arriving evenly over `ramp`
/// (on absolute times, so a busy runtime catches up rather than stretching the ramp), each
/// staying until `end`.
async fn open_pages(
    edge: &reqwest::Url,
    id: &str,
    range: std::ops::Range<usize>,
    ramp: Duration,
    end: tokio::time::Instant,
    ids: &mut Jitter,
) -> Vec<tokio::task::JoinHandle<Report>> {
    let gap = ramp / range.len().max(1) as u32;
    let mut tasks = Vec::with_capacity(range.len());
    let start = tokio::time::Instant::now();
    for (n, i) in range.enumerate() {
        let ip = std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
        let client = page::client_from(ip.into()).expect("client");
        let opts = page::Options {
            base: edge.clone(),
            space: id.to_owned(),
            duration: end.saturating_duration_since(tokio::time::Instant::now()),
            viewer: ids.viewer(),
            playing: true,
            request_timeout: Duration::from_secs(15),
        };
        tasks.push(tokio::spawn(async move {
            page::run(&client, opts, std::future::pending()).await
        }));
        tokio::time::sleep_until(start + gap * (n as u32 + 1)).await;
    }
    tasks
}

async fn snapshot(base: &str, id: &str) -> Value {
    reqwest::get(format!("{base}/spaces/{id}/snapshot.json"))
        .await
        .expect("snapshot")
        .json()
        .await
        .expect("snapshot json")
}

/// The count's stated accuracy (README, "Counting without a per-listener cost"): binomial
/// sampling at p = 2^-k plus HyperLogLog's 0.8 %, as one relative standard error.
fn relative_error(n: f64, k: u32) -> f64 {
    let p = 0.5f64.powi(k as i32);
    ((1.0 - p) / (n * p) + 0.008f64.powi(2)).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_page_listeners_cost_the_origin_what_five_hundred_do() {
    raise_nofile();
    let server = ServerProc::start("page-crowd", &["--trusted-proxy", "127.0.0.1"]);
    let base = server.base.clone();
    let origin_pid = server.child.id();
    let (id, host) = create_space(&base, "page crowd").await;
    let mut speaker = speak(
        &format!("{base}/api/spaces/{id}/whip"),
        &host,
        440,
        (2 * PHASE.as_secs() + 40) as u32,
        &server.data_dir.join("speaker.wav"),
    );
    wait_speakers(&base, 1).await;
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("origin port");
    // Enough worker threads for thousands of requests released at once when a part appears.
    let varnish = common::varnish::start(
        port,
        &["-p", "thread_pool_min=200", "-p", "thread_pool_max=5000"],
    )
    .await;
    let edge = format!("http://127.0.0.1:{}", varnish.port);
    wait_edge(&format!("{edge}/spaces/{id}/hls/live.m3u8")).await;
    let edge_url = reqwest::Url::parse(&format!("{edge}/")).expect("edge url");
    let counters = ["tribune_joins_total", "tribune_presence_total"];
    let mut before = Vec::new();
    for c in counters {
        before.push(metric(&base, c).await);
    }

    let mut ids = Jitter::new(0x7269_6275_6e65);
    let t0 = tokio::time::Instant::now();
    let t1 = t0 + PHASE;
    let end = t1 + PHASE;
    let mut tasks = open_pages(
        &edge_url,
        &id,
        0..FIRST,
        Duration::from_secs(5),
        end,
        &mut ids,
    )
    .await;
    tokio::time::sleep_until(t0 + PHASE - WINDOW).await;
    let a_from = (unix_now(), origin_counts(&base).await);
    tokio::time::sleep_until(t0 + PHASE).await;
    let a_to = (unix_now(), origin_counts(&base).await);
    let a_rss = rss_kib(origin_pid);
    let a_snap = snapshot(&base, &id).await;

    tasks.extend(
        open_pages(
            &edge_url,
            &id,
            FIRST..ALL,
            Duration::from_secs(15),
            end,
            &mut ids,
        )
        .await,
    );
    eprintln!(
        "{ALL} pages open {:?} after the second crowd began to arrive (15 s planned)",
        t1.elapsed()
    );
    tokio::time::sleep_until(t1 + PHASE - WINDOW).await;
    let b_from = (unix_now(), origin_counts(&base).await);
    let b_early = snapshot(&base, &id).await["listeners"]
        .as_u64()
        .unwrap_or(0) as f64;
    tokio::time::sleep_until(t1 + PHASE).await;
    let b_to = (unix_now(), origin_counts(&base).await);
    let b_rss = rss_kib(origin_pid);
    let b_snap = snapshot(&base, &id).await;

    let mut reports = Vec::with_capacity(ALL);
    for t in tasks {
        reports.push(t.await.expect("page task"));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = varnish.backend_requests();
    drop(varnish);
    let _ = speaker.kill();
    let _ = speaker.wait();

    // What reached the origin, by its own counters.
    let rate = |from: &(u64, (f64, f64)), to: &(u64, (f64, f64))| {
        let secs = (to.0 - from.0).max(1) as f64;
        let beacons = (to.1.1 - from.1.1) / secs;
        ((to.1.0 - from.1.0) / secs - beacons, beacons)
    };
    let (a_other_s, a_beacons_s) = rate(&a_from, &a_to);
    let (b_other_s, b_beacons_s) = rate(&b_from, &b_to);
    eprintln!(
        "origin, {FIRST} pages: {a_other_s:.1} req/s + {a_beacons_s:.1} beacons/s, RSS {a_rss} KiB; \
         {ALL} pages: {b_other_s:.1} req/s + {b_beacons_s:.1} beacons/s, RSS {b_rss} KiB"
    );
    for (name, from, to) in [("500", a_from.0, a_to.0), ("2000", b_from.0, b_to.0)] {
        let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
        for (_, u) in log.iter().filter(|(t, _)| (from..to).contains(t)) {
            let k = u.split('?').next().unwrap_or(u);
            let k = k.rsplit('/').next().unwrap_or(k);
            let k = if k.ends_with(".m4s") { "part/seg" } else { k };
            *kinds.entry(k.to_owned()).or_default() += 1;
        }
        eprintln!("edge's log of origin requests with {name} pages, by name: {kinds:?}");
    }
    let forbidden: Vec<&String> = log
        .iter()
        .map(|(_, u)| u)
        .filter(|u| {
            ["/join", "/events", "/presence", "/token", "/reactions"]
                .iter()
                .any(|p| u.contains(p))
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "no join, event stream, presence, token or reaction reaches the origin: {:?}",
        &forbidden[..forbidden.len().min(5)]
    );
    for (c, b) in counters.iter().zip(&before) {
        assert_eq!(metric(&base, c).await, *b, "{c} unchanged by the pages");
    }
    // Four times the audience: a per-listener cost would be four times the requests. What may
    // grow is bounded per edge, not per listener: the snapshot (max-age=1: about one a second),
    // the shell (max-age=5), and blocking-reload URLs of pages a little behind the live edge.
    assert!(
        b_other_s <= a_other_s * 2.0 + 3.0,
        "origin requests other than beacons are flat in the audience: {a_other_s:.1}/s with \
         {FIRST} pages, {b_other_s:.1}/s with {ALL}"
    );
    let beacon_bound = TARGET_SAMPLE * 1.25 / (0.9 * BEACON_INTERVAL_S);
    assert!(
        b_beacons_s <= beacon_bound,
        "count beacons stay within the sampling's bound: {b_beacons_s:.1}/s > {beacon_bound:.0}/s"
    );
    // Per-listener state at the origin would be tens of KiB each (a join and an event stream
    // cost 35–54 KiB): 1,500 more pages would add ~50 MiB. Allow 16 MiB of allocator noise.
    assert!(
        b_rss <= a_rss + 16 * 1024,
        "origin memory is flat in the audience: {a_rss} KiB with {FIRST} pages, {b_rss} KiB with {ALL}"
    );

    // Every page got what a listener sees and hears.
    let mut short: Vec<(usize, &Report)> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let ok = r.shell
            && r.assets >= 10
            && r.snapshots >= 1
            && r.hls.parts >= 10
            && r.meta_parts >= 5
            && r.count.is_some();
        if !ok {
            short.push((i, r));
        }
    }
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let min_parts = reports.iter().map(|r| r.hls.parts).min().unwrap_or(0);
    let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
    for r in &reports {
        for (k, n) in r.hls.errors.iter().chain(&r.errors) {
            *errors.entry(k.clone()).or_default() += n;
        }
    }
    let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
    for r in &reports {
        for (k, n) in &r.beacon_statuses {
            *statuses.entry(*k).or_default() += n;
        }
    }
    let refusals: Vec<String> = scrape(&base)
        .await
        .lines()
        .filter(|l| l.starts_with("tribune_refusals") && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect();
    eprintln!("beacon answers by status: {statuses:?}; origin refusals: {refusals:?}");
    eprintln!(
        "pages: {} stopped on an ended playlist; errors {errors:?}",
        reports.iter().filter(|r| r.hls.ended).count()
    );
    eprintln!(
        "pages: assets {}, snapshots {}, parts {} (min {min_parts}), parts with metadata {}, \
         beacons {} (+{} refused), hls errors {}, msn gaps {}",
        sum(|r| r.assets),
        sum(|r| r.snapshots),
        sum(|r| r.hls.parts),
        sum(|r| r.meta_parts),
        sum(|r| r.beacons),
        sum(|r| r.beacons_refused),
        sum(|r| r.hls.error_count()),
        sum(|r| r.hls.msn_gaps),
    );
    assert!(
        short.is_empty(),
        "{} pages did not get the page, a snapshot, audio (4 s at least) and metadata; first: {:?}",
        short.len(),
        short.first()
    );

    // The count, as the origin shows it and as the pages last saw it.
    for (n, snap) in [(FIRST, &a_snap), (ALL, &b_snap)] {
        let shown = snap["listeners"].as_u64().expect("listeners") as f64;
        let k = snap["count"]["sample_log2"].as_u64().unwrap_or(0) as u32;
        let tolerance = 4.0 * relative_error(n as f64, k) * n as f64 + 2.0;
        eprintln!("count with {n} pages: {shown} (k = {k}, allowed ±{tolerance:.0})");
        assert!(
            (shown - n as f64).abs() <= tolerance,
            "the count ({shown}) is within the stated accuracy of {n} (±{tolerance:.0})"
        );
    }
    // The pages show the count in-band, timed with what they hear: a page a little behind the
    // live edge shows the count of a moment ago (during the ramp, lower). Those at the live
    // edge show the origin's.
    let mut seen: Vec<u64> = reports.iter().filter_map(|r| r.count).collect();
    seen.sort_unstable();
    let (median, newest) = (seen[seen.len() / 2], seen[seen.len() - 1] as f64);
    let k = b_snap["count"]["sample_log2"].as_u64().unwrap_or(0) as u32;
    let tolerance = 4.0 * relative_error(ALL as f64, k) * ALL as f64 + 2.0;
    eprintln!(
        "count the pages showed at the end: median {median}, highest {newest} (the origin's \
         {} s before the end: {b_early})",
        WINDOW.as_secs()
    );
    assert!(
        newest >= b_early - tolerance && newest <= ALL as f64 + tolerance,
        "the pages nearest the live edge showed a count ({newest}) at least the origin's of \
         {} s before ({b_early}) and within ±{tolerance:.0} of {ALL}",
        WINDOW.as_secs()
    );
}
