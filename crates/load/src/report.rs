//! The end of a run: the JSON report (its schema is this module's types), the table printed on
//! the terminal, and the server's figures sampled from `/proc` once a second.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::procstat;
use crate::speakers;
use crate::tally::{Listeners, Subscribers, Totals};

/// The JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The command line (without secrets) and what it resolved to.
    pub config: Value,
    /// Listeners, all and per protocol.
    pub listeners: ListenerReport,
    /// Connect start to first audio byte, over every listener that joined.
    pub join_latency_ms: Latency,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// What the listeners received.
    pub throughput: Throughput,
    /// The server's CPU and memory, if a process was watched.
    pub server: Option<Server>,
    /// Event-stream subscribers.
    pub events: Subscribers,
    /// WHIP speakers.
    pub speakers: speakers::Report,
    /// The load generator's own CPU (this process and its workers): on one machine with the
    /// server, it competes for the same cores.
    pub load_generator: LoadGenerator,
    /// Once a second.
    pub timeline: Vec<Tick>,
    /// The floods and what the show did under them (`--flood-*`, `--slowloris`, `--udp-junk`,
    /// `--host-probe`); absent without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood: Option<crate::flood::Report>,
}

/// Listener totals.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerReport {
    /// Listeners asked for.
    pub target: u64,
    /// Still receiving at the end.
    pub held: u64,
    /// Got audio within the join timeout.
    pub joined: u64,
    /// Did not.
    pub never_joined: u64,
    /// Saw a discontinuity.
    pub gapped: u64,
    /// The Ogg listeners alone.
    pub ogg: Listeners,
    /// The HLS listeners alone.
    pub hls: Listeners,
}

/// Percentiles in ms (`null` without any join).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
    /// Joins measured.
    pub count: u64,
}

impl Latency {
    /// Nearest-rank percentiles of latencies in µs.
    pub fn of(mut us: Vec<u32>) -> Latency {
        us.sort_unstable();
        let ms = |v: u32| f64::from(v) / 1000.0;
        Latency {
            p50: percentile(&us, 50.0).map(ms),
            p99: percentile(&us, 99.0).map(ms),
            max: us.last().copied().map(ms),
            count: us.len() as u64,
        }
    }
}

/// The nearest-rank percentile `p` of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Received by all listeners over the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Throughput {
    /// Body bytes per second.
    pub bytes_per_s: f64,
    /// Ogg pages plus HLS parts and segments per second.
    pub pages_per_s: f64,
    /// HTTP requests per second (Ogg connections; HLS playlists, parts, segments).
    pub requests_per_s: f64,
    /// Body bytes.
    pub bytes_total: u64,
    /// Pages, parts and segments.
    pub pages_total: u64,
    /// The run's length.
    pub seconds: f64,
}

/// The watched server process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Server {
    /// Its pid.
    pub pid: u32,
    /// CPU time per second over the run, in cores.
    pub cpu_cores_avg: f64,
    /// The busiest second.
    pub cpu_cores_max: f64,
    /// CPU over the seconds after the ramp (every listener in): the steady cost; `null` if
    /// the run had no such second.
    pub cpu_cores_hold_avg: Option<f64>,
    /// CPU over the two seconds before the first listener: what the stream costs with nobody
    /// listening (mixing, encoding, ingest); `null` if not measured.
    pub cpu_cores_idle: Option<f64>,
    /// RSS before the first listener.
    pub rss_kib_start: u64,
    /// RSS at the last sample of the run (listeners still connected).
    pub rss_kib_end: u64,
    /// (end − start) / listeners held.
    pub rss_kib_per_listener: Option<f64>,
}

/// The load generator's own cost.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LoadGenerator {
    /// Processes.
    pub procs: usize,
    /// CPU time per second over the run, in cores, all processes together.
    pub cpu_cores_avg: f64,
}

/// CPU time of processes, read at two moments.
pub struct CpuClock {
    pids: Vec<u32>,
    ticks_per_second: u64,
    at: std::time::Instant,
    cpu: f64,
}

impl CpuClock {
    /// Starts timing `pids`.
    pub fn start(pids: Vec<u32>) -> CpuClock {
        let ticks_per_second = procstat::clock_ticks_per_second();
        let cpu = Self::cpu(&pids, ticks_per_second);
        CpuClock {
            pids,
            ticks_per_second,
            at: std::time::Instant::now(),
            cpu,
        }
    }

    fn cpu(pids: &[u32], tps: u64) -> f64 {
        pids.iter()
            .filter_map(|&p| procstat::sample(p, tps).ok())
            .map(|s| s.cpu.as_secs_f64())
            .sum()
    }

    /// Cores used since the start (processes that exited meanwhile are left out).
    pub fn cores(&self) -> f64 {
        let wall = self.at.elapsed().as_secs_f64();
        let cpu = Self::cpu(&self.pids, self.ticks_per_second) - self.cpu;
        if wall > 0.0 { cpu.max(0.0) / wall } else { 0.0 }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tick {
    /// Seconds since the first join.
    pub t: u64,
    /// Listeners receiving.
    pub connected: u64,
    /// Listeners that joined during this second.
    pub joins: u64,
    /// Their join latency's 99th percentile.
    pub join_p99_ms: Option<f64>,
    /// Server CPU over this second, cores.
    pub server_cpu: Option<f64>,
    /// Server RSS.
    pub server_rss_kib: Option<u64>,
}

/// Samples a process once a second.
pub struct Sampler {
    pid: u32,
    ticks_per_second: u64,
    last: procstat::Sample,
    /// RSS at the start, KiB.
    pub rss_start: u64,
    /// CPU before the first listener, cores.
    pub idle_cores: Option<f64>,
    /// (t, cores over the second before, RSS KiB).
    pub samples: Vec<(u64, f64, u64)>,
}

impl Sampler {
    /// Starts watching `pid`.
    pub fn new(pid: u32, idle_cores: Option<f64>) -> Result<Sampler> {
        let ticks_per_second = procstat::clock_ticks_per_second();
        let last = procstat::sample(pid, ticks_per_second)?;
        Ok(Sampler {
            pid,
            ticks_per_second,
            rss_start: last.rss_kib,
            idle_cores,
            last,
            samples: Vec::new(),
        })
    }

    /// Samples at second `t`: (cores since the last sample, RSS); `None` if it has gone.
    pub fn tick(&mut self, t: u64) -> Option<(f64, u64)> {
        let s = procstat::sample(self.pid, self.ticks_per_second).ok()?;
        let wall = (s.at - self.last.at).as_secs_f64();
        let cores = if wall > 0.0 {
            s.cpu.saturating_sub(self.last.cpu).as_secs_f64() / wall
        } else {
            0.0
        };
        self.last = s;
        self.samples.push((t, cores, s.rss_kib));
        Some((cores, s.rss_kib))
    }

    fn report(&self, held: u64, ramp_seconds: f64) -> Server {
        let n = self.samples.len().max(1) as f64;
        let hold: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.0 as f64 > ramp_seconds + 1.0)
            .map(|s| s.1)
            .collect();
        let end = self.samples.last().map_or(self.rss_start, |s| s.2);
        Server {
            pid: self.pid,
            cpu_cores_avg: self.samples.iter().map(|s| s.1).sum::<f64>() / n,
            cpu_cores_max: self.samples.iter().map(|s| s.1).fold(0.0, f64::max),
            cpu_cores_hold_avg: (!hold.is_empty())
                .then(|| hold.iter().sum::<f64>() / hold.len() as f64),
            cpu_cores_idle: self.idle_cores,
            rss_kib_start: self.rss_start,
            rss_kib_end: end,
            rss_kib_per_listener: (held > 0)
                .then(|| (end as f64 - self.rss_start as f64) / held as f64),
        }
    }
}

/// Builds the report.
pub fn build(
    config: Value,
    totals: &Totals,
    seconds: f64,
    ramp_seconds: f64,
    sampler: Option<&Sampler>,
    speakers: speakers::Report,
    load_generator: LoadGenerator,
) -> Report {
    let mut all = totals.ogg;
    all.add(&totals.hls);
    let per_second = |v: u64| v as f64 / seconds.max(f64::EPSILON);
    // The seconds sampled: those before the run's end.
    let timeline = (1..)
        .take_while(|&t| (t as f64) < seconds)
        .map(|t| {
            let snap = totals.timeline.iter().find(|s| s.t == t);
            let lat: Vec<u32> = totals
                .joins
                .iter()
                .filter(|(ms, _)| u64::from(*ms) / 1000 + 1 == t)
                .map(|(_, us)| *us)
                .collect();
            let server = sampler.and_then(|s| s.samples.iter().find(|x| x.0 == t));
            Tick {
                t,
                connected: snap.map_or(0, |s| s.connected),
                joins: lat.len() as u64,
                join_p99_ms: Latency::of(lat).p99,
                server_cpu: server.map(|s| s.1),
                server_rss_kib: server.map(|s| s.2),
            }
        })
        .collect();
    Report {
        config,
        listeners: ListenerReport {
            target: all.target,
            held: all.held,
            joined: all.joined,
            never_joined: all.never_joined,
            gapped: all.gapped,
            ogg: totals.ogg,
            hls: totals.hls,
        },
        join_latency_ms: Latency::of(totals.joins.iter().map(|j| j.1).collect()),
        errors: totals.errors.clone(),
        throughput: Throughput {
            bytes_per_s: per_second(totals.bytes),
            pages_per_s: per_second(totals.pages),
            requests_per_s: per_second(totals.requests),
            bytes_total: totals.bytes,
            pages_total: totals.pages,
            seconds,
        },
        server: sampler.map(|s| s.report(all.held, ramp_seconds)),
        events: totals.events,
        speakers,
        load_generator,
        timeline,
        flood: None,
    }
}

/// Writes the report as pretty JSON.
pub fn write_json(path: &Path, r: &Report) -> Result<()> {
    let text = serde_json::to_string_pretty(r)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// The report as a markdown table (reads well in a terminal, pastes into RESULTS.md).
pub fn table(r: &Report) -> String {
    let l = &r.listeners;
    let opt = |v: Option<f64>, d: usize| v.map_or("–".to_owned(), |v| format!("{v:.d$}"));
    let mut rows: Vec<(String, String)> = vec![
        (
            "listeners: target / joined / held".into(),
            format!("{} / {} / {}", l.target, l.joined, l.held),
        ),
        ("never joined".into(), l.never_joined.to_string()),
        ("gapped".into(), l.gapped.to_string()),
        (
            "join latency p50 / p99 / max, ms".into(),
            format!(
                "{} / {} / {}",
                opt(r.join_latency_ms.p50, 1),
                opt(r.join_latency_ms.p99, 1),
                opt(r.join_latency_ms.max, 1)
            ),
        ),
        (
            "received, KiB/s / pages/s".into(),
            format!(
                "{:.0} / {:.0}",
                r.throughput.bytes_per_s / 1024.0,
                r.throughput.pages_per_s
            ),
        ),
    ];
    if l.ogg.target > 0 && l.hls.target > 0 {
        for (name, p) in [("ogg", &l.ogg), ("hls", &l.hls)] {
            rows.push((
                format!("{name}: target / joined / held / gapped"),
                format!("{} / {} / {} / {}", p.target, p.joined, p.held, p.gapped),
            ));
        }
    }
    if r.events.target > 0 {
        let e = &r.events;
        rows.push((
            "event streams: target / subscribed / held / gapped".into(),
            format!(
                "{} / {} / {} / {}",
                e.target, e.subscribed, e.held, e.gapped
            ),
        ));
        rows.push((
            "events received / ids missing".into(),
            format!("{} / {}", e.events, e.missing_ids),
        ));
    }
    if r.speakers.target > 0 {
        rows.push((
            "speakers: target / ok".into(),
            format!("{} / {}", r.speakers.target, r.speakers.ok),
        ));
    }
    if let Some(s) = &r.server {
        rows.push((
            "server CPU with no listener, cores".into(),
            opt(s.cpu_cores_idle, 3),
        ));
        rows.push((
            "server CPU avg / after the ramp / max, cores".into(),
            format!(
                "{:.3} / {} / {:.3}",
                s.cpu_cores_avg,
                opt(s.cpu_cores_hold_avg, 3),
                s.cpu_cores_max
            ),
        ));
        rows.push((
            "server RSS start / end, MiB".into(),
            format!(
                "{:.1} / {:.1}",
                s.rss_kib_start as f64 / 1024.0,
                s.rss_kib_end as f64 / 1024.0
            ),
        ));
        rows.push((
            "server RSS per listener, KiB".into(),
            opt(s.rss_kib_per_listener, 1),
        ));
    }
    rows.push((
        "load generator CPU, cores".into(),
        format!("{:.3}", r.load_generator.cpu_cores_avg),
    ));
    for (k, n) in &r.errors {
        rows.push((format!("errors: {k}"), n.to_string()));
    }
    two_columns("metric", rows)
}

/// A markdown table of (name, value) rows, names left and values right aligned, headed `first`
/// and `value`.
pub fn two_columns(first: &str, rows: Vec<(String, String)>) -> String {
    let w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .max(first.chars().count());
    let v = rows
        .iter()
        .map(|(_, v)| v.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "| {:w$} | {:>v$} |\n|{}|{}:|\n",
        first,
        "value",
        "-".repeat(w + 2),
        "-".repeat(v + 1)
    );
    for (k, val) in rows {
        out.push_str(&format!("| {k:w$} | {val:>v$} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tally::Snapshot;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        let l = Latency::of(vec![3000, 1000, 2000]);
        assert_eq!((l.p50, l.max, l.count), (Some(2.0), Some(3.0), 3));
    }

    #[test]
    fn timeline_puts_joins_in_their_second() {
        let totals = Totals {
            joins: vec![(100, 5_000), (900, 7_000), (1_500, 9_000)],
            timeline: vec![
                Snapshot {
                    t: 1,
                    connected: 2,
                    ..Snapshot::default()
                },
                Snapshot {
                    t: 2,
                    connected: 3,
                    ..Snapshot::default()
                },
            ],
            ..Totals::default()
        };
        let r = build(
            Value::Null,
            &totals,
            2.5,
            0.0,
            None,
            speakers::Report::default(),
            LoadGenerator::default(),
        );
        let t: Vec<_> = r
            .timeline
            .iter()
            .map(|t| (t.t, t.connected, t.joins, t.join_p99_ms))
            .collect();
        assert_eq!(t, vec![(1, 2, 2, Some(7.0)), (2, 3, 1, Some(9.0))]);
        assert!(table(&r).contains("| join latency p50 / p99 / max, ms "));
    }
}
