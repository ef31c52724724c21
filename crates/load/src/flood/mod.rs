//! Flood mode of `tribune loadtest`: while the listeners hold, hostile and crowd traffic hits
//! the server at stated rates, and the report says whether the show went on.
//!
//! Issue 7 asks that no flood of joins, junk requests or junk packets delays a live space,
//! interrupts its speakers or loses its recording, and that legitimate listeners still get in or
//! get an honest "wait N seconds". Each generator is one small module, all optional and all
//! bounded by `--flood-seconds` and the run's end:
//!
//! - [`joins`]: new legitimate listeners, each from a fresh source address, that open live.opus
//!   once and follow the server's instructions a few times; each ends in one [`joins::Outcome`];
//! - [`bots`]: a botnet's listeners that never solve a proof of work and hold their places;
//! - [`junk`]: malformed and abusive HTTP requests from a few attacker addresses;
//! - [`slowloris`]: connections that dribble a request head a byte at a time;
//! - [`udp`]: random datagrams and STUN binding requests at the media port;
//! - [`host`]: the host's control requests, every 250 ms, timed;
//! - [`recording`]: after the run, the space's recording checked for continuity and length.
//!
//! Attackers, joiners and the host leave from their own ranges of 127.0.0.0/8 (see
//! [`addr`]), apart from the listeners' 127.0.0.2 onwards, so per-address limits on the server
//! meet them as they would meet real clients.

pub mod bots;
pub mod host;
pub mod joins;
pub mod junk;
pub mod recording;
pub mod reply;
pub mod slowloris;
pub mod udp;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::report::Sampler;
use crate::target::Target;

/// Longest the generators may take to report once the run has ended; the rest is aborted.
const FINISH_GRACE: Duration = Duration::from_secs(15);

/// The flood's command-line flags (flattened into [`crate::Args`]).
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[group(id = "flood")]
#[command(next_help_heading = "Flood")]
pub struct Args {
    /// Seconds the floods last from their start [default: the rest of the run].
    #[arg(long)]
    pub flood_seconds: Option<f64>,
    /// Seconds after the first join the floods start (e.g. once the listeners are all in).
    #[arg(long, default_value_t = 0.0)]
    pub flood_delay: f64,
    /// Switch the server's shield on (operator API, with the --admin-key or the spawned
    /// server's key) when the floods start, and back to `auto` when they stop: the operator's
    /// answer to an attack.
    #[arg(long)]
    pub flood_shield: bool,
    /// New legitimate listeners per second during the flood, each from a fresh source address:
    /// each opens live.opus once and follows Retry-After, tickets and proofs of work a few times.
    #[arg(long, default_value_t = 0.0)]
    pub flood_joins: f64,
    /// Bot listeners per second during the flood, from a botnet's many addresses: each opens
    /// live.opus once, never solves a proof of work, and holds any place it gets.
    #[arg(long, default_value_t = 0.0)]
    pub flood_bots: f64,
    /// Junk HTTP requests per second from a few attacker addresses (random bytes, 64 KiB header
    /// lines, bad methods and paths, garbage JSON, a Content-Length with no body).
    #[arg(long, default_value_t = 0.0)]
    pub flood_junk: f64,
    /// Connections that send a request head one byte every few seconds.
    #[arg(long, default_value_t = 0)]
    pub slowloris: usize,
    /// Junk datagrams per second (random bytes and STUN binding requests) to the media port.
    #[arg(long, default_value_t = 0.0)]
    pub udp_junk: f64,
    /// The server's media (UDP) address [default: found from the server's pid, if known].
    #[arg(long)]
    pub udp: Option<SocketAddr>,
    /// Time the host's control requests every 250 ms, with this host token [without a value: a
    /// host token minted with the operator key].
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    #[serde(skip_serializing, default)]
    pub host_probe: Option<String>,
    /// Where the host's probes go: the server's control listener (`--control-listen`),
    /// `http://127.0.0.1:PORT` [default: the audience address, like everything else].
    #[arg(long)]
    pub control_url: Option<String>,
}

impl Args {
    /// Whether any flood or probe is asked for.
    pub fn any(&self) -> bool {
        self.flood_joins > 0.0
            || self.flood_bots > 0.0
            || self.flood_junk > 0.0
            || self.slowloris > 0
            || self.udp_junk > 0.0
            || self.host_probe.is_some()
    }

    /// Checks the numbers.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("--flood-joins", self.flood_joins),
            ("--flood-bots", self.flood_bots),
            ("--flood-junk", self.flood_junk),
            ("--udp-junk", self.udp_junk),
            ("--flood-seconds", self.flood_seconds.unwrap_or(0.0)),
            ("--flood-delay", self.flood_delay),
        ] {
            ensure!(
                v.is_finite() && v >= 0.0,
                "{name} must be a non-negative number"
            );
        }
        Ok(())
    }
}

/// The flood's part of the JSON report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Seconds the floods ran.
    pub seconds: f64,
    /// The join flood.
    pub joins: Option<joins::Report>,
    /// The bot flood.
    pub bots: Option<bots::Report>,
    /// The junk-request flood.
    pub junk: Option<junk::Report>,
    /// The slow request heads.
    pub slowloris: Option<slowloris::Report>,
    /// The junk datagrams.
    pub udp: Option<udp::Report>,
    /// The host's control requests.
    pub host_probe: Option<host::Report>,
    /// Largest server RSS sampled over the run, KiB (`null` without a watched server).
    pub server_rss_kib_max: Option<u64>,
    /// `tribune_mixer_late_ticks_total` over the run (`null` if /metrics could not be read).
    pub mixer_late_ticks: Option<u64>,
    /// The space's recording after the run (`null` without a space).
    pub recording: Option<recording::Report>,
}

/// What every generator needs to know.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `http://HOST:PORT` of the server.
    pub base: String,
    /// The server's HTTP address.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// The space.
    pub space: String,
    /// When the floods start (the first join).
    pub start: Instant,
    /// When they stop sending.
    pub stop: Instant,
    /// The run's end: nothing of the flood goes on past it but waiting for a last answer.
    pub end: Instant,
    /// How long an answer may take before it counts as none.
    pub join_timeout: Duration,
}

impl Ctx {
    /// The live stream's path.
    pub fn live_path(&self) -> String {
        format!("/spaces/{}/live.opus", self.space)
    }
}

/// Running generators.
pub struct Running {
    ctx: Ctx,
    metrics_key: Option<String>,
    late_ticks_at_start: Option<u64>,
    joins: Option<tokio::task::JoinHandle<joins::Report>>,
    bots: Option<tokio::task::JoinHandle<bots::Report>>,
    junk: Option<tokio::task::JoinHandle<junk::Report>>,
    slowloris: Option<tokio::task::JoinHandle<slowloris::Report>>,
    udp: Option<tokio::task::JoinHandle<udp::Report>>,
    host: Option<tokio::task::JoinHandle<host::Report>>,
}

/// Starts what `args` ask for against `target` (a tribune space), sending from `start` to the
/// flood's end and stopping everything by `end`. `None` when nothing is asked for.
pub async fn start(
    args: &Args,
    target: &Target,
    start: Instant,
    end: Instant,
    join_timeout: Duration,
) -> Result<Option<Running>> {
    if !args.any() {
        return Ok(None);
    }
    args.check()?;
    let (Some(base), Some(space), Some(ogg)) = (&target.base, &target.space, &target.ogg) else {
        anyhow::bail!("the flood options need a tribune space (--space, --create or --spawn)");
    };
    let start = (start + Duration::from_secs_f64(args.flood_delay)).min(end);
    let stop = match args.flood_seconds {
        Some(s) => (start + Duration::from_secs_f64(s)).min(end),
        None => end,
    };
    let ctx = Ctx {
        base: base.clone(),
        addr: ogg.addr,
        host: ogg.host.clone(),
        space: space.clone(),
        start,
        stop,
        end,
        join_timeout,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let host_token = match args.host_probe.as_deref() {
        None => None,
        Some("") => {
            let key = target
                .key
                .as_deref()
                .context("--host-probe without a token needs --admin-key, --create or --spawn")?;
            Some(host::mint(&http, base, space, key).await?)
        }
        Some(t) => Some(t.to_owned()),
    };
    let udp_addr = match (args.udp, args.udp_junk > 0.0) {
        (_, false) => None,
        (Some(a), true) => Some(a),
        (None, true) => {
            let pid = target
                .server_pid
                .context("--udp-junk needs --udp ADDR (or a known server pid)")?;
            Some(udp::find_port(pid).with_context(|| format!("the UDP port of pid {pid}"))?)
        }
    };
    if let Some(a) = udp_addr {
        ensure!(
            a.ip().is_loopback(),
            "--udp {a}: loadtest stays on 127.0.0.0/8"
        );
    }
    let metrics_key = target.key.clone();
    if args.flood_shield {
        let key = target
            .key
            .clone()
            .context("--flood-shield needs --admin-key, --create or --spawn")?;
        tokio::spawn(switch_shield(http.clone(), base.clone(), key, start, stop));
    }
    let late_ticks_at_start = late_ticks(&http, base, metrics_key.as_deref()).await;
    let spawn = |on: bool| on.then_some(());
    Ok(Some(Running {
        joins: spawn(args.flood_joins > 0.0)
            .map(|()| tokio::spawn(joins::run(ctx.clone(), args.flood_joins))),
        bots: spawn(args.flood_bots > 0.0)
            .map(|()| tokio::spawn(bots::run(ctx.clone(), args.flood_bots))),
        junk: spawn(args.flood_junk > 0.0)
            .map(|()| tokio::spawn(junk::run(ctx.clone(), args.flood_junk))),
        slowloris: spawn(args.slowloris > 0)
            .map(|()| tokio::spawn(slowloris::run(ctx.clone(), args.slowloris))),
        udp: udp_addr.map(|a| tokio::spawn(udp::run(ctx.clone(), a, args.udp_junk))),
        host: host_token.map(|t| {
            let mut hctx = ctx.clone();
            if let Some(c) = &args.control_url {
                hctx.base = c.trim_end_matches('/').to_owned();
            }
            // On a thread and runtime of its own, so that its timings are the server's and not
            // the wait behind the load generator's thousands of tasks.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let spawned = std::thread::Builder::new()
                .name("host-probe".into())
                .spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        let _ = tx.send(rt.block_on(host::run(hctx, t)));
                    }
                });
            tokio::spawn(async move {
                match spawned {
                    Ok(_) => rx.await.unwrap_or_default(),
                    Err(_) => host::Report::default(),
                }
            })
        }),
        ctx,
        metrics_key,
        late_ticks_at_start,
    }))
}

impl Running {
    /// Waits for every generator (aborting what has not reported shortly after the run's end)
    /// and reports; the recording is checked separately ([`recording::check`]).
    pub async fn finish(self, sampler: Option<&Sampler>) -> Report {
        let by = self.ctx.end.max(Instant::now()) + FINISH_GRACE;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok();
        let late_ticks_now = match &http {
            Some(h) => late_ticks(h, &self.ctx.base, self.metrics_key.as_deref()).await,
            None => None,
        };
        Report {
            seconds: self
                .ctx
                .stop
                .saturating_duration_since(self.ctx.start)
                .as_secs_f64(),
            joins: join(self.joins, by).await,
            bots: join(self.bots, by).await,
            junk: join(self.junk, by).await,
            slowloris: join(self.slowloris, by).await,
            udp: join(self.udp, by).await,
            host_probe: join(self.host, by).await,
            server_rss_kib_max: sampler.and_then(|s| s.samples.iter().map(|s| s.2).max()),
            mixer_late_ticks: late_ticks_now
                .zip(self.late_ticks_at_start)
                .map(|(now, then)| now.saturating_sub(then)),
            recording: None,
        }
    }
}

/// The flood's figures as a markdown table, with the speakers' received audio.
pub fn table(f: &Report, speakers: &crate::speakers::Report) -> String {
    let ms = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1}"));
    let mut rows: Vec<(String, String)> =
        vec![("flood seconds".into(), format!("{:.1}", f.seconds))];
    if let Some(j) = &f.joins {
        rows.push((
            format!(
                "flood joins ({}/s): started / audio / waiting / bare error / hang",
                j.rate
            ),
            format!(
                "{} / {} / {} / {} / {}",
                j.started, j.audio, j.waiting, j.bare_error, j.hang
            ),
        ));
        rows.push((
            "flood joins to audio p50 / p99, ms".into(),
            format!(
                "{} / {}",
                ms(j.audio_latency_ms.p50),
                ms(j.audio_latency_ms.p99)
            ),
        ));
    }
    if let Some(b) = &f.bots {
        let refused: Vec<String> = b.refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
        rows.push((
            format!("bots ({}/s): started / held a place", b.rate),
            format!("{} / {}", b.started, b.held),
        ));
        rows.push(("bots refused".into(), refused.join(", ")));
    }
    if let Some(j) = &f.junk {
        let outcomes: Vec<String> = j.outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        rows.push((
            format!("junk requests ({}/s): sent / skipped", j.rate),
            format!("{} / {}", j.sent, j.skipped),
        ));
        rows.push(("junk answers".into(), outcomes.join(", ")));
    }
    if let Some(s) = &f.slowloris {
        rows.push((
            "slowloris: opened / closed by server / open at end".into(),
            format!("{} / {} / {}", s.opened, s.closed_by_server, s.open_at_end),
        ));
    }
    if let Some(u) = &f.udp {
        rows.push((
            format!("junk datagrams ({}/s): sent / dropped", u.rate),
            format!("{} / {}", u.sent, u.dropped),
        ));
    }
    if let Some(h) = &f.host_probe {
        rows.push((
            "host probes: made / ok".into(),
            format!("{} / {}", h.probes, h.ok),
        ));
        rows.push((
            "host probe p50 / p99 / max, ms".into(),
            format!(
                "{} / {} / {}",
                ms(h.latency_ms.p50),
                ms(h.latency_ms.p99),
                ms(h.latency_ms.max)
            ),
        ));
    }
    if speakers.target > 0 {
        rows.push((
            "speakers: mix-minus packets received / lost".into(),
            format!("{} / {}", speakers.received_packets, speakers.lost_packets),
        ));
    }
    rows.push((
        "mixer late ticks".into(),
        f.mixer_late_ticks.map_or("–".into(), |n| n.to_string()),
    ));
    rows.push((
        "server RSS max, MiB".into(),
        f.server_rss_kib_max
            .map_or("–".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
    ));
    if let Some(r) = &f.recording {
        rows.push((
            "recording: seconds / must cover / gaps / ok".into(),
            format!(
                "{:.1} / {:.1} / {} / {}",
                r.duration_s,
                r.must_cover_s,
                r.seq_gaps + r.granule_gaps + r.sync_losses + r.corrupt,
                r.ok
            ),
        ));
    }
    crate::report::two_columns("flood", rows)
}

/// Switches the shield on at `on` and back to `auto` at `off`, through the operator API.
async fn switch_shield(
    http: reqwest::Client,
    base: String,
    key: String,
    on: Instant,
    off: Instant,
) {
    for (at, mode) in [(on, "on"), (off, "auto")] {
        tokio::time::sleep_until(at).await;
        let r = http
            .post(format!("{base}/api/admin/shield"))
            .bearer_auth(&key)
            .json(&serde_json::json!({ "mode": mode }))
            .send()
            .await;
        if !r.is_ok_and(|r| r.status().is_success()) {
            eprintln!("warning: could not switch the shield {mode}");
        }
    }
}

/// The task's report, or `None` if it did not report by `by` (then it is aborted) or panicked.
async fn join<T>(task: Option<tokio::task::JoinHandle<T>>, by: Instant) -> Option<T> {
    let mut task = task?;
    match tokio::time::timeout_at(by, &mut task).await {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => {
            eprintln!("warning: a flood generator failed: {e}");
            None
        }
        Err(_) => {
            task.abort();
            eprintln!("warning: a flood generator did not stop in time");
            None
        }
    }
}

/// `tribune_mixer_late_ticks_total` from the server's /metrics (summed over labels).
async fn late_ticks(http: &reqwest::Client, base: &str, key: Option<&str>) -> Option<u64> {
    let mut req = http.get(format!("{base}/metrics"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let text = req
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    metric_sum(&text, "tribune_mixer_late_ticks_total")
}

/// The sum of a metric's samples in Prometheus text, `None` if it has none.
pub fn metric_sum(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0) += v as u64;
        }
    }
    found
}

/// Source addresses: each kind of client has its own range of 127.0.0.0/8, away from the
/// listeners' 127.0.0.2 onwards.
pub mod addr {
    use super::Ipv4Addr;

    /// The host's address (a host on its own connection, as a real one would be).
    pub const HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    /// Attacker addresses sending junk requests, slow heads and junk datagrams.
    pub const ATTACKERS: usize = 4;

    /// Joiner `i`'s fresh address: 127.64.0.1 onwards (12 million of them before they
    /// repeat), never a .0 or .255.
    pub fn joiner(i: usize) -> Ipv4Addr {
        let n = (i % (192 * 256 * 254)) as u32;
        let (hi, lo) = (n / 254, n % 254 + 1);
        Ipv4Addr::from_bits((127 << 24) | (((64 << 8) + hi) << 8) | lo)
    }

    /// Attacker `i` of a generator whose range is `127.NET.0.x`.
    pub fn attacker(net: u8, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, net, 0, 1 + (i % ATTACKERS) as u8)
    }
}

/// A small, fast pseudo-random generator (SplitMix64): junk needs variety, not quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and `salt`.
    pub fn new(salt: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// Paces `rate` events per second from `start` to `stop`: the instant of event `i`, or `None`
/// once past `stop`.
pub fn paced(start: Instant, stop: Instant, rate: f64, i: u64) -> Option<Instant> {
    if rate <= 0.0 {
        return None;
    }
    let at = start + Duration::from_secs_f64(i as f64 / rate);
    (at < stop).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_over_labels() {
        let text = "# HELP x\ntribune_mixer_late_ticks_total 3\n\
                    tribune_mixer_late_ticks_total{space=\"a\"} 4\n\
                    tribune_mixer_late_ticks_total_other 100\n";
        assert_eq!(metric_sum(text, "tribune_mixer_late_ticks_total"), Some(7));
        assert_eq!(metric_sum(text, "nothing"), None);
    }

    #[test]
    fn joiners_get_distinct_loopback_addresses() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            let a = addr::joiner(i);
            assert!(a.is_loopback(), "{a}");
            assert!(a.octets()[3] != 0 && a.octets()[3] != 255, "{a}");
            assert!(a.octets()[1] >= 64, "{a}: away from the listeners");
            assert!(seen.insert(a), "{a} twice");
        }
    }

    #[test]
    fn pacing_stops_at_the_end() {
        let start = Instant::now();
        let stop = start + Duration::from_secs(2);
        assert_eq!(paced(start, stop, 10.0, 0), Some(start));
        assert_eq!(
            paced(start, stop, 10.0, 5),
            Some(start + Duration::from_millis(500))
        );
        assert_eq!(paced(start, stop, 10.0, 20), None);
        assert_eq!(paced(start, stop, 0.0, 0), None);
    }
}
