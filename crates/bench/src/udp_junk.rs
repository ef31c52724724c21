//! `udp-junk`: what a flood of junk datagrams on the media port costs the server, and whether it
//! delays the mixer.
//!
//! One server, one live space, one `tribune speak` tone. After a quiet window, sender threads
//! offer junk to the UDP port at each target rate for N seconds: random bytes, RTP- and DTLS-like
//! datagrams, STUN binding requests naming ICE usernames nobody was given, and truncated STUN. The
//! port's receive loop drops all of it (none is for a session). Reported per rate: datagrams
//! offered and received by the server (`tribune_udp_datagrams_total`), dropped as unknown
//! (`tribune_udp_dropped_unknown_total`), server CPU (and CPU per 100 k datagrams/s above the
//! quiet level), and mixer late ticks (`tribune_mixer_late_ticks_total`) during the flood.
//!
//! Each sender is a bounded loop: at most `rate × seconds` datagrams, and it stops at the end of
//! the window whatever it has sent.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::Serialize;

use crate::harness::{Metrics, SETUP_LIMIT, Server};
use crate::procstat::{self, Window};
use crate::report::{self, f};

/// Datagrams sent between two looks at the clock (the pacing granularity).
const BATCH: u64 = 64;
/// Source sockets per sender thread (each its own address and port in 127.0.0.0/8).
const SOURCES_PER_THREAD: usize = 16;

/// Arguments of `udp-junk`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// Target rates, datagrams per second (one flood each, in order).
    #[arg(long, value_delimiter = ',', default_value = "50000,200000")]
    pps: Vec<u64>,
    /// Length of each flood, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Length of the quiet window before the floods, seconds.
    #[arg(long, default_value_t = 5)]
    quiet_seconds: u64,
    /// Sender threads.
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One window's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Flood {
    pub target_pps: u64,
    pub offered: u64,
    pub offered_pps: f64,
    pub received_pps: f64,
    pub dropped_unknown_pps: f64,
    pub ticks: f64,
    pub late_ticks: f64,
    pub server: Window,
    /// Server cores per 100 k received datagrams/s, above the quiet level.
    pub cores_per_100k_pps: f64,
    /// Speakers still on after the flood.
    pub speakers_after: f64,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub quiet: Flood,
    pub floods: Vec<Flood>,
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    ensure!(
        args.seconds > 0 && args.senders > 0 && !args.pps.is_empty(),
        "--seconds, --senders and --pps must be positive"
    );
    let server = Server::start(&args.server_bin, &[])?;
    let space = server.create_space("udp-junk").await?;
    let bound = SETUP_LIMIT.as_secs()
        + args.quiet_seconds
        + (args.seconds + 2) * args.pps.len() as u64
        + 30;
    let _speaker = server.speak(&space, "a", 440, bound).await?;
    server.wait_metric("tribune_speakers", 1.0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.pid();

    eprintln!("quiet: {} s", args.quiet_seconds);
    let before = server.metrics().await?;
    let window =
        procstat::watch(pid, Duration::from_secs(args.quiet_seconds.max(1)), || {}).await?;
    let mut last = server.metrics().await?;
    let quiet = figures(&before, &last, window, 0, 0, 0.0)?;

    let mut floods = Vec::new();
    for &pps in &args.pps {
        eprintln!("flood: {pps} datagrams/s for {} s", args.seconds);
        let length = Duration::from_secs(args.seconds);
        let senders: Vec<_> = (0..args.senders)
            .map(|t| {
                let share = pps / args.senders as u64;
                let target = server.udp_addr;
                std::thread::spawn(move || send(t, target, share, length))
            })
            .collect();
        let window = procstat::watch(pid, length, || {}).await?;
        let mut offered = 0;
        for s in senders {
            offered += s
                .join()
                .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
        }
        // The last datagrams may still be in the socket's queue: let the server take them.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = server.metrics().await?;
        floods.push(figures(
            &last,
            &after,
            window,
            pps,
            offered,
            quiet.server.cores,
        )?);
        last = after;
    }
    let report = Report { quiet, floods };
    print(&report);
    report::json(args.json.as_deref(), &report)
}

fn figures(
    before: &Metrics,
    after: &Metrics,
    server: Window,
    target_pps: u64,
    offered: u64,
    quiet_cores: f64,
) -> Result<Flood> {
    let delta = |name| -> Result<f64> { Ok(after.get(name)? - before.get(name)?) };
    let wall = server.wall_seconds.max(1e-9);
    let received_pps = delta("tribune_udp_datagrams_total")? / wall;
    Ok(Flood {
        target_pps,
        offered,
        offered_pps: offered as f64 / wall,
        received_pps,
        dropped_unknown_pps: delta("tribune_udp_dropped_unknown_total")? / wall,
        ticks: delta("tribune_mixer_ticks_total")?,
        late_ticks: delta("tribune_mixer_late_ticks_total")?,
        cores_per_100k_pps: if received_pps > 0.0 && target_pps > 0 {
            (server.cores - quiet_cores).max(0.0) / (received_pps / 100_000.0)
        } else {
            0.0
        },
        speakers_after: after.get("tribune_speakers")?,
        server,
    })
}

/// The junk one sender offers, made once.
fn junk(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = seed | 1;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect()
    };
    let stun = |username: &[u8]| {
        let mut attrs = vec![0x00, 0x06];
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    };
    let full = stun(b"nobodysufrag:junk");
    let mut rtp = random(172);
    rtp[0] = 0x80;
    let mut dtls = random(120);
    dtls[..3].copy_from_slice(&[0x16, 0xfe, 0xfd]);
    vec![
        random(100),
        random(1200),
        rtp,
        dtls,
        full.clone(),
        stun(b"x:y"),
        full[..full.len() - 3].to_vec(),
        full[..20].to_vec(),
    ]
}

/// Offers `pps` datagrams per second to `target` for `length` from thread `t`; returns how many
/// were sent (at most `pps × length`).
fn send(t: usize, target: SocketAddr, pps: u64, length: Duration) -> Result<u64> {
    let sockets = (0..SOURCES_PER_THREAD)
        .map(|i| {
            let n = 2 + (t * SOURCES_PER_THREAD + i) as u32;
            let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 1, 0, 0)) | n);
            UdpSocket::bind((ip, 0)).context("binding a sender socket")
        })
        .collect::<Result<Vec<_>>>()?;
    let packets = junk(0x9E37_79B9_7F4A_7C15 ^ t as u64);
    let total = pps * length.as_secs();
    let start = Instant::now();
    let end = start + length;
    let mut sent = 0u64;
    while sent < total {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Pace: datagram `sent` is due at `sent / pps` seconds.
        let due = start + Duration::from_secs_f64(sent as f64 / pps.max(1) as f64);
        if due > now {
            std::thread::sleep(due - now);
            continue;
        }
        for _ in 0..BATCH.min(total - sent) {
            let i = sent as usize;
            let socket = &sockets[i % sockets.len()];
            // A full socket buffer or an ICMP error is the flood's problem, not ours.
            let _ = socket.send_to(&packets[i % packets.len()], target);
            sent += 1;
        }
    }
    Ok(sent)
}

fn print(r: &Report) {
    let mut rows: Vec<(String, String)> = vec![
        ("server cores, quiet".into(), f(r.quiet.server.cores, 3)),
        (
            "late ticks, quiet".into(),
            format!("{} of {}", r.quiet.late_ticks, r.quiet.ticks),
        ),
    ];
    for fl in &r.floods {
        let at = |what: &str| format!("{what} @ {} pps", fl.target_pps);
        rows.extend([
            (at("offered pps"), f(fl.offered_pps, 0)),
            (at("received pps"), f(fl.received_pps, 0)),
            (at("dropped unknown pps"), f(fl.dropped_unknown_pps, 0)),
            (at("server cores"), f(fl.server.cores, 3)),
            (
                at("cores per 100k pps (above quiet)"),
                f(fl.cores_per_100k_pps, 3),
            ),
            (
                at("late ticks"),
                format!("{} of {}", fl.late_ticks, fl.ticks),
            ),
            (at("speakers after"), fl.speakers_after.to_string()),
        ]);
    }
    let rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    report::table("udp-junk: junk datagrams on the media port", &rows);
}
