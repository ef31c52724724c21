//! `edge-latency`: what an HTTP edge adds to LL-HLS delivery, nginx against Varnish in one run.
//!
//! One origin (`tribune serve`) with a tone speaker and, in front of it at the same time, nginx
//! with `deploy/nginx/edge.conf` and Varnish with `deploy/varnish/edge.vcl`. A reference
//! listener follows the live edge at the origin itself; `--listeners` listeners follow it through
//! each edge. All are `tribune_client::hls` in low-latency mode (the hinted part and the
//! blocking reload for it, in parallel, as hls.js does), in this one process, on one monotonic
//! clock, and each notes when every part and playlist arrived.
//!
//! The latency an edge adds to an object, for one listener, is its arrival through the edge less
//! its arrival at the reference listener, which waited for it at the origin: for parts
//! (`part/{msn}.{i}.m4s`) and blocking reloads (`live.m3u8?_HLS_msn=…&_HLS_part=…`). The first
//! `--warmup` seconds (listeners catching up with the live edge) are left out. Everything runs
//! on loopback; both edges share the machine with the origin and the listeners, so the figures
//! include the same scheduling noise for both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use tribune_client::hls::{self, Arrival, Options};

use crate::harness::{Guard, SETUP_LIMIT, Server};
use crate::report::{f, json};
use crate::varnish::{Varnish, free_port};

/// Arguments of `edge-latency`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// The nginx binary.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx_bin: PathBuf,
    /// The varnishd binary.
    #[arg(long, default_value = "/usr/sbin/varnishd")]
    varnishd_bin: PathBuf,
    /// Where `nginx/edge.conf` and `varnish/edge.vcl` are.
    #[arg(long, default_value = "deploy")]
    deploy_dir: PathBuf,
    /// Listeners through each edge.
    #[arg(long, default_value_t = 100)]
    listeners: usize,
    /// How long everyone listens, seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds left out at the start.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A distribution of edge-added latencies, milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Objects that arrived more than 100 ms after the reference listener got them.
    pub over_100ms: usize,
}

impl Spread {
    fn of(mut ms: Vec<f64>) -> Spread {
        if ms.is_empty() {
            return Spread::default();
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Spread {
            count: ms.len(),
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            max_ms: ms[ms.len() - 1],
            over_100ms: ms.iter().filter(|&&x| x > 100.0).count(),
        }
    }
}

/// One edge's figures.
#[derive(Debug, Serialize)]
pub struct Edge {
    pub name: String,
    pub listeners: usize,
    pub parts: Spread,
    pub blocking_reloads: Spread,
    /// Media-sequence gaps and request errors its listeners saw.
    pub msn_gaps: u64,
    pub errors: u64,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub seconds: u64,
    pub warmup_s: u64,
    pub nginx_version: String,
    pub varnish_version: String,
    pub edges: Vec<Edge>,
}

/// When each object reached one listener (first arrival), keyed `m:URI` or `p:QUERY`.
type Arrivals = Mutex<HashMap<String, Duration>>;

fn note(arrivals: &Arrivals, t0: Instant, a: Arrival<'_>) {
    let key = match a {
        Arrival::Media { uri, .. } if uri.contains("part/") => format!("m:{uri}"),
        Arrival::Playlist { query: Some(q) } if q.contains("_HLS_msn=") => format!("p:{q}"),
        _ => return,
    };
    if let Ok(mut m) = arrivals.lock() {
        m.entry(key).or_insert_with(|| t0.elapsed());
    }
}

/// The first line a program prints of its version (on stdout or stderr).
fn version(bin: &Path, flag: &str) -> String {
    Command::new(bin)
        .arg(flag)
        .output()
        .ok()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

/// nginx with the edge configuration in front of `origin` (`host:port`), in `dir`.
fn start_nginx(args: &Args, origin: &str, dir: &Path) -> Result<(Guard, u16)> {
    let port = free_port()?;
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache)?;
    let conf = std::fs::read_to_string(args.deploy_dir.join("nginx/edge.conf"))
        .context("deploy/nginx/edge.conf (run from the repository root, or --deploy-dir)")?
        .replace("@USER@", "root")
        .replace("@PORT@", &format!("127.0.0.1:{port}"))
        .replace("@ORIGIN@", origin)
        .replace("@CACHE@", &cache.to_string_lossy())
        .replace("@PREFIX@", &dir.to_string_lossy());
    let child = tribune_load::nginx::spawn(&args.nginx_bin, dir, &conf)?;
    Ok((Guard::new(child), port))
}

/// Waits until `url` answers 200.
async fn wait_up(client: &reqwest::Client, url: &str) -> Result<()> {
    let end = Instant::now() + SETUP_LIMIT;
    while Instant::now() < end {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("{url} did not answer within {SETUP_LIMIT:?}")
}

/// One listener following `url` until `length` is over; its arrivals and report.
async fn listen(
    client: reqwest::Client,
    url: String,
    length: Duration,
    t0: Instant,
) -> (HashMap<String, Duration>, hls::Report) {
    let arrivals = Arrivals::default();
    let mut opts = Options::new(url, length);
    opts.fetch_segments = false;
    let report = hls::run_observed(
        &client,
        opts,
        &|a| note(&arrivals, t0, a),
        std::future::pending(),
    )
    .await;
    (arrivals.into_inner().unwrap_or_default(), report)
}

fn pool() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .build()?)
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(args.listeners > 0, "--listeners must be at least 1");
    ensure!(
        args.seconds > args.warmup,
        "--seconds must be longer than --warmup"
    );
    let server = Server::start(&args.server_bin, &[])?;
    let space = server.create_space("edge latency").await?;
    let _speaker = server.speak(&space, "tone", 440, args.seconds + 30).await?;
    server.wait_metric("tribune_speakers", 1.0).await?;

    let work = std::env::temp_dir().join(format!("tribune-edge-latency-{}", std::process::id()));
    let (nginx_dir, varnish_dir) = (work.join("nginx"), work.join("varnish"));
    std::fs::create_dir_all(&nginx_dir)?;
    std::fs::create_dir_all(&varnish_dir)?;
    let origin = format!("127.0.0.1:{}", server.http_addr.port());
    let (_nginx, nginx_port) = start_nginx(&args, &origin, &nginx_dir)?;
    let varnish = Varnish::start(
        &args.varnishd_bin,
        &args.deploy_dir,
        server.http_addr.port(),
        &varnish_dir,
        &[],
    )?;
    let varnish_port = varnish.port;
    let path = format!("/spaces/{}/hls/live.m3u8", space.id);
    let direct = format!("{}{path}", server.base);
    let edges = [
        ("nginx", format!("http://127.0.0.1:{nginx_port}{path}")),
        ("varnish", format!("http://127.0.0.1:{varnish_port}{path}")),
    ];
    let probe = pool()?;
    for url in std::iter::once(&direct).chain(edges.iter().map(|(_, u)| u)) {
        wait_up(&probe, url).await?;
    }
    // A segment or two listed before anyone starts.
    tokio::time::sleep(Duration::from_secs(3)).await;

    eprintln!(
        "edge-latency: {} listeners through each of nginx and Varnish, 1 at the origin, {} s",
        args.listeners, args.seconds
    );
    let t0 = Instant::now();
    let length = Duration::from_secs(args.seconds);
    let reference = tokio::spawn(listen(pool()?, direct.clone(), length, t0));
    let mut groups = Vec::new();
    for (name, url) in &edges {
        let client = pool()?;
        let mut tasks = Vec::with_capacity(args.listeners);
        for _ in 0..args.listeners {
            tasks.push(tokio::spawn(listen(
                client.clone(),
                url.clone(),
                length,
                t0,
            )));
        }
        groups.push((*name, tasks));
    }
    let (reference, _) = reference.await.context("reference listener")?;
    ensure!(
        !reference.is_empty(),
        "the reference listener got nothing from the origin"
    );
    let warmup = Duration::from_secs(args.warmup);
    let mut out = Vec::new();
    for (name, tasks) in groups {
        let (mut parts, mut reloads) = (Vec::new(), Vec::new());
        let (mut gaps, mut errors) = (0, 0);
        for t in tasks {
            let (arrivals, report) = t.await.context("edge listener")?;
            gaps += report.msn_gaps;
            errors += report.error_count();
            for (key, at) in arrivals {
                let Some(&first) = reference.get(&key) else {
                    continue;
                };
                if first < warmup {
                    continue;
                }
                let ms = (at.as_secs_f64() - first.as_secs_f64()) * 1000.0;
                if key.starts_with("m:") {
                    parts.push(ms);
                } else {
                    reloads.push(ms);
                }
            }
        }
        out.push(Edge {
            name: name.to_owned(),
            listeners: args.listeners,
            parts: Spread::of(parts),
            blocking_reloads: Spread::of(reloads),
            msn_gaps: gaps,
            errors,
        });
    }
    let report = Report {
        seconds: args.seconds,
        warmup_s: args.warmup,
        nginx_version: version(&args.nginx_bin, "-v"),
        varnish_version: version(&args.varnishd_bin, "-V"),
        edges: out,
    };
    println!(
        "{:<8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} | {:>7} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "edge",
        "parts",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        ">100ms",
        "reloads",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        ">100ms"
    );
    for e in &report.edges {
        let row = |s: &Spread| {
            format!(
                "{:>7} {:>8} {:>8} {:>8} {:>8} {:>7}",
                s.count,
                f(s.p50_ms, 1),
                f(s.p90_ms, 1),
                f(s.p99_ms, 1),
                f(s.max_ms, 1),
                s.over_100ms
            )
        };
        println!(
            "{:<8} {} | {}   (gaps {}, errors {})",
            e.name,
            row(&e.parts),
            row(&e.blocking_reloads),
            e.msn_gaps,
            e.errors
        );
    }
    json(args.json.as_deref(), &report)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_quantiles() {
        let s = Spread::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (s.count, s.p50_ms, s.p99_ms, s.max_ms),
            (100, 51.0, 99.0, 100.0)
        );
        assert_eq!(Spread::of(vec![]).count, 0);
        assert_eq!(Spread::of(vec![150.0, 5.0]).over_100ms, 1);
    }

    #[test]
    fn only_parts_and_blocking_reloads_are_noted() {
        let a = Arrivals::default();
        let t0 = Instant::now();
        note(
            &a,
            t0,
            Arrival::Media {
                uri: "part/3.1.m4s",
                bytes: 9,
                body: &[],
            },
        );
        note(
            &a,
            t0,
            Arrival::Media {
                uri: "seg/3.m4s",
                bytes: 9,
                body: &[],
            },
        );
        note(&a, t0, Arrival::Playlist { query: None });
        note(
            &a,
            t0,
            Arrival::Playlist {
                query: Some("_HLS_msn=3&_HLS_part=2"),
            },
        );
        let m = a.into_inner().unwrap();
        let mut keys: Vec<_> = m.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["m:part/3.1.m4s", "p:_HLS_msn=3&_HLS_part=2"]);
    }
}
