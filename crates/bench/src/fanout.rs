//! `fanout`: what a live.opus listener costs the server.
//!
//! One server, one space, one `tribune speak` tone. After a baseline of the server idling with its
//! speaker, N raw TCP listeners connect (spread over source addresses, a bounded number of
//! connects in flight), and once every one has its first bytes the server is watched for a steady
//! window. Reported: server cores above the baseline (per 1,000 listeners), RSS above the baseline
//! per listener, kernel TCP memory per listener, bytes/s each listener got, and how many listeners
//! were still receiving at the end.
//!
//! `--target icecast` measures Icecast 2.4 the same way instead (see [`crate::icecast`]): its
//! mount fed by ffmpeg with one page per `--page-ms`, the same listeners, the icecast2 process
//! watched.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::harness::{SETUP_LIMIT, Server};
use crate::icecast::Icecast;
use crate::net;
use crate::procstat::{self, Window};
use crate::report::{self, f};

/// Read buffer of one listener: a 200 ms page of 32 kb/s audio is about 1 KiB.
const READ_BUF: usize = 4096;

/// Which server is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `tribune serve` (`--server-bin`), its live.opus.
    Tribune,
    /// Icecast 2.4 (`--icecast-bin`) fed by ffmpeg (`--ffmpeg-bin`).
    Icecast,
}

/// Arguments of `fanout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server to measure.
    #[arg(long, value_enum, default_value_t = Target::Tribune)]
    target: Target,
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// The Icecast binary (`--target icecast`).
    #[arg(long, default_value = "icecast2")]
    icecast_bin: String,
    /// The ffmpeg that feeds Icecast (`--target icecast`).
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg_bin: String,
    /// Listener connections to open.
    #[arg(long, default_value_t = 2000)]
    listeners: usize,
    /// The server's live page interval (`tribune serve --page-ms`).
    #[arg(long, default_value_t = 200)]
    page_ms: u64,
    /// Length of the steady-state window, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Length of the baseline window (speaker on, no listeners), seconds.
    #[arg(long, default_value_t = 4)]
    baseline_seconds: u64,
    /// Connects (and response heads) in flight at once while the listeners join.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Longest the listeners may take to all get their first bytes, seconds.
    #[arg(long, default_value_t = 90)]
    join_timeout: u64,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Where a listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum State {
    Joining = 0,
    Streaming = 1,
    /// Never got a 200 response head.
    Failed = 2,
    /// Was streaming, then the server closed the connection or it broke.
    Dropped = 3,
}

/// One listener, shared between its task and the reporter.
#[derive(Debug, Default)]
struct Slot {
    state: AtomicU8,
    /// Body bytes received (including chunked-encoding framing).
    bytes: AtomicU64,
}

impl Slot {
    fn state(&self) -> State {
        match self.state.load(Relaxed) {
            0 => State::Joining,
            1 => State::Streaming,
            2 => State::Failed,
            _ => State::Dropped,
        }
    }
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: Target,
    pub listeners: usize,
    pub page_ms: u64,
    pub nofile_limit: u64,
    pub baseline: Window,
    pub steady: Window,
    /// Seconds from the first connect until every listener had bytes (or failed).
    pub join_seconds: f64,
    pub failed_to_join: usize,
    /// Listeners that got bytes in the last seconds of the window.
    pub held: usize,
    /// Listeners whose connection ended during the run.
    pub dropped: usize,
    /// Server's own `tribune_listeners` gauge at the end (tribune only).
    pub server_listeners_gauge: Option<f64>,
    pub server_dropped_slow: Option<f64>,
    pub cores_above_baseline: f64,
    /// Per 1,000 listeners held (this and the other per-listener figures).
    pub cores_per_1000_listeners: f64,
    pub rss_kib_per_listener: f64,
    /// Kernel TCP buffer memory per listener, both ends of the loopback connection.
    pub tcp_kib_per_listener: f64,
    pub bytes_per_second_per_listener: f64,
    /// The load generator's own CPU over the steady window.
    pub client_cores: f64,
    pub first_error: Option<String>,
}

/// Runs the benchmark.
pub async fn run(args: Args, nofile_limit: u64) -> Result<()> {
    ensure!(args.listeners > 0, "--listeners must be positive");
    let hold = hold_seconds(args.page_ms);
    ensure!(
        args.seconds > hold,
        "--seconds must exceed {hold} (the hold check window)"
    );
    // The speaker stops by itself after the longest this run can take.
    let run_bound =
        SETUP_LIMIT.as_secs() + args.baseline_seconds + args.join_timeout + args.seconds + 30;
    let (server, icecast, _speaker, addr, path) = match args.target {
        Target::Tribune => {
            let server = Server::start(
                &args.server_bin,
                &["--page-ms".into(), args.page_ms.to_string()],
            )?;
            let space = server.create_space("fanout").await?;
            let speaker = server.speak(&space, "tone", 440, run_bound).await?;
            server.wait_metric("tribune_speakers", 1.0).await?;
            let (addr, path) = (server.http_addr, format!("/spaces/{}/live.opus", space.id));
            (Some(server), None, Some(speaker), addr, path)
        }
        Target::Icecast => {
            let ice = Icecast::start(&args.icecast_bin, &args.ffmpeg_bin, args.page_ms).await?;
            let addr = ice.addr;
            (
                None,
                Some(ice),
                None,
                addr,
                crate::icecast::MOUNT.to_owned(),
            )
        }
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    let pid = match (&server, &icecast) {
        (Some(s), _) => s.pid(),
        (None, Some(i)) => i.pid(),
        (None, None) => bail!("no server started"),
    };
    eprintln!(
        "baseline: {} s with the speaker and no listeners",
        args.baseline_seconds
    );
    let baseline = procstat::watch(pid, Duration::from_secs(args.baseline_seconds), || {}).await?;
    let tcp_before = procstat::tcp_mem_kib()?;

    eprintln!("joining {} listeners", args.listeners);
    let slots: Arc<Vec<Slot>> = Arc::new((0..args.listeners).map(|_| Slot::default()).collect());
    let first_error = Arc::new(Mutex::new(None));
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let join_start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.listeners {
        let (slots, permits, first_error) = (slots.clone(), permits.clone(), first_error.clone());
        let request = net::get_request(&path);
        tasks.spawn(async move {
            let slot = &slots[i];
            if let Err(e) = listen(i, addr, &request, slot, &permits).await {
                first_error
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert(format!("{e:#}"));
            }
            let next = if slot.state() == State::Joining {
                State::Failed
            } else {
                State::Dropped
            };
            slot.state.store(next as u8, Relaxed);
        });
    }
    let joined = |slots: &[Slot]| {
        slots
            .iter()
            .filter(|s| s.bytes.load(Relaxed) > 0 || s.state() != State::Joining)
            .count()
    };
    let deadline = join_start + Duration::from_secs(args.join_timeout);
    while joined(&slots) < args.listeners {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} listeners joined in {:?}",
                joined(&slots),
                args.listeners,
                deadline - join_start
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let join_seconds = join_start.elapsed().as_secs_f64();
    // Let the join bursts drain before the window opens.
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!("steady state: {} s", args.seconds);
    let bytes = |slots: &[Slot]| {
        slots
            .iter()
            .map(|s| s.bytes.load(Relaxed))
            .collect::<Vec<_>>()
    };
    let tps = procstat::clock_ticks_per_second();
    let own_start = procstat::sample(std::process::id(), tps)?;
    let start_bytes = bytes(&slots);
    let mut per_second = Vec::new();
    let steady = procstat::watch(pid, Duration::from_secs(args.seconds), || {
        per_second.push(bytes(&slots))
    })
    .await?;
    let own_end = procstat::sample(std::process::id(), tps)?;
    let tcp_after = procstat::tcp_mem_kib()?;
    let (gauge, dropped_slow) = match &server {
        Some(server) => {
            let metrics = server.metrics().await?;
            (
                Some(metrics.get("tribune_listeners")?),
                Some(metrics.get("tribune_listeners_dropped_slow_total")?),
            )
        }
        None => (None, None),
    };

    let end_bytes = per_second.last().cloned().unwrap_or_default();
    let hold_from = &per_second[per_second.len().saturating_sub(hold as usize + 1)];
    let held = (0..args.listeners)
        .filter(|&i| slots[i].state() == State::Streaming && end_bytes[i] > hold_from[i])
        .count();
    let count = |state| slots.iter().filter(|s| s.state() == state).count();
    // Per listener means per listener held (all of them, unless some never joined: Icecast's
    // listen backlog of 5 drops SYNs under a crowd).
    let n = held.max(1) as f64;
    let received: u64 = end_bytes.iter().zip(&start_bytes).map(|(e, s)| e - s).sum();
    let cores_above_baseline = steady.cores - baseline.cores;
    let report = Report {
        target: args.target,
        listeners: args.listeners,
        page_ms: args.page_ms,
        nofile_limit,
        baseline,
        steady,
        join_seconds,
        failed_to_join: count(State::Failed),
        held,
        dropped: count(State::Dropped),
        server_listeners_gauge: gauge,
        server_dropped_slow: dropped_slow,
        cores_above_baseline,
        cores_per_1000_listeners: cores_above_baseline / n * 1000.0,
        rss_kib_per_listener: (steady.rss_kib_mean - baseline.rss_kib_mean) / n,
        tcp_kib_per_listener: (tcp_after as f64 - tcp_before as f64) / n,
        bytes_per_second_per_listener: received as f64 / n / steady.wall_seconds,
        client_cores: (own_end.cpu - own_start.cpu).as_secs_f64()
            / (own_end.at - own_start.at).as_secs_f64(),
        first_error: first_error.lock().expect("not poisoned").clone(),
    };
    tasks.shutdown().await;
    print(&report);
    report::json(args.json.as_deref(), &report)
}

/// Seconds at the end of the window in which a listener must have received bytes to count as
/// held: two pages, and at least two seconds.
fn hold_seconds(page_ms: u64) -> u64 {
    (2 * page_ms).max(2000).div_ceil(1000)
}

/// One listener: connect, request the stream, count the body until the connection ends.
async fn listen(
    i: usize,
    server: SocketAddr,
    request: &[u8],
    slot: &Slot,
    permits: &Semaphore,
) -> Result<()> {
    let permit = permits.acquire().await?;
    let mut stream = net::connect(i, server).await?;
    stream.write_all(request).await?;
    let mut buf = Vec::with_capacity(READ_BUF);
    let head = net::read_head(&mut stream, &mut buf).await?;
    ensure!(head.status == 200, "live.opus answered {}", head.status);
    drop(permit);
    slot.state.store(State::Streaming as u8, Relaxed);
    slot.bytes.fetch_add((buf.len() - head.len) as u64, Relaxed);
    buf.resize(READ_BUF, 0);
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the server ended the stream");
        }
        slot.bytes.fetch_add(n as u64, Relaxed);
    }
}

fn print(r: &Report) {
    let rows = [
        ("listeners (requested)", r.listeners.to_string()),
        ("page ms", r.page_ms.to_string()),
        ("join time, s", f(r.join_seconds, 1)),
        ("failed to join", r.failed_to_join.to_string()),
        ("held at end (still receiving)", r.held.to_string()),
        ("dropped during run", r.dropped.to_string()),
        (
            "server listeners gauge / dropped slow",
            match (r.server_listeners_gauge, r.server_dropped_slow) {
                (Some(g), Some(d)) => format!("{g} / {d}"),
                _ => "n/a".to_owned(),
            },
        ),
        ("server cores, baseline", f(r.baseline.cores, 3)),
        ("server cores, steady", f(r.steady.cores, 3)),
        (
            "cores per 1,000 listeners",
            f(r.cores_per_1000_listeners, 4),
        ),
        (
            "server RSS baseline / steady, MiB",
            format!(
                "{} / {}",
                f(r.baseline.rss_kib_mean / 1024.0, 1),
                f(r.steady.rss_kib_mean / 1024.0, 1)
            ),
        ),
        ("RSS per listener, KiB", f(r.rss_kib_per_listener, 2)),
        (
            "kernel TCP mem per listener (both ends), KiB",
            f(r.tcp_kib_per_listener, 2),
        ),
        (
            "bytes/s per listener",
            f(r.bytes_per_second_per_listener, 0),
        ),
        ("load generator cores", f(r.client_cores, 3)),
    ];
    let target = match r.target {
        Target::Tribune => "tribune",
        Target::Icecast => "icecast",
    };
    report::table(
        &format!(
            "fanout ({target}): {} listeners, {} ms pages",
            r.listeners, r.page_ms
        ),
        &rows,
    );
    if let Some(e) = &r.first_error {
        println!("\nfirst listener error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_window_covers_two_pages() {
        assert_eq!(hold_seconds(200), 2);
        assert_eq!(hold_seconds(1000), 2);
        assert_eq!(hold_seconds(1500), 3);
    }
}
