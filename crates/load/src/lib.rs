//! The load tester of tribune, `tribune loadtest`, as a library (the `tribune` binary calls
//! [`run`]; `tribune-bench` shares its loopback plumbing: [`net`], [`procstat`], [`harness`]).
//!
//! A run: set up the target ([`target`]: a space on a running or spawned server, or a raw Ogg
//! stream or HLS playlist), start tone speakers ([`speakers`]), then listeners join at `--ramp`
//! per second on one schedule ([`plan`]), each on its own source address in 127.0.0.0/8, and
//! hold until the run ends. Listeners are Ogg ([`ogg_listener`], checked page by page by the
//! sans-IO [`ogg::Scanner`]) or LL-HLS ([`hls_listener`]); event-stream subscribers
//! ([`events`]) count events and missing ids. One process or several ([`procs`]), each a
//! [`worker`]; the results ([`tally`]) become a table, a JSON report and a PNG ([`report`],
//! [`chart`]), with the server's CPU and memory sampled from `/proc`.
//!
//! Everything is bounded: every task stops by the run's end (`--max-seconds` at most), and
//! whatever has not reported shortly after is aborted and counted.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chart;
pub mod config;
pub mod events;
pub mod flood;
pub mod harness;
pub mod hls_listener;
pub mod net;
pub mod nginx;
pub mod ogg;
pub mod ogg_listener;
pub mod plan;
pub mod procs;
pub mod procstat;
pub mod progress;
pub mod redis;
pub mod report;
pub mod speakers;
pub mod tally;
pub mod target;
pub mod varnish;
pub mod worker;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tokio::time::Instant;

pub use config::Args;
pub use procs::Exec;
pub use report::Report;

use crate::plan::{Plan, Slice};
use crate::procs::Workers;
use crate::progress::Progress;
use crate::report::{CpuClock, LoadGenerator, Sampler};
use crate::tally::{Live, Snapshot};

/// Time between setting up and the first join: speakers connect, workers start.
const LEAD: Duration = Duration::from_secs(2);

/// Runs a load test as `args` say and returns its report (`None` in a worker process).
/// `exec` is how to start this program again as a worker.
pub async fn run(args: Args, exec: Exec) -> Result<Option<Report>> {
    if let Some(spec) = &args.worker {
        procs::worker_main(spec).await?;
        return Ok(None);
    }
    ensure!(
        args.listeners > 0 || args.events > 0,
        "nothing to do: --listeners and --events are 0"
    );
    ensure!(
        args.ramp.is_finite() && args.ramp > 0.0,
        "--ramp must be positive"
    );
    for (name, v) in [
        ("--hold", args.hold),
        ("--max-seconds", args.max_seconds),
        ("--join-timeout", args.join_timeout),
    ] {
        ensure!(
            v.is_finite() && v >= 0.0,
            "{name} must be a number of seconds"
        );
    }
    ensure!(args.max_seconds > 0.0, "--max-seconds must be positive");
    ensure!(args.join_timeout > 0.0, "--join-timeout must be positive");
    // Every listener is a file descriptor.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;

    let target = target::setup(&args).await?;
    let hls = args.listeners * target.mix.hls as usize / 100;
    let ogg = args.listeners - hls;
    let needed = plan::procs_needed(plan::fds_needed(ogg, hls, args.events), nofile);
    let procs = args.procs.unwrap_or(1).max(needed);
    if args.procs.is_some_and(|p| p < needed) {
        eprintln!("note: {needed} processes needed for the open-file limit of {nofile}");
    }
    let run_seconds = plan::run_seconds(args.listeners, args.ramp, args.hold, args.max_seconds);
    let plan = Plan {
        ogg: target.ogg.clone(),
        hls: target.hls.clone(),
        events: target.events.clone().filter(|_| args.events > 0),
        listeners: args.listeners,
        mix: target.mix,
        ramp: args.ramp,
        run_seconds,
        join_timeout: args.join_timeout,
        retry: args.retry,
        subscribers: args.events,
        sources: args.sources,
        hls_poll: args.hls_poll,
    };
    let start_unix_ms = procs::unix_ms() + LEAD.as_millis() as u64;
    let start = procs::instant_of(start_unix_ms);
    let end = start + plan.run_length();
    let mut config = serde_json::to_value(&args)?;
    if let Some(c) = config.as_object_mut() {
        // What the listeners did listen over (`tribune plan --measured` reads it).
        c.insert("mix".into(), serde_json::to_value(target.mix)?);
        c.insert(
            "resolved".into(),
            json!({
                "target": target.describe,
                "procs": procs,
                "nofile_limit": nofile,
                "run_seconds": run_seconds,
                "speakers": target.speakers.len(),
                "server_pid": target.server_pid,
            }),
        );
    }

    // The server's CPU with no listener yet (over the lead time): the cost of the stream itself
    // (mixing, encoding, a source), which per-listener figures leave out.
    let idle_clock = target.server_pid.map(|pid| CpuClock::start(vec![pid]));
    let speakers = speakers::start(&target.speakers, end);
    let join_timeout = Duration::from_secs_f64(args.join_timeout);
    let flood = flood::start(&args.flood, &target, start, end, join_timeout).await?;
    let workers = (procs > 1)
        .then(|| Workers::start(&exec, &plan, procs, start_unix_ms))
        .transpose()?;
    say(&format!(
        "loadtest: {} listeners ({} Ogg, {} HLS), {} event streams, {} speakers on {}; ramp {}/s, \
         {run_seconds:.0} s, {procs} process{}",
        args.listeners,
        ogg,
        hls,
        args.events,
        target.speakers.len(),
        target.describe,
        args.ramp,
        if procs == 1 { "" } else { "es" },
    ));
    tokio::time::sleep_until(
        start
            .checked_sub(Duration::from_millis(50))
            .unwrap_or(start),
    )
    .await;
    let idle_cores = idle_clock.map(|c| c.cores());
    let mut sampler = match target.server_pid {
        Some(pid) => {
            Some(Sampler::new(pid, idle_cores).with_context(|| format!("watching pid {pid}"))?)
        }
        None => None,
    };
    let progress = Progress::new(args.listeners, run_seconds.ceil() as u64);
    let live = Arc::new(Live::default());
    let mut pids = vec![std::process::id()];
    pids.extend(workers.iter().flat_map(Workers::pids));
    let own_cpu = CpuClock::start(pids);
    let (totals, own_cores) = match workers {
        None => {
            let work = worker::run(plan, Slice::ALL, start, live.clone(), |_| {});
            let ticks = ticks(start, end, &mut sampler, &progress, |t| live.snapshot(t));
            let (totals, ()) = tokio::join!(work, ticks);
            (totals?, own_cpu.cores())
        }
        Some(w) => {
            ticks(start, end, &mut sampler, &progress, |t| w.snapshot(t)).await;
            let cores = own_cpu.cores();
            (w.finish(end).await?, cores)
        }
    };
    let load_generator = LoadGenerator {
        procs,
        cpu_cores_avg: own_cores,
    };
    progress.finish();
    let speakers = speakers.finish().await;
    let mut flood = match flood {
        Some(f) => Some(f.finish(sampler.as_ref()).await),
        None => None,
    };
    if let Err(e) = target.end().await {
        eprintln!("warning: ending the space: {e:#}");
    }
    if let (Some(f), Some(base), Some(space)) = (&mut flood, &target.base, &target.space) {
        let run = Duration::from_secs_f64(run_seconds);
        f.recording = Some(flood::recording::check(base, space, run).await);
    }
    let mut report = report::build(
        config,
        &totals,
        run_seconds,
        args.listeners as f64 / args.ramp,
        sampler.as_ref(),
        speakers,
        load_generator,
    );
    report.flood = flood;
    say(&report::table(&report));
    if let Some(f) = &report.flood {
        say(&flood::table(f, &report.speakers));
    }
    if let Some(path) = &args.json {
        report::write_json(path, &report)?;
    }
    if let Some(path) = &args.png {
        let text = chart::draw(path, args.png_size, &report.timeline, &args.font)?;
        if !text {
            eprintln!(
                "note: {} has no text ({} could not be read)",
                path.display(),
                args.font.display()
            );
        }
    }
    drop(target);
    Ok(Some(report))
}

/// Once a second until `end`: samples the server and shows the counters `snapshot` gives.
async fn ticks(
    start: Instant,
    end: Instant,
    sampler: &mut Option<Sampler>,
    progress: &Progress,
    snapshot: impl Fn(u64) -> Snapshot,
) {
    for t in 1.. {
        let at = start + Duration::from_secs(t);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let cpu = sampler.as_mut().and_then(|s| s.tick(t)).map(|s| s.0);
        progress.update(&snapshot(t), cpu);
    }
}

/// Prints a line to stdout, ignoring a closed pipe.
fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
}
