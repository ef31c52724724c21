//! `events`: what the space's event stream (server-sent events) costs the server per subscriber
//! and per event delivered.
//!
//! One server, one space, one `tribune speak` tone (so a `levels` event goes out about 4×/s), and
//! a driver posting reactions from many joined participants (so a `reactions` event goes out every
//! 250 ms). The baseline is the server with its speaker and the driver, and no subscribers. Then N
//! raw HTTP/1.1 subscribers open `GET /api/spaces/{id}/events` (token in `Authorization`) (spread over source
//! addresses, a bounded number of connects in flight), and once every one has its `snapshot` the
//! server is watched for a steady window while the events keep coming.
//!
//! Every subscriber de-chunks its body, splits it into SSE frames and logs each event (`id:`, type,
//! a hash of the frame). Reported: events delivered (per second, and server CPU per 1,000
//! delivered above the baseline), RSS above the baseline per subscriber, subscribers held and
//! dropped, and whether every subscriber saw the same, gapless sequence of event ids.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::harness::{SETUP_LIMIT, Server, Space};
use crate::net;
use crate::procstat::{self, Window};
use crate::report::{self, f};

/// Read buffer of one subscriber: events are a few hundred bytes.
const READ_BUF: usize = 4096;
/// Seconds at the end of the window in which a subscriber must have got an event to count as held.
const HOLD_SECONDS: usize = 2;
/// After the window, how long subscribers may take to catch up with the last event seen.
const SETTLE: Duration = Duration::from_secs(5);
/// Reactions the driver cycles through (all in the server's list).
const EMOJI: &[&str] = &["👏", "🔥", "❤️", "🎉", "😂", "💯"];
/// Event types counted separately (the index is the `kind` of a log entry; the last is "other").
const KINDS: &[&str] = &["levels", "reactions", "listeners", "other"];

/// Arguments of `events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// Event-stream subscribers to open (each is one fd here and one in the server).
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Listener tokens (from /join) the subscribers share, round robin.
    #[arg(long, default_value_t = 1)]
    subscriber_tokens: usize,
    /// Length of the steady-state window, seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Length of the baseline window (speaker and reactions on, no subscribers), seconds.
    #[arg(long, default_value_t = 5)]
    baseline_seconds: u64,
    /// Joined participants whose tokens post the reactions (each is limited to 5/s by the server).
    #[arg(long, default_value_t = 200)]
    reactors: usize,
    /// Reactions posted per second in all (round robin over the reactors).
    #[arg(long, default_value_t = 40.0)]
    reaction_rate: f64,
    /// Connects (and snapshots) in flight at once while the subscribers join.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Longest the subscribers may take to all get their snapshot, seconds.
    #[arg(long, default_value_t = 90)]
    join_timeout: u64,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Where a subscriber is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum State {
    Joining = 0,
    /// Has its snapshot.
    Streaming = 1,
    /// Never got its snapshot.
    Failed = 2,
    /// Had its snapshot, then the server closed the connection or it broke.
    Dropped = 3,
}

/// One event as a subscriber got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: u64,
    /// Hash of the whole frame, to check that everyone got the same bytes for an id.
    hash: u64,
    /// Index into [`KINDS`].
    kind: u8,
}

/// One subscriber, shared between its task and the reporter.
#[derive(Debug, Default)]
struct Slot {
    state: AtomicU8,
    /// Events (frames with an `id:`, not the snapshot) received.
    events: AtomicU64,
    /// Bytes received after the response head (including chunked-encoding framing).
    bytes: AtomicU64,
    /// Id of the snapshot (the last event it already contains).
    snapshot_id: AtomicU64,
    /// Id of the last event received.
    last_id: AtomicU64,
    /// Every event received, in order.
    log: Mutex<Vec<Entry>>,
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

/// What the reaction driver did over the whole run.
#[derive(Debug, Default, Serialize)]
pub struct DriverCounts {
    pub sent: u64,
    /// 204.
    pub accepted: u64,
    /// 429.
    pub rate_limited: u64,
    /// Other statuses and transport errors.
    pub failed: u64,
    /// Ticks skipped because too many posts were in flight.
    pub skipped: u64,
}

#[derive(Default)]
struct Driver {
    stop: AtomicBool,
    sent: AtomicU64,
    accepted: AtomicU64,
    rate_limited: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub subscribers: usize,
    pub subscriber_tokens: usize,
    pub reactors: usize,
    pub reaction_rate: f64,
    pub nofile_limit: u64,
    pub baseline: Window,
    pub steady: Window,
    /// Seconds from the first connect until every subscriber had its snapshot (or failed).
    pub join_seconds: f64,
    pub failed_to_join: usize,
    /// Subscribers that got events in the last seconds of the window.
    pub held: usize,
    /// Subscribers whose stream ended during the run.
    pub dropped: usize,
    /// The server's `tribune_events_subscribers` gauge at the end of the window.
    pub server_subscribers_gauge: f64,
    /// The server's `tribune_events_dropped_slow_total` at the end of the window.
    pub server_dropped_slow: f64,
    /// Distinct events (ids) the server published during the window.
    pub events_published: u64,
    pub events_published_per_second: f64,
    /// Events published during the window, by type.
    pub published_by_type: BTreeMap<String, u64>,
    /// Events received by all subscribers together during the window.
    pub events_delivered: u64,
    pub events_delivered_per_second: f64,
    /// Mean bytes on the wire per event delivered (chunked framing included).
    pub bytes_per_event: f64,
    pub cores_above_baseline: f64,
    /// Server CPU seconds above the baseline per 1,000 events delivered.
    pub cpu_seconds_per_1000_events: f64,
    /// The same without subtracting the baseline (an upper bound).
    pub cpu_seconds_per_1000_events_gross: f64,
    pub rss_kib_per_subscriber: f64,
    /// Kernel TCP buffer memory per subscriber, both ends of the loopback connection.
    pub tcp_kib_per_subscriber: f64,
    /// Subscribers whose event sequences were compared.
    pub sequence_checked: usize,
    /// Subscribers with a gap, a duplicate, a different frame for an id, or a missing tail.
    pub sequence_mismatches: usize,
    pub first_mismatch: Option<String>,
    /// The last event id every subscriber was expected to reach.
    pub sequence_last_id: u64,
    pub reactions: DriverCounts,
    /// The load generator's own CPU over the steady window.
    pub client_cores: f64,
    pub first_error: Option<String>,
}

/// Runs the benchmark.
pub async fn run(args: Args, nofile_limit: u64) -> Result<()> {
    ensure!(args.subscribers > 0, "--subscribers must be positive");
    ensure!(
        args.seconds > HOLD_SECONDS as u64,
        "--seconds must exceed {HOLD_SECONDS} (the hold check window)"
    );
    ensure!(
        args.reaction_rate > 0.0 && args.reactors > 0,
        "--reaction-rate and --reactors must be positive"
    );
    ensure!(
        args.reaction_rate / args.reactors as f64 <= 4.0,
        "more than 4 reactions/s per reactor would hit the server's limit of 5/s"
    );
    let server = Server::start(&args.server_bin, &[])?;
    let space = server.create_space("events").await?;
    let run_bound =
        SETUP_LIMIT.as_secs() + args.baseline_seconds + args.join_timeout + args.seconds;
    let _speaker = server.speak(&space, "tone", 440, run_bound + 60).await?;
    server.wait_metric("tribune_speakers", 1.0).await?;

    eprintln!(
        "joining {} reactors and {} subscriber tokens",
        args.reactors, args.subscriber_tokens
    );
    let mut reactors = Vec::with_capacity(args.reactors);
    for i in 0..args.reactors {
        reactors.push(server.join(&space, &format!("reactor {i}")).await?);
    }
    let mut tokens = Vec::with_capacity(args.subscriber_tokens.max(1));
    for i in 0..args.subscriber_tokens.max(1) {
        tokens.push(server.join(&space, &format!("subscriber {i}")).await?);
    }
    let driver = Arc::new(Driver::default());
    let driver_task = tokio::spawn(drive(
        driver.clone(),
        format!("{}/api/spaces/{}/reactions", server.base, space.id),
        reactors,
        args.reaction_rate,
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let pid = server.pid();
    eprintln!(
        "baseline: {} s with the speaker and the reactions, no subscribers",
        args.baseline_seconds
    );
    let baseline = procstat::watch(pid, Duration::from_secs(args.baseline_seconds), || {}).await?;
    let tcp_before = procstat::tcp_mem_kib()?;

    eprintln!("joining {} subscribers", args.subscribers);
    let (slots, tasks, first_error, join_seconds) = open(&args, &server, &space, &tokens).await?;
    let mut tasks = tasks;
    // Let the snapshots drain before the window opens.
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!("steady state: {} s", args.seconds);
    let counts = |slots: &[Slot]| {
        slots
            .iter()
            .map(|s| (s.events.load(Relaxed), s.bytes.load(Relaxed)))
            .collect::<Vec<_>>()
    };
    let max_last_id = |slots: &[Slot]| {
        slots
            .iter()
            .map(|s| s.last_id.load(Relaxed))
            .max()
            .unwrap_or(0)
    };
    let tps = procstat::clock_ticks_per_second();
    let own_start = procstat::sample(std::process::id(), tps)?;
    let start = counts(&slots);
    let first_id = max_last_id(&slots);
    let mut per_second = Vec::new();
    let steady = procstat::watch(pid, Duration::from_secs(args.seconds), || {
        per_second.push(counts(&slots))
    })
    .await?;
    let own_end = procstat::sample(std::process::id(), tps)?;
    let last_id = max_last_id(&slots);
    let tcp_after = procstat::tcp_mem_kib()?;
    let metrics = server.metrics().await?;

    // Everyone still streaming should reach the last event seen by anyone.
    let settle_end = Instant::now() + SETTLE;
    while Instant::now() < settle_end
        && slots
            .iter()
            .any(|s| s.state() == State::Streaming && s.last_id.load(Relaxed) < last_id)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver.stop.store(true, Relaxed);
    tasks.shutdown().await;
    let _ = driver_task.await;

    let end = per_second.last().cloned().unwrap_or_default();
    let hold_from = &per_second[per_second.len().saturating_sub(HOLD_SECONDS + 1)];
    let held = (0..args.subscribers)
        .filter(|&i| slots[i].state() == State::Streaming && end[i].0 > hold_from[i].0)
        .count();
    let count = |state| slots.iter().filter(|s| s.state() == state).count();
    let (events_delivered, bytes): (u64, u64) = end
        .iter()
        .zip(&start)
        .map(|(e, s)| (e.0 - s.0, e.1 - s.1))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let check = check_sequences(&slots, last_id);
    let mut published_by_type = BTreeMap::new();
    for (id, kind) in &check.kinds {
        if *id > first_id && *id <= last_id {
            *published_by_type
                .entry(KINDS[*kind as usize].to_owned())
                .or_insert(0) += 1;
        }
    }
    let events_published = last_id.saturating_sub(first_id);
    let n = args.subscribers as f64;
    let wall = steady.wall_seconds;
    let cores_above_baseline = steady.cores - baseline.cores;
    let per_1000 = |cpu: f64| {
        if events_delivered == 0 {
            f64::NAN
        } else {
            cpu / events_delivered as f64 * 1000.0
        }
    };
    let report = Report {
        subscribers: args.subscribers,
        subscriber_tokens: tokens.len(),
        reactors: args.reactors,
        reaction_rate: args.reaction_rate,
        nofile_limit,
        baseline,
        steady,
        join_seconds,
        failed_to_join: count(State::Failed),
        held,
        dropped: count(State::Dropped),
        server_subscribers_gauge: metrics.get("tribune_events_subscribers")?,
        server_dropped_slow: metrics.get("tribune_events_dropped_slow_total")?,
        events_published,
        events_published_per_second: events_published as f64 / wall,
        published_by_type,
        events_delivered,
        events_delivered_per_second: events_delivered as f64 / wall,
        bytes_per_event: bytes as f64 / events_delivered.max(1) as f64,
        cores_above_baseline,
        cpu_seconds_per_1000_events: per_1000(cores_above_baseline * wall),
        cpu_seconds_per_1000_events_gross: per_1000(steady.cpu_seconds),
        rss_kib_per_subscriber: (steady.rss_kib_mean - baseline.rss_kib_mean) / n,
        tcp_kib_per_subscriber: (tcp_after as f64 - tcp_before as f64) / n,
        sequence_checked: check.checked,
        sequence_mismatches: check.mismatches,
        first_mismatch: check.first,
        sequence_last_id: last_id,
        reactions: DriverCounts {
            sent: driver.sent.load(Relaxed),
            accepted: driver.accepted.load(Relaxed),
            rate_limited: driver.rate_limited.load(Relaxed),
            failed: driver.failed.load(Relaxed),
            skipped: driver.skipped.load(Relaxed),
        },
        client_cores: (own_end.cpu - own_start.cpu).as_secs_f64()
            / (own_end.at - own_start.at).as_secs_f64(),
        first_error: first_error.lock().expect("not poisoned").clone(),
    };
    print(&report);
    report::json(args.json.as_deref(), &report)
}

type Opened = (Arc<Vec<Slot>>, JoinSet<()>, Arc<Mutex<Option<String>>>, f64);

/// Opens every subscriber and waits until each has its snapshot (or failed).
async fn open(args: &Args, server: &Server, space: &Space, tokens: &[String]) -> Result<Opened> {
    let slots: Arc<Vec<Slot>> = Arc::new((0..args.subscribers).map(|_| Slot::default()).collect());
    let first_error = Arc::new(Mutex::new(None));
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let join_start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.subscribers {
        let (slots, permits, first_error) = (slots.clone(), permits.clone(), first_error.clone());
        let token = &tokens[i % tokens.len()];
        let request = net::get_request_bearer(
            "127.0.0.1",
            &format!("/api/spaces/{}/events", space.id),
            token,
        );
        let addr = server.http_addr;
        tasks.spawn(async move {
            let slot = &slots[i];
            if let Err(e) = subscribe(i, addr, &request, slot, &permits).await {
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
    let joined = |slots: &[Slot]| slots.iter().filter(|s| s.state() != State::Joining).count();
    let deadline = join_start + Duration::from_secs(args.join_timeout);
    while joined(&slots) < args.subscribers {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} subscribers got their snapshot in {:?}; first error: {:?}",
                joined(&slots),
                args.subscribers,
                deadline - join_start,
                first_error.lock().expect("not poisoned")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let join_seconds = join_start.elapsed().as_secs_f64();
    Ok((slots, tasks, first_error, join_seconds))
}

/// One subscriber: connect, request the stream, log every event until the connection ends.
async fn subscribe(
    i: usize,
    server: SocketAddr,
    request: &[u8],
    slot: &Slot,
    permits: &Semaphore,
) -> Result<()> {
    let mut permit = Some(permits.acquire().await?);
    let mut stream = net::connect(i, server).await?;
    stream.write_all(request).await?;
    let mut buf = Vec::with_capacity(READ_BUF);
    let head = net::read_head(&mut stream, &mut buf).await?;
    ensure!(head.status == 200, "events answered {}", head.status);
    ensure!(head.chunked, "the event stream is not chunked");
    let mut body = Body::default();
    slot.bytes.fetch_add((buf.len() - head.len) as u64, Relaxed);
    body.feed(&buf[head.len..], slot)?;
    buf.resize(READ_BUF, 0);
    loop {
        // The connect slot is held until the snapshot is in: that bounds the join's work in flight.
        if permit.is_some() && slot.state() == State::Streaming {
            permit = None;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the server ended the stream");
        }
        slot.bytes.fetch_add(n as u64, Relaxed);
        body.feed(&buf[..n], slot)?;
    }
}

/// The body of one event stream: chunked decoding, then SSE frames.
#[derive(Debug, Default)]
struct Body {
    chunks: net::Dechunk,
    /// Decoded bytes not yet split into frames.
    pending: Vec<u8>,
}

impl Body {
    fn feed(&mut self, input: &[u8], slot: &Slot) -> Result<()> {
        let pending = &mut self.pending;
        let done = self.chunks.feed(input, |b| pending.extend_from_slice(b))?;
        let mut at = 0;
        while let Some(end) = find(&self.pending[at..], b"\n\n") {
            let frame = &self.pending[at..at + end + 2];
            at += end + 2;
            let parsed = parse_frame(frame)?;
            if parsed.event == "snapshot" {
                ensure!(
                    slot.state() == State::Joining,
                    "a second snapshot in the stream"
                );
                slot.snapshot_id.store(parsed.id.unwrap_or(0), Relaxed);
                slot.last_id.store(parsed.id.unwrap_or(0), Relaxed);
                slot.state.store(State::Streaming as u8, Relaxed);
                continue;
            }
            let Some(id) = parsed.id else {
                continue; // a comment (keep-alive)
            };
            ensure!(
                slot.state() == State::Streaming,
                "event {id} before the snapshot"
            );
            let mut h = DefaultHasher::new();
            frame.hash(&mut h);
            let kind = KINDS
                .iter()
                .position(|k| *k == parsed.event)
                .unwrap_or(KINDS.len() - 1) as u8;
            slot.log.lock().expect("not poisoned").push(Entry {
                id,
                hash: h.finish(),
                kind,
            });
            slot.last_id.store(id, Relaxed);
            slot.events.fetch_add(1, Relaxed);
        }
        self.pending.drain(..at);
        if done {
            bail!("the server ended the stream (last chunk)");
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The fields of one SSE frame that matter here.
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    id: Option<u64>,
    /// Empty for a comment-only frame.
    event: &'a str,
}

fn parse_frame(frame: &[u8]) -> Result<Parsed<'_>> {
    let text = std::str::from_utf8(frame).context("event frame is not UTF-8")?;
    let mut parsed = Parsed {
        id: None,
        event: "",
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            parsed.id = Some(
                v.trim()
                    .parse()
                    .with_context(|| format!("bad id line {line:?}"))?,
            );
        } else if let Some(v) = line.strip_prefix("event:") {
            parsed.event = v.trim();
        }
    }
    Ok(parsed)
}

/// The outcome of comparing every subscriber's events.
struct Check {
    checked: usize,
    mismatches: usize,
    first: Option<String>,
    /// The type of every id seen by anyone.
    kinds: BTreeMap<u64, u8>,
}

/// Every subscriber that got its snapshot must have exactly the ids after it, one by one (the hub
/// numbers every event it publishes), with the same frame for an id as everyone else; one still
/// streaming must also have reached `last_id`. A dropped one is checked up to where it ended.
fn check_sequences(slots: &[Slot], last_id: u64) -> Check {
    let logs: Vec<_> = slots
        .iter()
        .map(|s| s.log.lock().expect("not poisoned"))
        .collect();
    let mut reference: BTreeMap<u64, (u64, u8)> = BTreeMap::new();
    let mut check = Check {
        checked: 0,
        mismatches: 0,
        first: None,
        kinds: BTreeMap::new(),
    };
    let mismatch = |check: &mut Check, i: usize, what: String| {
        check.mismatches += 1;
        check.first.get_or_insert(format!("subscriber {i}: {what}"));
    };
    for (i, (slot, log)) in slots.iter().zip(&logs).enumerate() {
        let state = slot.state();
        if state == State::Joining || state == State::Failed {
            continue;
        }
        check.checked += 1;
        let mut expected = slot.snapshot_id.load(Relaxed) + 1;
        let mut bad = None;
        for e in log.iter() {
            if e.id != expected {
                bad = Some(format!("got id {} where {expected} was due", e.id));
                break;
            }
            let (hash, _) = *reference.entry(e.id).or_insert((e.hash, e.kind));
            if hash != e.hash {
                bad = Some(format!("event {} differs from another subscriber's", e.id));
                break;
            }
            expected += 1;
        }
        if bad.is_none() && slot.state() == State::Streaming && expected <= last_id {
            bad = Some(format!(
                "stopped at id {} of {last_id}",
                expected.saturating_sub(1)
            ));
        }
        if let Some(what) = bad {
            mismatch(&mut check, i, what);
        }
    }
    check.kinds = reference.into_iter().map(|(id, (_, k))| (id, k)).collect();
    check
}

/// Posts reactions at `rate` per second, round robin over `tokens`, until told to stop.
async fn drive(driver: Arc<Driver>, url: String, tokens: Vec<String>, rate: f64) {
    let client = reqwest::Client::new();
    let in_flight = Arc::new(Semaphore::new(32));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = 0usize;
    while !driver.stop.load(Relaxed) {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            driver.skipped.fetch_add(1, Relaxed);
            continue;
        };
        let req = client
            .post(&url)
            .bearer_auth(&tokens[n % tokens.len()])
            .json(&serde_json::json!({ "emoji": EMOJI[n % EMOJI.len()] }));
        n += 1;
        driver.sent.fetch_add(1, Relaxed);
        let driver = driver.clone();
        tokio::spawn(async move {
            let counter = match req.send().await.map(|r| r.status().as_u16()) {
                Ok(204) => &driver.accepted,
                Ok(429) => &driver.rate_limited,
                _ => &driver.failed,
            };
            counter.fetch_add(1, Relaxed);
            drop(permit);
        });
    }
}

fn print(r: &Report) {
    let by_type = r
        .published_by_type
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = [
        ("subscribers (requested)", r.subscribers.to_string()),
        ("join time, s", f(r.join_seconds, 1)),
        ("failed to join", r.failed_to_join.to_string()),
        ("held at end (still receiving)", r.held.to_string()),
        ("dropped during run", r.dropped.to_string()),
        (
            "server subscribers gauge / dropped slow",
            format!("{} / {}", r.server_subscribers_gauge, r.server_dropped_slow),
        ),
        (
            "events published (per s)",
            format!(
                "{} ({})",
                r.events_published,
                f(r.events_published_per_second, 2)
            ),
        ),
        ("published by type", by_type),
        ("events delivered", r.events_delivered.to_string()),
        (
            "events delivered per s",
            f(r.events_delivered_per_second, 0),
        ),
        ("bytes per event delivered", f(r.bytes_per_event, 0)),
        ("server cores, baseline", f(r.baseline.cores, 3)),
        ("server cores, steady", f(r.steady.cores, 3)),
        (
            "server CPU s per 1,000 events delivered",
            f(r.cpu_seconds_per_1000_events, 5),
        ),
        (
            "  same, without subtracting the baseline",
            f(r.cpu_seconds_per_1000_events_gross, 5),
        ),
        (
            "server RSS baseline / steady, MiB",
            format!(
                "{} / {}",
                f(r.baseline.rss_kib_mean / 1024.0, 1),
                f(r.steady.rss_kib_mean / 1024.0, 1)
            ),
        ),
        ("RSS per subscriber, KiB", f(r.rss_kib_per_subscriber, 2)),
        (
            "kernel TCP mem per subscriber (both ends), KiB",
            f(r.tcp_kib_per_subscriber, 2),
        ),
        (
            "sequence mismatches / checked",
            format!("{} / {}", r.sequence_mismatches, r.sequence_checked),
        ),
        (
            "reactions sent / 204 / 429 / failed",
            format!(
                "{} / {} / {} / {}",
                r.reactions.sent,
                r.reactions.accepted,
                r.reactions.rate_limited,
                r.reactions.failed
            ),
        ),
        ("load generator cores", f(r.client_cores, 3)),
    ];
    report::table(&format!("events: {} subscribers", r.subscribers), &rows);
    if let Some(e) = &r.first_mismatch {
        println!("\nfirst sequence mismatch: {e}");
    }
    if let Some(e) = &r.first_error {
        println!("\nfirst subscriber error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames() {
        assert_eq!(
            parse_frame(b"id: 7\nevent: levels\ndata: {\"a\":1}\n\n").unwrap(),
            Parsed {
                id: Some(7),
                event: "levels"
            }
        );
        assert_eq!(
            parse_frame(b": keep-alive\n\n").unwrap(),
            Parsed {
                id: None,
                event: ""
            }
        );
    }

    fn chunk(s: &str) -> Vec<u8> {
        format!("{:x}\r\n{s}\r\n", s.len()).into_bytes()
    }

    #[test]
    fn logs_events_after_the_snapshot() {
        let slot = Slot::default();
        let mut body = Body::default();
        let mut wire = chunk("id: 3\nevent: snapshot\ndata: {}\n\n");
        wire.extend(chunk("id: 4\nevent: levels\ndata: {}\n\n: keep-alive\n\n"));
        wire.extend(chunk("id: 5\nevent: reac"));
        for b in wire.chunks(3) {
            body.feed(b, &slot).unwrap();
        }
        body.feed(&chunk("tions\ndata: {}\n\n"), &slot).unwrap();
        assert_eq!(slot.state(), State::Streaming);
        assert_eq!(slot.snapshot_id.load(Relaxed), 3);
        assert_eq!(slot.events.load(Relaxed), 2);
        let log = slot.log.lock().unwrap();
        assert_eq!(
            log.iter().map(|e| (e.id, e.kind)).collect::<Vec<_>>(),
            vec![(4, 0), (5, 1)]
        );
    }

    fn slot_with(snapshot: u64, ids: &[u64], hash: u64) -> Slot {
        let slot = Slot::default();
        slot.state.store(State::Streaming as u8, Relaxed);
        slot.snapshot_id.store(snapshot, Relaxed);
        *slot.log.lock().unwrap() = ids.iter().map(|&id| Entry { id, hash, kind: 0 }).collect();
        slot
    }

    #[test]
    fn sequences_must_be_gapless_equal_and_complete() {
        let ok = [slot_with(2, &[3, 4, 5], 1), slot_with(4, &[5, 6], 1)];
        let c = check_sequences(&ok, 5);
        assert_eq!((c.checked, c.mismatches), (2, 0));
        assert_eq!(
            c.kinds.keys().copied().collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );

        let gap = [slot_with(2, &[3, 5], 1)];
        assert_eq!(check_sequences(&gap, 5).mismatches, 1);
        let differs = [slot_with(2, &[3, 4], 1), slot_with(2, &[3, 4], 2)];
        assert_eq!(check_sequences(&differs, 4).mismatches, 1);
        let short = [slot_with(2, &[3, 4], 1)];
        assert_eq!(check_sequences(&short, 5).mismatches, 1);
        let dropped = slot_with(2, &[3, 4], 1);
        dropped.state.store(State::Dropped as u8, Relaxed);
        assert_eq!(check_sequences(&[dropped], 5).mismatches, 0);
    }
}
