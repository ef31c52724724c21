//! `failover`: what listeners, speakers and the recording lose when a space's owner dies.
//!
//! Each of `--rounds` rounds starts a fresh cluster on loopback: one `redis-server`, three
//! `tribune serve` nodes n1, n2, n3 on it (`--grace 60`), and a space created through n2 and
//! pinned to n1. Two `tribune speak --reconnect` speakers (440 Hz through n2 then n3, 660 Hz
//! through n3 then n2) publish to it; once n1 hears both and a hot standby (n2 or n3) is copying
//! the space, a reconnecting Ogg listener follows `live.opus` on n3 and `--hls-listeners` LL-HLS
//! listeners (`tribune_client::hls`) follow the space through nginx with
//! `deploy/nginx/edge.conf`, its upstreams all three nodes. `--before` seconds later n1 gets
//! `SIGKILL`. Nobody acts after that: the standby takes the space over when n1's lease lapses,
//! and the speakers publish again by themselves. The space runs on until `--after` seconds after
//! the kill (and at least 2 s after both speakers are back); then the listeners stop, the space
//! is ended through n3 with the host's token, and its recording is fetched through n2.
//!
//! Per round, all on this process's one monotonic clock:
//! - `takeover_s`: kill → `tribune_cluster_takeovers_total` reads 1 on n2 or n3 (the new owner);
//! - `speakers_back_s`: kill → `tribune_speakers` reads 2 on the new owner (both polled every
//!   100 ms, the time taken when the scrape's answer arrived);
//! - `ogg_gap_s`: the Ogg listener's longest wait for audio around the kill: every chunk of the
//!   stream that decoded to samples is timed as it arrives ([`StreamChecker`]), and this is the
//!   longest interval between consecutive ones from the last before the kill to the moment
//!   listening stopped, across reconnections (`ogg_audible_gap_s`: the same, counting only
//!   chunks with a sample above 0.001 of full scale, so silence the new owner mixes while the
//!   speakers are away counts as a gap);
//! - `hls_gap_s`: the same over the arrivals of parts at the HLS listeners, merged;
//! - `recording_missing_s`: the space's wall-clock length (the create request sent → the end
//!   request answered) less the recording's duration (ffprobe), read once it stops growing: the
//!   owner writes the tail after it answers the end, so it is fetched at once and then every 0.5 s
//!   until two reads have the same length (`recording_settled_s`: the end → the first read at
//!   that length, to 0.5 s);
//! - `recording_silence_s`: seconds of the recording (decoded by ffmpeg to 48 kHz mono f32) in
//!   20 ms blocks with no sample at or above 0.001 (the tones are far louder): the interval the
//!   takeover filled with silence plus the speakers' reconnection.
//!
//! A round that fails a step (everything is bounded: a round ends by itself within
//! 75 s + `--before` + `--after`) is reported with its reason and the figures it got, its logs
//! kept; the summary (p50, p99, max, nearest rank) is over the rounds that succeeded. Every
//! child (nodes, speakers, nginx, Redis) is killed at the end of its round, on errors too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tribune_client::hls::{self, Arrival, Options};
use tribune_client::listen::StreamChecker;
use tribune_load::harness::OPERATOR_KEY;
use tribune_load::redis::Redis;

use crate::report::{f, json};
use crate::varnish::free_port;

/// Arguments of `failover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start (nodes and speakers).
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// The nginx binary (the edge).
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx_bin: PathBuf,
    /// Where `nginx/edge.conf` is.
    #[arg(long, default_value = "deploy")]
    deploy_dir: PathBuf,
    /// Rounds, each on a fresh cluster.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Seconds the listeners follow the space before the owner is killed.
    #[arg(long, default_value_t = 6)]
    before: u64,
    /// Seconds after the kill before the space ends (at least 2 s after the speakers are back).
    #[arg(long, default_value_t = 10)]
    after: u64,
    /// LL-HLS listeners through the edge.
    #[arg(long, default_value_t = 3)]
    hls_listeners: usize,
    /// Also write every round and the summary here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The JWT secret the nodes of a round share.
const SECRET: &str = "bench-failover-jwt-secret-0123456789";
/// Bound on a setup step (nodes finding each other, speakers connecting).
const SETUP: Duration = Duration::from_secs(30);
/// Bound on the standby being named and on the takeover (as the failover test's).
const HANG: Duration = Duration::from_secs(40);
/// Metric polling interval.
const POLL: Duration = Duration::from_millis(100);
/// Least time the space runs on after both speakers are back.
const AFTER_BACK: Duration = Duration::from_secs(2);
/// Bound on one ffmpeg or ffprobe run.
const TOOL_LIMIT: Duration = Duration::from_secs(60);
/// The recording is whole when two reads this far apart have the same length.
const SETTLE: Duration = Duration::from_millis(500);
/// A sample at or above this magnitude is not silence (-60 dBFS).
const SILENT: f32 = 0.001;

/// One round: its figures (seconds), as far as it got.
#[derive(Debug, Default, Serialize)]
pub struct Round {
    pub round: usize,
    pub ok: bool,
    pub error: Option<String>,
    /// The node that took the space over.
    pub new_owner: Option<String>,
    /// Space created → owner killed.
    pub killed_at_s: Option<f64>,
    pub takeover_s: Option<f64>,
    pub speakers_back_s: Option<f64>,
    pub ogg_gap_s: Option<f64>,
    pub ogg_audible_gap_s: Option<f64>,
    /// Connections the Ogg listener got a 200 on.
    pub ogg_connections: Option<usize>,
    pub hls_gap_s: Option<f64>,
    /// Parts that reached the HLS listeners, all together.
    pub hls_parts: Option<usize>,
    /// Media-sequence gaps and failed requests of the HLS listeners, all together.
    pub hls_msn_gaps: Option<u64>,
    pub hls_errors: Option<u64>,
    /// Wall-clock length of the space.
    pub space_s: Option<f64>,
    /// The recording's duration (ffprobe).
    pub recording_s: Option<f64>,
    pub recording_missing_s: Option<f64>,
    pub recording_silence_s: Option<f64>,
    /// Space ended → the recording read at its final length (read every 0.5 s until it stops
    /// growing; the owner finishes writing it after it answers the end).
    pub recording_settled_s: Option<f64>,
    /// ffmpeg decoded the recording without an error.
    pub recording_clean: Option<bool>,
    /// What the round was doing (the reason of a timeout).
    #[serde(skip)]
    step: &'static str,
}

/// p50, p99 and max of one figure over the rounds that succeeded.
#[derive(Debug, Default, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Spread {
        if xs.is_empty() {
            return Spread::default();
        }
        xs.sort_by(f64::total_cmp);
        // Nearest rank.
        let at = |p: f64| xs[((p * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1];
        Spread {
            count: xs.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: xs[xs.len() - 1],
        }
    }
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub rounds_run: usize,
    pub rounds_ok: usize,
    pub before_s: u64,
    pub after_s: u64,
    pub hls_listeners: usize,
    /// Figure → spread over the rounds that succeeded.
    pub summary: BTreeMap<&'static str, Spread>,
    pub rounds: Vec<Round>,
}

/// A figure of a round, by name.
type Figure = (&'static str, fn(&Round) -> Option<f64>);

/// The figures of a round, in print order.
const FIGURES: [Figure; 8] = [
    ("takeover_s", |r| r.takeover_s),
    ("speakers_back_s", |r| r.speakers_back_s),
    ("ogg_gap_s", |r| r.ogg_gap_s),
    ("ogg_audible_gap_s", |r| r.ogg_audible_gap_s),
    ("hls_gap_s", |r| r.hls_gap_s),
    ("recording_missing_s", |r| r.recording_missing_s),
    ("recording_silence_s", |r| r.recording_silence_s),
    ("recording_settled_s", |r| r.recording_settled_s),
];

pub async fn run(args: Args) -> Result<()> {
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    ensure!(args.hls_listeners > 0, "--hls-listeners must be at least 1");
    ensure!(
        args.server_bin.exists(),
        "{} not found (cargo build --release -p tribune, or --server-bin)",
        args.server_bin.display()
    );
    ensure!(
        args.nginx_bin.exists(),
        "{} not found: Debian's nginx (or --nginx-bin)",
        args.nginx_bin.display()
    );
    let conf = args.deploy_dir.join("nginx/edge.conf");
    ensure!(
        conf.exists(),
        "{} not found (run from the repository root, or --deploy-dir)",
        conf.display()
    );
    for tool in ["ffmpeg", "ffprobe"] {
        ensure!(
            std::process::Command::new(tool)
                .arg("-version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "{tool} is not installed (Debian's ffmpeg)"
        );
    }
    let work = std::env::temp_dir().join(format!("tribune-bench-failover-{}", std::process::id()));
    let limit = Duration::from_secs(75 + args.before + args.after);
    eprintln!(
        "failover: {} rounds of 3 nodes; owner killed {} s into listening, space ended {} s after",
        args.rounds, args.before, args.after
    );
    let mut rounds = Vec::new();
    for k in 1..=args.rounds {
        let dir = work.join(format!("round-{k}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut r = Round {
            round: k,
            ..Round::default()
        };
        match tokio::time::timeout(limit, one_round(&args, &dir, &mut r)).await {
            Ok(Ok(())) => r.ok = true,
            Ok(Err(e)) => r.error = Some(format!("{e:#} (logs in {})", dir.display())),
            Err(_) => {
                r.error = Some(format!(
                    "timed out after {} s while {} (logs in {})",
                    limit.as_secs(),
                    r.step,
                    dir.display()
                ))
            }
        }
        if r.ok {
            let _ = std::fs::remove_dir_all(&dir);
        }
        println!("{}", line(&r, args.rounds));
        rounds.push(r);
    }
    let _ = std::fs::remove_dir(&work);

    let ok: Vec<&Round> = rounds.iter().filter(|r| r.ok).collect();
    let summary: BTreeMap<&'static str, Spread> = FIGURES
        .iter()
        .map(|(name, get)| {
            (
                *name,
                Spread::of(ok.iter().filter_map(|r| get(r)).collect()),
            )
        })
        .collect();
    println!(
        "\n### failover: {} of {} rounds succeeded (owner killed {} s in, space on {} s after)\n",
        ok.len(),
        rounds.len(),
        args.before,
        args.after
    );
    println!("| figure | p50 s | p99 s | max s |");
    println!("|---|---:|---:|---:|");
    for (name, _) in FIGURES {
        let s = &summary[name];
        let v = |x: f64| {
            if s.count == 0 {
                "-".to_owned()
            } else {
                f(x, 2)
            }
        };
        println!("| {name} | {} | {} | {} |", v(s.p50), v(s.p99), v(s.max));
    }
    for r in rounds.iter().filter(|r| !r.ok) {
        println!(
            "round {} failed: {}",
            r.round,
            r.error.as_deref().unwrap_or("")
        );
    }
    let report = Report {
        rounds_run: rounds.len(),
        rounds_ok: ok.len(),
        before_s: args.before,
        after_s: args.after,
        hls_listeners: args.hls_listeners,
        summary,
        rounds,
    };
    json(args.json.as_deref(), &report)?;
    Ok(())
}

/// One line of a round's figures.
fn line(r: &Round, of: usize) -> String {
    let s = |x: Option<f64>| x.map_or("-".to_owned(), |x| f(x, 2));
    let mut out = format!(
        "round {:>2}/{of}: {} took over in {} s, speakers back {} s; gaps: Ogg {} s (audible {} s, {} connections), HLS {} s; recording {} s of {} s ({} s missing, whole {} s after the end), {} s silent",
        r.round,
        r.new_owner.as_deref().unwrap_or("?"),
        s(r.takeover_s),
        s(r.speakers_back_s),
        s(r.ogg_gap_s),
        s(r.ogg_audible_gap_s),
        r.ogg_connections.map_or("-".to_owned(), |n| n.to_string()),
        s(r.hls_gap_s),
        s(r.recording_s),
        s(r.space_s),
        s(r.recording_missing_s),
        s(r.recording_settled_s),
        s(r.recording_silence_s),
    );
    if r.recording_clean == Some(false) {
        out.push_str("; the recording did not decode cleanly");
    }
    if let Some(e) = &r.error {
        out.push_str(&format!("; FAILED: {e}"));
    }
    out
}

/// A child process (a node, a speaker), killed (`SIGKILL`) and reaped on drop.
struct Proc(tokio::process::Child);

impl Proc {
    async fn kill9(&mut self) {
        let _ = self.0.start_kill();
        let _ = self.0.wait().await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
        // Reaped here, not left a zombie when the round is given up on (bounded: a killed
        // process exits at once).
        let end = Instant::now() + Duration::from_secs(2);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A `tribune serve` node of a round; killed on drop.
struct Node {
    base: String,
    proc: Proc,
}

impl Node {
    /// Starts node `n{i}` on Redis at `redis`, its data and log under `dir`, and waits for its
    /// "listening" line.
    async fn start(bin: &Path, i: usize, redis: &str, dir: &Path) -> Result<Node> {
        let id = format!("n{i}");
        let listen = format!("127.0.0.1:{}", free_port()?);
        let base = format!("http://{listen}");
        let data = dir.join(&id);
        std::fs::create_dir_all(&data)?;
        let log = std::fs::File::create(dir.join(format!("{id}.log")))?;
        let mut child = tokio::process::Command::new(bin)
            .arg("serve")
            .args(["--listen", &listen, "--udp", "127.0.0.1:0"])
            .args(["--redis", redis, "--jwt-secret", SECRET])
            .args(["--public-url", &base, "--node-id", &id])
            .args(["--admin-key", OPERATOR_KEY, "--grace", "60"])
            .args(["--log", "info,str0m=warn", "--data-dir"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("node stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // "tribune listening on http://127.0.0.1:PORT (media on udp …)"
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .with_context(|| format!("{id} printed nothing in 20 s"))??
            .with_context(|| format!("{id} exited at start"))?;
        ensure!(
            first.split_whitespace().any(|w| w == base),
            "{id} is not listening on {base}: {first:?}"
        );
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Node {
            base,
            proc: Proc(child),
        })
    }
}

/// `tribune speak --reconnect` of a tone, through each node of `bases` in turn; killed on drop.
fn speaker(
    bin: &Path,
    bases: &[&str],
    (id, token): (&str, &str),
    hz: u32,
    seconds: u64,
    log: &Path,
) -> Result<Proc> {
    let mut c = tokio::process::Command::new(bin);
    c.args(["speak", "--reconnect", "--token", token]);
    for b in bases {
        c.args(["--whip", &format!("{b}/api/spaces/{id}/whip")]);
    }
    c.args(["--tone", &hz.to_string(), "--seconds", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()
        .map(Proc)
        .context("starting tribune speak")
}

/// nginx with `deploy/nginx/edge.conf`, its upstreams every node; stopped on drop.
struct Edge {
    child: std::process::Child,
    port: u16,
}

impl Edge {
    fn start(args: &Args, upstreams: &[&str], dir: &Path) -> Result<Edge> {
        let cache = dir.join("cache");
        std::fs::create_dir_all(&cache)?;
        let port = free_port()?;
        let hosts: Vec<&str> = upstreams
            .iter()
            .map(|b| b.trim_start_matches("http://"))
            .collect();
        let servers: Vec<String> = hosts
            .iter()
            .map(|h| format!("server {h} max_fails=0;"))
            .collect();
        let template = "server @ORIGIN@ max_fails=0;";
        let conf = std::fs::read_to_string(args.deploy_dir.join("nginx/edge.conf"))
            .context("reading deploy/nginx/edge.conf")?;
        ensure!(conf.contains(template), "no `{template}` line in edge.conf");
        let conf = conf
            .replace(template, &servers.join("\n        "))
            .replace("@ORIGIN@", hosts[0])
            .replace("@USER@", "root")
            .replace("@PORT@", &format!("127.0.0.1:{port}"))
            .replace("@CACHE@", &cache.to_string_lossy())
            .replace("@PREFIX@", &dir.to_string_lossy());
        let child = tribune_load::nginx::spawn(&args.nginx_bin, dir, &conf)?;
        Ok(Edge { child, port })
    }

    fn stop(&mut self) {
        tribune_load::nginx::stop(&mut self.child);
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A spawned task, aborted on drop (a round given up on leaves no listener running).
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    fn spawn(f: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task(tokio::spawn(f))
    }

    async fn join(mut self, within: Duration) -> Result<T> {
        tokio::time::timeout(within, &mut self.0)
            .await
            .context("a listener did not stop")?
            .context("a listener failed")
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the Ogg listener heard: arrival times of chunks with audio, over all its connections.
#[derive(Debug, Default)]
struct Heard {
    /// Chunks that decoded to samples.
    audio: Vec<Instant>,
    /// Chunks with a sample of at least [`SILENT`].
    audible: Vec<Instant>,
    /// Connections answered 200.
    connections: usize,
}

/// An Ogg listener of `url` that connects again whenever its stream ends, until `stop`.
async fn ogg_listener(
    client: reqwest::Client,
    url: String,
    mut stop: watch::Receiver<bool>,
) -> Heard {
    let mut heard = Heard::default();
    loop {
        let answered = tokio::select! {
            () = stopped(&mut stop) => break,
            answered = connection(&client, &url, &mut heard) => answered,
        };
        if !answered {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    heard
}

/// Resolves once `stop` reads true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One connection of [`ogg_listener`] until its stream ends; whether it was answered 200.
async fn connection(client: &reqwest::Client, url: &str, heard: &mut Heard) -> bool {
    let Ok(mut resp) = client.get(url).send().await else {
        return false;
    };
    if resp.status() != reqwest::StatusCode::OK {
        return false;
    }
    let Ok(mut checker) = StreamChecker::new() else {
        return false;
    };
    heard.connections += 1;
    while let Ok(Some(chunk)) = resp.chunk().await {
        let at = Instant::now();
        checker.push(&chunk);
        let pcm = checker.take_pcm();
        if !pcm.is_empty() {
            heard.audio.push(at);
        }
        if pcm.iter().any(|&s| f32::from(s).abs() / 32768.0 >= SILENT) {
            heard.audible.push(at);
        }
    }
    true
}

/// `n` LL-HLS listeners of `url` until `stop` (or `limit`): arrival times of parts, merged and
/// sorted, and their reports.
async fn hls_listeners(
    url: String,
    n: usize,
    limit: Duration,
    stop: watch::Receiver<bool>,
) -> (Vec<Instant>, Vec<hls::Report>) {
    let client = reqwest::Client::new();
    let parts = Mutex::new(Vec::new());
    let observe = |a: Arrival<'_>| {
        if let Arrival::Media { uri, .. } = a
            && uri.contains("part/")
            && let Ok(mut v) = parts.lock()
        {
            v.push(Instant::now());
        }
    };
    let runs = (0..n).map(|_| {
        let mut stop = stop.clone();
        let mut opts = Options::new(url.clone(), limit);
        opts.request_timeout = Duration::from_secs(12);
        let (client, observe) = (&client, &observe);
        async move { hls::run_observed(client, opts, observe, stopped(&mut stop)).await }
    });
    let reports = futures_util::future::join_all(runs).await;
    let mut times = parts.into_inner().unwrap_or_default();
    times.sort();
    (times, reports)
}

/// The longest wait between consecutive `arrivals` (sorted) from the last one at or before
/// `kill` to `end` (when listening stopped); `None` if nothing arrived before the kill.
fn longest_gap(arrivals: &[Instant], kill: Instant, end: Instant) -> Option<Duration> {
    let from = arrivals.iter().rposition(|t| *t <= kill)?;
    let last = arrivals.last().copied().unwrap_or(end);
    let times: Vec<Instant> = arrivals[from..]
        .iter()
        .copied()
        .chain(std::iter::once(end.max(last)))
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).max()
}

/// A JSON API call; (status, body as JSON or as a string).
async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    auth: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut req = http.request(method.clone(), url).bearer_auth(auth);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A speaker token for `name`, minted through `base` with the host's token.
async fn mint(
    http: &reqwest::Client,
    base: &str,
    (id, host): (&str, &str),
    name: &str,
) -> Result<String> {
    let (s, v) = call(
        http,
        Method::POST,
        &format!("{base}/api/spaces/{id}/tokens"),
        host,
        Some(json!({"role": "speaker", "name": name})),
    )
    .await?;
    ensure!(s == 201, "minting a speaker token: {s} {v}");
    v["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token in {v}"))
}

/// `/metrics` of `base` (operator key), or `None` when it cannot be read (a node that is down).
async fn scrape(http: &reqwest::Client, base: &str) -> Option<String> {
    let resp = http
        .get(format!("{base}/metrics"))
        .bearer_auth(OPERATOR_KEY)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok()
}

/// The unlabelled sample `name` of a scrape.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A metric of `base`, 0 when it cannot be read.
async fn metric_or_zero(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    scrape(http, base)
        .await
        .and_then(|t| metric(&t, name))
        .unwrap_or(0.0)
}

/// Polls `f` every [`POLL`] until it is true; fails after `limit`.
async fn until(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) -> Result<()> {
    let end = Instant::now() + limit;
    loop {
        if f().await {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("{what}: not within {} s", limit.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `program` with `args` (bounded by [`TOOL_LIMIT`]), its output.
async fn tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<std::process::Output> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {program}"))?;
    tokio::time::timeout(TOOL_LIMIT, child.wait_with_output())
        .await
        .with_context(|| format!("{program} took over {} s", TOOL_LIMIT.as_secs()))?
        .with_context(|| format!("running {program}"))
}

/// Seconds of `pcm` (48 kHz) in 20 ms blocks with no sample of at least [`SILENT`].
fn silence_s(pcm: &[f32]) -> f64 {
    pcm.chunks(960)
        .filter(|c| c.iter().all(|s| s.abs() < SILENT))
        .count() as f64
        * 0.02
}

/// The duration (ffprobe), whether it decodes without an error, and the seconds of silence
/// of the recording at `path`.
async fn analyze_recording(path: &Path) -> Result<(f64, bool, f64)> {
    let p = path.as_os_str();
    let probe = tool(
        "ffprobe",
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-show_entries".as_ref(),
            "format=duration".as_ref(),
            "-of".as_ref(),
            "csv=p=0".as_ref(),
            p,
        ],
    )
    .await?;
    let text = String::from_utf8_lossy(&probe.stdout);
    let duration: f64 = text
        .trim()
        .parse()
        .with_context(|| format!("ffprobe gave no duration: {text:?}"))?;
    let decoded = tool(
        "ffmpeg",
        &[
            "-hide_banner".as_ref(),
            "-v".as_ref(),
            "error".as_ref(),
            "-i".as_ref(),
            p,
            "-f".as_ref(),
            "f32le".as_ref(),
            "-ac".as_ref(),
            "1".as_ref(),
            "-ar".as_ref(),
            "48000".as_ref(),
            "-".as_ref(),
        ],
    )
    .await?;
    let clean = decoded.status.success() && decoded.stderr.iter().all(u8::is_ascii_whitespace);
    let pcm: Vec<f32> = decoded
        .stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    ensure!(!pcm.is_empty(), "ffmpeg decoded nothing of the recording");
    Ok((duration, clean, silence_s(&pcm)))
}

/// One round (see the module docs), filling `r` as it goes; everything it started is stopped
/// when it returns or is dropped.
async fn one_round(args: &Args, dir: &Path, r: &mut Round) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let secs = |d: Duration| d.as_secs_f64();

    r.step = "starting redis-server";
    let redis = Redis::start(&dir.join("redis"))?;
    r.step = "starting the nodes";
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(Node::start(&args.server_bin, i, &redis.url(), dir).await?);
    }
    let (n1, n2, n3) = (
        nodes[0].base.clone(),
        nodes[1].base.clone(),
        nodes[2].base.clone(),
    );
    r.step = "waiting for the nodes to know each other";
    until(SETUP, "the three nodes in the directory", async || {
        call(
            &http,
            Method::GET,
            &format!("{n2}/api/cluster"),
            OPERATOR_KEY,
            None,
        )
        .await
        .is_ok_and(|(s, v)| s == 200 && v["nodes"].as_array().is_some_and(|n| n.len() == 3))
    })
    .await?;

    r.step = "creating the space";
    let t_create = Instant::now();
    let (s, v) = call(
        &http,
        Method::POST,
        &format!("{n2}/api/spaces"),
        OPERATOR_KEY,
        Some(json!({"title": format!("failover round {}", r.round), "node": "n1"})),
    )
    .await?;
    ensure!(s == 201, "creating the space: {s} {v}");
    let id = v["id"].as_str().context("space id")?.to_owned();
    let host = v["host_token"].as_str().context("host token")?.to_owned();
    r.step = "starting the speakers";
    let alice = mint(&http, &n2, (&id, &host), "Alice").await?;
    let bob = mint(&http, &n3, (&id, &host), "Bob").await?;
    let speak_s = args.before + args.after + 120;
    let bin = &args.server_bin;
    let speakers = [
        speaker(
            bin,
            &[&n2, &n3],
            (&id, &alice),
            440,
            speak_s,
            &dir.join("alice.log"),
        )?,
        speaker(
            bin,
            &[&n3, &n2],
            (&id, &bob),
            660,
            speak_s,
            &dir.join("bob.log"),
        )?,
    ];
    r.step = "waiting for both speakers on n1";
    until(SETUP, "both speakers on n1", async || {
        metric_or_zero(&http, &n1, "tribune_speakers").await == 2.0
    })
    .await?;
    r.step = "waiting for a hot standby";
    until(HANG, "one hot standby, copying", async || {
        let (mut standby, mut copied) = (0.0, 0.0);
        for base in [&n2, &n3] {
            if let Some(t) = scrape(&http, base).await {
                standby += metric(&t, "tribune_cluster_standby_spaces").unwrap_or(0.0);
                copied += metric(&t, "tribune_cluster_copy_records_total").unwrap_or(0.0);
            }
        }
        standby == 1.0 && copied > 0.0
    })
    .await?;

    r.step = "starting the listeners";
    let (stop, stopped) = watch::channel(false);
    let ogg_client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let ogg = Task::spawn(ogg_listener(
        ogg_client,
        format!("{n3}/spaces/{id}/live.opus"),
        stopped.clone(),
    ));
    let mut edge = Edge::start(args, &[&n1, &n2, &n3], &dir.join("edge"))?;
    let edge_port = edge.port;
    until(Duration::from_secs(10), "nginx listening", async || {
        tokio::net::TcpStream::connect(("127.0.0.1", edge_port))
            .await
            .is_ok()
    })
    .await?;
    let hls = Task::spawn(hls_listeners(
        format!("http://127.0.0.1:{}/spaces/{id}/hls/live.m3u8", edge.port),
        args.hls_listeners,
        Duration::from_secs(120 + args.before + args.after),
        stopped,
    ));
    r.step = "listening before the kill";
    tokio::time::sleep(Duration::from_secs(args.before)).await;

    r.step = "killing n1";
    let t_kill = Instant::now();
    nodes[0].proc.kill9().await;
    r.killed_at_s = Some(secs(t_kill - t_create));

    r.step = "waiting for the takeover and both speakers";
    let mut owner: Option<usize> = None;
    let mut t_back = None;
    while t_back.is_none() && t_kill.elapsed() < HANG {
        for i in [1, 2] {
            let Some(text) = scrape(&http, &nodes[i].base).await else {
                continue;
            };
            let now = Instant::now();
            if owner.is_none()
                && metric(&text, "tribune_cluster_takeovers_total").is_some_and(|v| v >= 1.0)
            {
                owner = Some(i);
                r.new_owner = Some(format!("n{}", i + 1));
                r.takeover_s = Some(secs(now - t_kill));
            }
            if owner == Some(i)
                && t_back.is_none()
                && metric(&text, "tribune_speakers") == Some(2.0)
            {
                t_back = Some(now);
                r.speakers_back_s = Some(secs(now - t_kill));
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let Some(t_back) = t_back else {
        match r.new_owner.as_deref() {
            Some(o) => bail!("both speakers not back on {o} within {} s", HANG.as_secs()),
            None => bail!("no takeover within {} s", HANG.as_secs()),
        }
    };

    r.step = "running on after the takeover";
    let end = (t_kill + Duration::from_secs(args.after)).max(t_back + AFTER_BACK);
    tokio::time::sleep_until(end.into()).await;

    r.step = "stopping the listeners";
    let t_stop = Instant::now();
    let _ = stop.send(true);
    let heard = ogg.join(Duration::from_secs(10)).await?;
    let (parts, reports) = hls.join(Duration::from_secs(20)).await?;
    edge.stop();

    r.step = "ending the space";
    let (s, v) = call(
        &http,
        Method::POST,
        &format!("{n3}/api/spaces/{id}/end"),
        &host,
        None,
    )
    .await?;
    let t_end = Instant::now();
    ensure!(s == 200, "ending the space through n3: {s} {v}");
    let length = secs(t_end - t_create);
    r.space_s = Some(length);
    for mut c in speakers {
        c.kill9().await;
    }

    // The listeners' figures; a listener that never heard the speakers again fails the round,
    // after the recording is measured too.
    let mut problems = Vec::new();
    r.ogg_connections = Some(heard.connections);
    r.ogg_gap_s = longest_gap(&heard.audio, t_kill, t_stop).map(secs);
    r.ogg_audible_gap_s = longest_gap(&heard.audible, t_kill, t_stop).map(secs);
    if r.ogg_gap_s.is_none() {
        problems.push("the Ogg listener heard no audio before the kill".to_owned());
    }
    if !heard.audible.iter().any(|t| *t > t_back) {
        problems.push("the Ogg listener heard no speaker after the takeover".to_owned());
    }
    r.hls_parts = Some(parts.len());
    r.hls_gap_s = longest_gap(&parts, t_kill, t_stop).map(secs);
    r.hls_msn_gaps = Some(reports.iter().map(|x| x.msn_gaps).sum());
    r.hls_errors = Some(reports.iter().map(hls::Report::error_count).sum());
    if r.hls_gap_s.is_none() {
        problems.push("no HLS part through the edge before the kill".to_owned());
    }
    if !parts.iter().any(|t| *t > t_back) {
        problems.push("no HLS part through the edge after the takeover".to_owned());
    }

    r.step = "fetching the recording";
    until(
        Duration::from_secs(10),
        "the space ended, seen on n2",
        async || {
            call(
                &http,
                Method::GET,
                &format!("{n2}/api/spaces/{id}"),
                &host,
                None,
            )
            .await
            .is_ok_and(|(s, v)| s == 200 && v["state"] == "ended")
        },
    )
    .await?;
    // The owner finishes writing the recording after it answers the end (and the state reads
    // ended): it is read until it stops growing.
    let mut recording = None;
    let (mut last_len, mut last_at, mut settled_at) = (None, t_end, t_end);
    until(
        Duration::from_secs(20),
        "the recording through n2, whole",
        async || {
            if last_len.is_some() {
                tokio::time::sleep(SETTLE).await;
            }
            let Ok(resp) = http
                .get(format!("{n2}/spaces/{id}/recording.opus"))
                .send()
                .await
            else {
                return false;
            };
            if resp.status() != reqwest::StatusCode::OK {
                return false;
            }
            recording = resp.bytes().await.ok();
            let len = recording.as_ref().map(|b| b.len());
            let settled = len.is_some() && len == last_len;
            if settled {
                settled_at = last_at;
            }
            (last_len, last_at) = (len, Instant::now());
            settled
        },
    )
    .await?;
    r.recording_settled_s = Some(secs(settled_at - t_end));
    let path = dir.join("recording.opus");
    std::fs::write(&path, recording.unwrap_or_default())?;
    r.step = "analysing the recording";
    let (duration, clean, silence) = analyze_recording(&path).await?;
    r.recording_s = Some(duration);
    r.recording_clean = Some(clean);
    r.recording_missing_s = Some(length - duration);
    r.recording_silence_s = Some(silence);

    r.step = "stopping the cluster";
    for n in &mut nodes {
        n.proc.kill9().await;
    }
    drop(redis);
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_around_the_kill() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let arrivals: Vec<Instant> = [0, 100, 200, 300, 4300, 4400].map(at).to_vec();
        // Before the kill at 250 ms: the 3 s before never counts; 300 → 4300 does.
        assert_eq!(
            longest_gap(&arrivals, at(250), at(4450)),
            Some(Duration::from_millis(4000))
        );
        // Nothing after the kill: the wait runs to the end of listening.
        assert_eq!(
            longest_gap(&arrivals[..4], at(350), at(9300)),
            Some(Duration::from_millis(9000))
        );
        // Nothing before it: no figure.
        assert_eq!(
            longest_gap(&arrivals, t0 - Duration::from_secs(1), at(5000)),
            None
        );
    }

    #[test]
    fn spread_is_nearest_rank() {
        let s = Spread::of((1..=20).map(f64::from).collect());
        assert_eq!((s.count, s.p50, s.p99, s.max), (20, 10.0, 20.0, 20.0));
        assert_eq!(Spread::of(vec![]).count, 0);
    }

    #[test]
    fn silence_is_counted_in_20_ms_blocks() {
        let mut pcm = vec![0.25_f32; 48_000];
        pcm[..9600].fill(0.0);
        pcm[20_000] = 0.0;
        assert!((silence_s(&pcm) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn metrics_by_exact_name() {
        let t = "# HELP x\ntribune_speakers_total 5\ntribune_speakers 2\n";
        assert_eq!(metric(t, "tribune_speakers"), Some(2.0));
        assert_eq!(metric(t, "tribune_speaker"), None);
    }
}
