//! `tribune-bench`: reproducible load tests of tribune.
//!
//! - `fanout`: server CPU and memory per live.opus listener, with thousands of real TCP listeners
//!   (or per Icecast listener, for comparison).
//! - `mixer`: CPU per 20 ms tick of the mixer core, in process, on injected time.
//! - `events`: server CPU per event delivered and memory per event-stream (SSE) subscriber.
//! - `late-ticks`: whether a flood of control-plane requests delays the mixer.
//! - `hls-package`: pager-thread cost of packaging one LL-HLS part, a minute and hours into a
//!   space (in process, injected time).
//! - `hls-serve`: LL-HLS parts and segments served per server CPU-second, tribune vs nginx.
//! - `glass`: glass-to-glass latency from a speaker to an HLS listener (LL-HLS and ffmpeg).
//! - `pow`: what the shield's proof of work costs a client (native, and the web app's solver
//!   under V8) and the server (per check).
//! - `udp-junk`: server CPU and mixer late ticks while junk datagrams flood the media port.
//! - `edge-latency`: what an nginx and a Varnish edge add to LL-HLS parts and blocking reloads.
//! - `page-listeners`: what web-page listeners behind one Varnish edge cost the origin and the
//!   edge, at several audience sizes.
//! - `failover`: what listeners (Ogg, LL-HLS through an edge), speakers and the recording lose
//!   when a space's owner in a three-node cluster is killed, over many rounds.
//! - `captions`: live captions with the real model: speech → cue at an nginx edge, the engine's
//!   and the server's CPU per captioned space (against a server without captions), word error
//!   rate.
//!
//! The network benchmarks start real `tribune` processes on loopback and stop everything they
//! started by themselves: every phase is bounded in time, and every child is killed on drop.
#![forbid(unsafe_code)]

mod captions;
mod cluster_events;
mod edge_latency;
mod events;
mod failover;
mod fanout;
mod glass;
mod hls_package;
mod hls_serve;
mod icecast;
mod late_ticks;
mod mixer;
mod page_listeners;
mod pow;
mod report;
mod udp_junk;

// One copy of the loopback plumbing, shared with `tribune loadtest`.
use tribune_load::{harness, net, procstat, varnish};

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Load tests of tribune. Loopback only; each run stops by itself.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Server CPU and memory per live.opus listener.
    Fanout(fanout::Args),
    /// CPU per 20 ms tick of the mixer core (in process, no IO).
    Mixer(mixer::Args),
    /// Server CPU per event delivered and memory per event-stream (SSE) subscriber.
    Events(events::Args),
    /// Mixer late ticks while the HTTP API is hammered.
    LateTicks(late_ticks::Args),
    /// Cost of packaging one LL-HLS part, early and hours into a space (in process).
    HlsPackage(hls_package::Args),
    /// LL-HLS parts and segments per server CPU-second, tribune vs nginx on the same files.
    HlsServe(hls_serve::Args),
    /// Glass-to-glass latency from a speaker to an HLS listener.
    Glass(glass::Args),
    /// Server CPU and mixer late ticks while junk datagrams flood the media port.
    UdpJunk(udp_junk::Args),
    /// Proof-of-work cost: native and web solve times, server check time.
    Pow(pow::Args),
    /// Latency an nginx and a Varnish edge add to LL-HLS parts and blocking reloads.
    EdgeLatency(edge_latency::Args),
    /// Cross-node event delivery in a cluster: owner → subscriber on another node, p50/p99.
    ClusterEvents(cluster_events::Args),
    /// Origin and edge cost of simulated web-page listeners behind one Varnish edge.
    PageListeners(page_listeners::Args),
    /// A space's owner killed in a three-node cluster: takeover, speakers back, listeners' gaps,
    /// the recording.
    Failover(failover::Args),
    /// Live captions: speech → cue at an nginx edge, CPU per captioned space, word error rate.
    Captions(captions::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // Every listener is a file descriptor here and in the server (which inherits the limit).
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    match cli.command {
        Command::Fanout(args) => runtime(args.client_threads)?.block_on(fanout::run(args, nofile)),
        Command::Events(args) => runtime(args.client_threads)?.block_on(events::run(args, nofile)),
        Command::Mixer(args) => mixer::run(args),
        Command::Pow(args) => pow::run(args),
        Command::LateTicks(args) => runtime(args.client_threads)?.block_on(late_ticks::run(args)),
        Command::HlsPackage(args) => hls_package::run(args),
        Command::HlsServe(args) => runtime(args.client_threads)?.block_on(hls_serve::run(args)),
        Command::Glass(args) => runtime(2)?.block_on(glass::run(args)),
        Command::ClusterEvents(args) => runtime(2)?.block_on(cluster_events::run(args)),
        Command::EdgeLatency(args) => runtime(2)?.block_on(edge_latency::run(args)),
        Command::Failover(args) => runtime(2)?.block_on(failover::run(args)),
        Command::Captions(args) => runtime(2)?.block_on(captions::run(args)),
        Command::UdpJunk(args) => runtime(1)?.block_on(udp_junk::run(args)),
        Command::PageListeners(args) => {
            runtime(args.client_threads)?.block_on(page_listeners::run(args))
        }
    }
}

/// The load generator's runtime. It shares the machine with the server under test, so it gets a
/// fixed, small number of threads: the server's numbers are then not starved by an eager client.
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}
