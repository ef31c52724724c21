//! `page-listeners`: what listeners of the web page cost the origin and one Varnish edge, at
//! several audience sizes.
//!
//! For each size N: a fresh origin (`tribune serve`) with a tone speaker, a fresh Varnish with
//! `deploy/varnish/edge.vcl`, and N simulated pages
//! (`tribune_client::page`: the shell, the app's files, the snapshot, LL-HLS with its in-band
//! metadata, the sampled count beacon), each from its own loopback address,
//! arriving at `--arrivals-per-s` and staying `--seconds` after the last one arrived. Over the
//! last half of that: origin requests per second by kind (Varnish's own backend log), origin
//! and edge CPU and memory (`/proc`), the edge's memory per listener (above its idle size), the
//! count beacons per second, and the count the origin shows against N.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use tribune_client::page::{self, Jitter};

use crate::harness::{SETUP_LIMIT, Server};
use crate::procstat::{self, Sample};
use crate::report::{f, json};
use crate::varnish::Varnish;

/// Arguments of `page-listeners`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// The varnishd binary.
    #[arg(long, default_value = "/usr/sbin/varnishd")]
    varnishd_bin: PathBuf,
    /// Where `varnish/edge.vcl` is.
    #[arg(long, default_value = "deploy")]
    deploy_dir: PathBuf,
    /// Audience sizes, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1000, 5000, 15000])]
    listeners: Vec<usize>,
    /// How long the full audience stays, seconds (measured over the last half).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Page opens per second while the audience arrives.
    #[arg(long, default_value_t = 500)]
    arrivals_per_s: u64,
    /// Threads of the simulated pages' runtime.
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One audience size's figures.
#[derive(Debug, Serialize)]
pub struct Run {
    pub listeners: usize,
    pub window_s: u64,
    /// Pages that got the shell, a snapshot, audio and in-band metadata.
    pub pages_ok: usize,
    /// Parts a page fetched over its stay: median, and what real time allows.
    pub parts_per_page_p50: u64,
    pub parts_possible: u64,
    pub hls_errors: u64,
    pub msn_gaps: u64,
    /// Origin requests per second in the window, all but beacons, and by kind.
    pub origin_req_s: f64,
    pub origin_by_kind: BTreeMap<String, f64>,
    pub beacons_s: f64,
    pub origin_cpu_pct: f64,
    pub origin_rss_mib: f64,
    pub edge_cpu_pct: f64,
    pub edge_rss_mib: f64,
    pub edge_idle_rss_mib: f64,
    pub edge_kib_per_listener: f64,
    /// Edge CPU per listener: microseconds of CPU per second of listening.
    pub edge_cpu_us_per_listener_s: f64,
    pub count_shown: u64,
    pub count_error_pct: f64,
    pub sample_log2: u64,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub seconds: u64,
    pub arrivals_per_s: u64,
    pub runs: Vec<Run>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What an origin request was, from its URL.
fn kind(uri: &str) -> &'static str {
    if uri.ends_with("/beacon") {
        "beacon"
    } else if uri.contains("/hls/part/") {
        "part"
    } else if uri.contains("/hls/seg/") {
        "segment"
    } else if uri.contains("_HLS_msn=") {
        "blocking reload"
    } else if uri.contains(".m3u8") {
        "playlist"
    } else if uri.contains("/hls/") {
        "init"
    } else if uri.ends_with("/snapshot.json") {
        "snapshot"
    } else if uri.starts_with("/app/") {
        "app"
    } else if uri.starts_with("/spaces/") {
        "shell"
    } else {
        "other"
    }
}

fn cpu_pct(a: &Sample, b: &Sample) -> f64 {
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    (b.cpu.as_secs_f64() - a.cpu.as_secs_f64()) / wall * 100.0
}

async fn one(args: &Args, n: usize, ticks: u64) -> Result<Run> {
    let server = Server::start(
        &args.server_bin,
        &["--trusted-proxy".into(), "127.0.0.1".into()],
    )?;
    let space = server.create_space("page listeners").await?;
    let ramp = Duration::from_secs_f64(n as f64 / args.arrivals_per_s.max(1) as f64);
    let stay = ramp + Duration::from_secs(args.seconds);
    let _speaker = server
        .speak(&space, "tone", 440, stay.as_secs() + 30)
        .await?;
    server.wait_metric("tribune_speakers", 1.0).await?;
    let dir =
        std::env::temp_dir().join(format!("tribune-page-listeners-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut varnish = Varnish::start(
        &args.varnishd_bin,
        &args.deploy_dir,
        server.http_addr.port(),
        &dir,
        &["-p", "thread_pool_min=200", "-p", "thread_pool_max=5000"],
    )?;
    let edge = format!("http://127.0.0.1:{}/", varnish.port);
    let probe = reqwest::Client::new();
    let live = format!("{edge}spaces/{}/hls/live.m3u8", space.id);
    let up = tokio::time::Instant::now() + SETUP_LIMIT;
    while !probe
        .get(&live)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        ensure!(tokio::time::Instant::now() < up, "{live} did not answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    varnish.log_backend()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let edge_pid = varnish.worker_pid().context("varnish's cache process")?;
    let edge_idle = procstat::sample(edge_pid, ticks)?;

    eprintln!(
        "page-listeners: {n} pages arriving over {ramp:?}, then {} s",
        args.seconds
    );
    let base = reqwest::Url::parse(&edge)?;
    let t0 = tokio::time::Instant::now();
    let end = t0 + stay;
    let mut ids = Jitter::new(0x7061_6765 + n as u64);
    let gap = ramp / n.max(1) as u32;
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let ip = std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
        let client = page::client_from(ip.into())?;
        let opts = page::Options {
            base: base.clone(),
            space: space.id.clone(),
            duration: end.saturating_duration_since(tokio::time::Instant::now()),
            viewer: ids.viewer(),
            playing: true,
            request_timeout: Duration::from_secs(15),
        };
        tasks.push(tokio::spawn(async move {
            page::run(&client, opts, std::future::pending()).await
        }));
        tokio::time::sleep_until(t0 + gap * (i as u32 + 1)).await;
    }
    let window = Duration::from_secs(args.seconds / 2);
    tokio::time::sleep_until(end - window).await;
    let (from, o0, e0) = (
        unix_now(),
        procstat::sample(server.pid(), ticks)?,
        procstat::sample(edge_pid, ticks)?,
    );
    tokio::time::sleep_until(end).await;
    let (to, o1, e1) = (
        unix_now(),
        procstat::sample(server.pid(), ticks)?,
        procstat::sample(edge_pid, ticks)?,
    );
    // A fresh client: the probe's pooled connection may have been closed by the origin.
    let snap: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/spaces/{}/snapshot.json", server.base, space.id))
        .send()
        .await?
        .json()
        .await?;
    let mut reports = Vec::with_capacity(n);
    for t in tasks {
        reports.push(t.await.context("page task")?);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = varnish.backend_requests();
    drop(varnish);
    let _ = std::fs::remove_dir_all(&dir);

    let secs = (to - from).max(1) as f64;
    let mut by_kind: BTreeMap<String, f64> = BTreeMap::new();
    for (_, uri) in log.iter().filter(|(t, _)| (from..to).contains(t)) {
        *by_kind.entry(kind(uri).to_owned()).or_default() += 1.0 / secs;
    }
    let beacons_s = by_kind.remove("beacon").unwrap_or(0.0);
    let mut parts: Vec<u64> = reports.iter().map(|r| r.hls.parts).collect();
    parts.sort_unstable();
    let shown = snap["listeners"].as_u64().unwrap_or(0);
    let edge_rss = e1.rss_kib as f64;
    let run = Run {
        listeners: n,
        window_s: to - from,
        pages_ok: reports
            .iter()
            .filter(|r| r.shell && r.snapshots > 0 && r.hls.parts > 0 && r.meta_parts > 0)
            .count(),
        parts_per_page_p50: parts.get(parts.len() / 2).copied().unwrap_or(0),
        parts_possible: (args.seconds as f64 / 0.4) as u64,
        hls_errors: reports.iter().map(|r| r.hls.error_count()).sum(),
        msn_gaps: reports.iter().map(|r| r.hls.msn_gaps).sum(),
        origin_req_s: by_kind.values().sum(),
        origin_by_kind: by_kind,
        beacons_s,
        origin_cpu_pct: cpu_pct(&o0, &o1),
        origin_rss_mib: o1.rss_kib as f64 / 1024.0,
        edge_cpu_pct: cpu_pct(&e0, &e1),
        edge_rss_mib: edge_rss / 1024.0,
        edge_idle_rss_mib: edge_idle.rss_kib as f64 / 1024.0,
        edge_kib_per_listener: (edge_rss - edge_idle.rss_kib as f64) / n as f64,
        edge_cpu_us_per_listener_s: cpu_pct(&e0, &e1) / 100.0 * 1e6 / n as f64,
        count_shown: shown,
        count_error_pct: (shown as f64 - n as f64) / n as f64 * 100.0,
        sample_log2: snap["count"]["sample_log2"].as_u64().unwrap_or(0),
    };
    Ok(run)
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(!args.listeners.is_empty(), "--listeners names no size");
    ensure!(
        args.seconds >= 40,
        "--seconds must be at least 40 (the count settles in 30 s)"
    );
    let ticks = procstat::clock_ticks_per_second();
    let mut runs = Vec::new();
    for &n in &args.listeners {
        ensure!(
            (1..=60_000).contains(&n),
            "--listeners: 1 to 60,000 pages (one loopback address each)"
        );
        let r = one(&args, n, ticks).await?;
        eprintln!("page-listeners: {r:?}");
        runs.push(r);
    }
    println!(
        "{:>7} {:>8} {:>9} {:>10} {:>9} {:>8} {:>9} {:>8} {:>9} {:>10} {:>11} {:>7} {:>7}",
        "pages",
        "ok",
        "parts p50",
        "origin r/s",
        "beacons/s",
        "orig CPU",
        "orig MiB",
        "edge CPU",
        "edge MiB",
        "KiB/listnr",
        "µs CPU/l·s",
        "count",
        "error"
    );
    for r in &runs {
        println!(
            "{:>7} {:>8} {:>9} {:>10} {:>9} {:>7}% {:>9} {:>7}% {:>9} {:>10} {:>11} {:>7} {:>6}%",
            r.listeners,
            r.pages_ok,
            format!("{}/{}", r.parts_per_page_p50, r.parts_possible),
            f(r.origin_req_s, 1),
            f(r.beacons_s, 1),
            f(r.origin_cpu_pct, 1),
            f(r.origin_rss_mib, 1),
            f(r.edge_cpu_pct, 1),
            f(r.edge_rss_mib, 1),
            f(r.edge_kib_per_listener, 1),
            f(r.edge_cpu_us_per_listener_s, 1),
            r.count_shown,
            f(r.count_error_pct, 2),
        );
        println!("        origin requests/s by kind: {:?}", r.origin_by_kind);
    }
    json(
        args.json.as_deref(),
        &Report {
            seconds: args.seconds,
            arrivals_per_s: args.arrivals_per_s,
            runs,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_requests_by_kind() {
        assert_eq!(kind("/api/spaces/a/beacon"), "beacon");
        assert_eq!(kind("/spaces/a/hls/part/3.1.m4s"), "part");
        assert_eq!(kind("/spaces/a/hls/seg/3.m4s"), "segment");
        assert_eq!(
            kind("/spaces/a/hls/live.m3u8?_HLS_msn=3&_HLS_part=1"),
            "blocking reload"
        );
        assert_eq!(kind("/spaces/a/hls/index.m3u8"), "playlist");
        assert_eq!(kind("/spaces/a/hls/init.mp4"), "init");
        assert_eq!(kind("/spaces/a/snapshot.json"), "snapshot");
        assert_eq!(kind("/app/0123/app.js"), "app");
        assert_eq!(kind("/spaces/a"), "shell");
    }
}
