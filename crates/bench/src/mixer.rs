//! `mixer`: CPU per 20 ms tick of the mixer core with a full stage, in process.
//!
//! Each speaker gets ~2 s of its own synthetic voice (or tone), pre-encoded with libopus as a
//! WebRTC sender would (48 kHz mono, 20 ms frames, 32 kb/s) and looped. Every speaker has a
//! mix-minus, so a tick decodes N packets and encodes N + 1. Time is injected: `now` advances 20 ms
//! per tick from a base instant and packets arrive exactly on time, so nothing sleeps and the
//! numbers are pure computation. The wall time of each `tick` is recorded; the thread's CPU time
//! over the whole loop is a cross-check against preemption by other work on the machine.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use opus::{Application, Bitrate, Channels, Encoder};
use serde::Serialize;
use tribune_media::mixer::{self, FRAME_SAMPLES, MAX_PACKET, Mixer, SAMPLE_RATE, TICK};
use tribune_media::synth::{Tone, Voice};

use crate::procstat;
use crate::report::{self, f};

/// Pre-encoded audio per speaker, looped: 2 s of 20 ms packets.
const LOOP_PACKETS: usize = 100;
/// Bit rate of the speakers' streams, as `tribune speak` sends them.
const SPEAKER_BITRATE: i32 = 32_000;

/// Arguments of `mixer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Speakers on stage, each with a mix-minus.
    #[arg(long, default_value_t = 13)]
    speakers: usize,
    /// Simulated audio to mix (50 ticks per second), after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Ticks run first and left out of the statistics (jitter buffers filling, caches warming).
    #[arg(long, default_value_t = 50)]
    warmup_ticks: usize,
    /// Speakers send sine tones instead of the synthetic voice.
    #[arg(long)]
    tone: bool,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub speakers: usize,
    pub signal: &'static str,
    pub ticks: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Mean tick time as a share of the 20 ms tick: the part of one core the space needs.
    pub core_share: f64,
    /// Thread CPU time per tick over the measured loop (includes `push_packet`).
    pub cpu_us_per_tick: f64,
    /// Mean wall time of the N `push_packet` calls of a tick.
    pub push_us_per_tick: f64,
    pub encode_errors: u64,
    pub decode_errors: u64,
    /// Mean size of the listener packets, bytes (a sanity check that audio came out).
    pub listener_packet_bytes: f64,
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    ensure!(args.speakers > 0, "--speakers must be positive");
    let streams: Vec<Vec<Vec<u8>>> = (0..args.speakers)
        .map(|i| encode_loop(i, args.tone))
        .collect::<Result<_>>()?;
    let mut mixer = Mixer::new(mixer::Config::default()).context("creating the mixer")?;
    for id in 0..args.speakers as u64 {
        mixer.add_speaker(id, true).context("adding a speaker")?;
    }

    let ticks = usize::try_from(args.seconds * 50)?;
    let base = Instant::now();
    let mut tick_ns = Vec::with_capacity(ticks);
    let mut push_ns = 0u128;
    let mut listener_bytes = 0usize;
    let mut cpu_start = Duration::ZERO;
    for n in 0..args.warmup_ticks + ticks {
        if n == args.warmup_ticks {
            cpu_start = procstat::thread_cpu()?;
        }
        let now = base + TICK * u32::try_from(n)?;
        let seq = n as u64;
        let rtp_ts = seq * FRAME_SAMPLES as u64;
        let t0 = Instant::now();
        for (id, packets) in streams.iter().enumerate() {
            mixer.push_packet(id as u64, now, seq, rtp_ts, &packets[n % packets.len()]);
        }
        let t1 = Instant::now();
        let out = mixer.tick(now);
        let t2 = Instant::now();
        if n >= args.warmup_ticks {
            push_ns += (t1 - t0).as_nanos();
            tick_ns.push((t2 - t1).as_nanos() as u64);
            listener_bytes += out.listener.len();
        }
    }
    let cpu = procstat::thread_cpu()? - cpu_start;

    let stats = mixer.stats();
    tick_ns.sort_unstable();
    let pct = |p: f64| tick_ns[((tick_ns.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    let mean_us = tick_ns.iter().sum::<u64>() as f64 / ticks as f64 / 1000.0;
    let report = Report {
        speakers: args.speakers,
        signal: if args.tone { "tone" } else { "voice" },
        ticks,
        mean_us,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: pct(1.0),
        core_share: mean_us / TICK.as_micros() as f64,
        cpu_us_per_tick: cpu.as_secs_f64() * 1e6 / ticks as f64,
        push_us_per_tick: push_ns as f64 / 1000.0 / ticks as f64,
        encode_errors: stats.encode_errors,
        decode_errors: stats.decode_errors,
        listener_packet_bytes: listener_bytes as f64 / ticks as f64,
    };
    print(&report);
    report::json(args.json.as_deref(), &report)
}

/// A speaker's test signal.
enum Signal {
    Tone(Tone),
    Voice(Voice),
}

impl Signal {
    fn fill(&mut self, out: &mut [f32]) {
        match self {
            Signal::Tone(t) => t.fill(out),
            Signal::Voice(v) => v.fill(out),
        }
    }
}

/// ~2 s of speaker `i`'s signal as 20 ms Opus packets. Each speaker has its own pitch.
fn encode_loop(i: usize, tone: bool) -> Result<Vec<Vec<u8>>> {
    let hz = 110.0 + 23.0 * i as f32;
    let mut signal = if tone {
        Signal::Tone(Tone::new(hz * 2.0, 0.3))
    } else {
        Signal::Voice(Voice::new(hz, i as u64 + 1))
    };
    let mut encoder = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)?;
    encoder.set_bitrate(Bitrate::Bits(SPEAKER_BITRATE))?;
    let mut pcm = vec![0.0; FRAME_SAMPLES];
    (0..LOOP_PACKETS)
        .map(|_| {
            signal.fill(&mut pcm);
            Ok(encoder.encode_vec_float(&pcm, MAX_PACKET)?)
        })
        .collect()
}

fn print(r: &Report) {
    let rows = [
        ("speakers (each with mix-minus)", r.speakers.to_string()),
        ("signal", r.signal.to_owned()),
        ("encodes per tick", (r.speakers + 1).to_string()),
        ("ticks measured", r.ticks.to_string()),
        ("tick mean, µs", f(r.mean_us, 1)),
        ("tick p50, µs", f(r.p50_us, 1)),
        ("tick p99, µs", f(r.p99_us, 1)),
        ("tick max, µs", f(r.max_us, 1)),
        (
            "share of one core (mean / 20 ms)",
            format!("{}%", f(r.core_share * 100.0, 2)),
        ),
        (
            "thread CPU per tick incl. push, µs",
            f(r.cpu_us_per_tick, 1),
        ),
        ("push_packet ×N per tick, µs", f(r.push_us_per_tick, 1)),
        ("listener packet, bytes", f(r.listener_packet_bytes, 1)),
        (
            "encode / decode errors",
            format!("{} / {}", r.encode_errors, r.decode_errors),
        ),
    ];
    report::table(&format!("mixer: {} speakers", r.speakers), &rows);
}
