//! `late-ticks`: does a flood on the control plane delay the broadcast?
//!
//! One server, one space, two `tribune speak` tones. The mixer's tick counters are read over a
//! quiet window, then while C keep-alive connections send `GET /api/spaces` and `GET /healthz` as
//! fast as the server answers. The design promises that no amount of audience or API traffic
//! delays a mixer tick: late ticks during the flood should stay at the quiet level.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::harness::{Metrics, SETUP_LIMIT, Server};
use crate::net;
use crate::procstat::{self, Window};
use crate::report::{self, f};

/// Pause after a failed request before the connection is opened again.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Paths the hammer alternates between: the public listing and the health check.
const PATHS: [&str; 2] = ["/api/spaces", "/healthz"];

/// Arguments of `late-ticks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// Length of the flood, seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Concurrent keep-alive connections sending requests.
    #[arg(long, default_value_t = 1000)]
    hammer: usize,
    /// Length of the quiet window before the flood, seconds.
    #[arg(long, default_value_t = 5)]
    quiet_seconds: u64,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Mixer counters over one window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ticks {
    pub ticks: f64,
    pub late: f64,
    /// `tribune_mixer_tick_seconds_max_ns` at the end of the window (the longest tick so far).
    pub max_tick_ms_so_far: f64,
    pub server: Window,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub connections: usize,
    pub quiet: Ticks,
    pub flood: Ticks,
    pub requests_ok: u64,
    pub requests_per_second: f64,
    /// Responses by status other than 2xx.
    pub other_statuses: BTreeMap<u16, u64>,
    pub errors: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// Late ticks in each second of the flood (from a scrape of `/metrics` every second).
    pub late_per_second: Vec<f64>,
    /// `tribune_speakers` after the flood: both speakers should still be on.
    pub speakers_after: f64,
    pub client_cores: f64,
    pub first_error: Option<String>,
}

/// What one hammering connection saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    other: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    ensure!(
        args.hammer > 0 && args.seconds > 0,
        "--hammer and --seconds must be positive"
    );
    let server = Server::start(&args.server_bin, &[])?;
    let space = server.create_space("late-ticks").await?;
    let bound = SETUP_LIMIT.as_secs() + args.quiet_seconds + args.seconds + 30;
    let _a = server.speak(&space, "a", 440, bound).await?;
    let _b = server.speak(&space, "b", 660, bound).await?;
    server.wait_metric("tribune_speakers", 2.0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.pid();

    eprintln!("quiet: {} s", args.quiet_seconds);
    let before = server.metrics().await?;
    let window = procstat::watch(pid, Duration::from_secs(args.quiet_seconds), || {}).await?;
    let after_quiet = server.metrics().await?;
    let quiet = ticks(&before, &after_quiet, window)?;

    eprintln!("flood: {} connections for {} s", args.hammer, args.seconds);
    let tps = procstat::clock_ticks_per_second();
    let own_start = procstat::sample(std::process::id(), tps)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = JoinSet::new();
    for i in 0..args.hammer {
        tasks.spawn(hammer(i, server.http_addr, deadline));
    }
    let (window, late_per_second) = tokio::try_join!(
        procstat::watch(pid, Duration::from_secs(args.seconds), || {}),
        late_per_second(&server, &after_quiet, args.seconds),
    )?;
    let mut total = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        let t = tally.context("a hammer task panicked")?;
        total.ok += t.ok;
        total.errors += t.errors;
        for (status, n) in t.other {
            *total.other.entry(status).or_default() += n;
        }
        total.latencies_us.extend(t.latencies_us);
        total.first_error = total.first_error.or(t.first_error);
    }
    let own_end = procstat::sample(std::process::id(), tps)?;
    let after = server.metrics().await?;
    let flood = ticks(&after_quiet, &after, window)?;

    let lat = &mut total.latencies_us;
    lat.sort_unstable();
    let pct = |p: f64| match lat.len() {
        0 => 0.0,
        n => f64::from(lat[((n - 1) as f64 * p).round() as usize]) / 1000.0,
    };
    let report = Report {
        connections: args.hammer,
        quiet,
        flood,
        requests_ok: total.ok,
        requests_per_second: total.ok as f64 / window.wall_seconds,
        latency_ms_p50: pct(0.5),
        latency_ms_p99: pct(0.99),
        latency_ms_max: pct(1.0),
        other_statuses: total.other,
        errors: total.errors,
        late_per_second,
        speakers_after: after.get("tribune_speakers")?,
        client_cores: (own_end.cpu - own_start.cpu).as_secs_f64()
            / (own_end.at - own_start.at).as_secs_f64(),
        first_error: total.first_error,
    };
    print(&report);
    report::json(args.json.as_deref(), &report)
}

fn ticks(before: &Metrics, after: &Metrics, server: Window) -> Result<Ticks> {
    let delta = |name| -> Result<f64> { Ok(after.get(name)? - before.get(name)?) };
    Ok(Ticks {
        ticks: delta("tribune_mixer_ticks_total")?,
        late: delta("tribune_mixer_late_ticks_total")?,
        max_tick_ms_so_far: after.get("tribune_mixer_tick_seconds_max_ns")? / 1e6,
        server,
    })
}

/// Late ticks in each of `seconds` one-second intervals, counted from `start`.
async fn late_per_second(server: &Server, start: &Metrics, seconds: u64) -> Result<Vec<f64>> {
    const LATE: &str = "tribune_mixer_late_ticks_total";
    let mut previous = start.get(LATE)?;
    let mut next = tokio::time::Instant::now();
    let mut out = Vec::new();
    for _ in 0..seconds {
        next += Duration::from_secs(1);
        tokio::time::sleep_until(next).await;
        let late = server.metrics().await?.get(LATE)?;
        out.push(late - previous);
        previous = late;
    }
    Ok(out)
}

/// One connection sending requests back to back until `deadline`, reconnecting after errors.
async fn hammer(i: usize, server: SocketAddr, deadline: tokio::time::Instant) -> Tally {
    let requests = PATHS.map(net::get_request);
    let mut tally = Tally::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    for n in 0.. {
        let started = Instant::now();
        let outcome = tokio::time::timeout_at(deadline, async {
            if stream.is_none() {
                stream = Some(net::connect(i, server).await?);
            }
            let s = stream.as_mut().context("connected above")?;
            request(s, &requests[n % PATHS.len()], &mut buf).await
        })
        .await;
        match outcome {
            Err(_elapsed) => break,
            Ok(Ok(status)) if (200..300).contains(&status) => {
                tally.ok += 1;
                let us = started.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Ok(Ok(status)) => *tally.other.entry(status).or_default() += 1,
            Ok(Err(e)) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                stream = None;
                if tokio::time::timeout_at(deadline, tokio::time::sleep(RETRY_PAUSE))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    tally
}

/// Sends one request and reads its whole response; returns the status.
async fn request(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Result<u16> {
    buf.clear();
    stream.write_all(request).await?;
    let head = net::read_head(stream, buf).await?;
    let Some(len) = head.content_length else {
        bail!("response {} without Content-Length", head.status);
    };
    while buf.len() < head.len + len {
        if tokio::io::AsyncReadExt::read_buf(stream, buf).await? == 0 {
            bail!("connection closed inside a response body");
        }
    }
    Ok(head.status)
}

fn print(r: &Report) {
    let late = |t: &Ticks| {
        format!(
            "{} of {} ({}%)",
            t.late,
            t.ticks,
            f(100.0 * t.late / t.ticks.max(1.0), 2)
        )
    };
    let rows = [
        ("connections", r.connections.to_string()),
        ("late ticks, quiet", late(&r.quiet)),
        ("late ticks, flood", late(&r.flood)),
        ("longest tick so far, ms", f(r.flood.max_tick_ms_so_far, 2)),
        ("requests ok", r.requests_ok.to_string()),
        ("requests/s", f(r.requests_per_second, 0)),
        (
            "latency p50 / p99 / max, ms",
            format!(
                "{} / {} / {}",
                f(r.latency_ms_p50, 2),
                f(r.latency_ms_p99, 2),
                f(r.latency_ms_max, 1)
            ),
        ),
        ("other statuses", format!("{:?}", r.other_statuses)),
        ("errors", r.errors.to_string()),
        (
            "server cores quiet / flood",
            format!(
                "{} / {}",
                f(r.quiet.server.cores, 3),
                f(r.flood.server.cores, 3)
            ),
        ),
        ("load generator cores", f(r.client_cores, 3)),
        ("speakers after the flood", r.speakers_after.to_string()),
        (
            "late ticks per second of the flood",
            format!("{:?}", r.late_per_second),
        ),
    ];
    report::table(&format!("late-ticks: {} connections", r.connections), &rows);
    if let Some(e) = &r.first_error {
        println!("\nfirst request error: {e}");
    }
}
