//! `hls-package`: what packaging one LL-HLS part costs the pager thread early in a space and
//! hours into it.
//!
//! The server's own [`Packager`] is driven in process with synthetic 20 ms packets (80 bytes,
//! a 32 kb/s Opus packet's size: the muxer does not look inside) and injected timestamps, so
//! nothing sleeps and three hours of parts take seconds. A part's cost is the wall time of the
//! 20 `push` calls that make it: the fMP4 fragment, the rendition's bookkeeping, closing a
//! segment every fifth part, and the playlists published for the HTTP handlers. It is measured
//! over a window of parts after `--early-minutes` and again after `--minutes`; packaging that
//! does not grow with the space gives the same figure at both points. Segments and the journal
//! go to a scratch directory by the packager's own disk thread, as in the server.
//!
//! For comparison, at each point the benchmark also times what rendering the whole `dvr.m3u8`
//! costs there ([`Rendition::dvr_playlist`] and its content hash, on a rendition fed the same
//! parts): what every segment close paid before the playlist was rendered incrementally; and
//! what the first request for a new version of it now pays instead, off the packager's thread
//! (joining the kept pieces, [`tribune_media::hls::DvrText::render`], and hashing them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use tribune_engine::gzip::fnv1a;
use tribune_engine::hls::{Hls, Packager};
use tribune_media::fmp4::{TRACK_ID, Track};
use tribune_media::hls::{self, Rendition};

use crate::report::{self, f};

/// 20 ms packets per 400 ms part (the default part target).
const PACKET_MS: u64 = 20;
/// Bytes per synthetic packet: 32 kb/s × 20 ms.
const PACKET_BYTES: usize = 80;
/// Wall-clock origin of the simulated space (Unix ms), a fixed date so runs are comparable.
const START_MS: u64 = 1_717_000_000_000;
/// Whole-playlist renders timed at each point (their median is reported).
const WHOLE_RENDERS: usize = 21;

/// Arguments of `hls-package`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Length of the space when the first window is measured, simulated minutes.
    #[arg(long, default_value_t = 1)]
    early_minutes: u64,
    /// Length of the space when the second window is measured, simulated minutes.
    #[arg(long, default_value_t = 180)]
    minutes: u64,
    /// Simulated seconds of parts measured at each point.
    #[arg(long, default_value_t = 60)]
    window_seconds: u64,
    /// Scratch directory for the segments (removed afterwards); default: a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The figures at one point of the space.
#[derive(Debug, Serialize)]
pub struct Point {
    /// Simulated length of the space when the window starts, seconds.
    pub at_seconds: u64,
    /// Parts measured.
    pub parts: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Mean over the parts that closed a segment (one in five): where `dvr.m3u8` changes.
    pub closing_mean_us: f64,
    /// Size of `dvr.m3u8` at the start of the window.
    pub dvr_bytes: usize,
    /// Median time to render the whole `dvr.m3u8` and hash it there: the old cost of every
    /// segment close.
    pub whole_dvr_us: f64,
    /// Median time to join the kept `dvr.m3u8` pieces and hash them: what the first request
    /// for each new version pays.
    pub join_dvr_us: f64,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub early: Point,
    pub late: Point,
    /// Mean per-part cost late over early (1.0: packaging does not grow with the space).
    pub late_over_early: f64,
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    ensure!(
        args.window_seconds > 0
            && args.early_minutes * 60 + args.window_seconds <= args.minutes * 60,
        "need --window-seconds > 0 and the early window to end before --minutes"
    );
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tribune-bench-hls-package-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = hls::Config::default();
    let track = Track {
        channels: 1,
        pre_skip: 312,
        input_sample_rate: 48_000,
        track_id: TRACK_ID,
    };
    let clock = tribune_engine::clock::Clock::manual(START_MS);
    let h = Hls::new(&track, cfg, 32_000, dir.clone(), clock).context("creating the rendition")?;
    let mut meta = serde_json::Map::new();
    meta.insert("lifecycle".into(), "live".into());
    meta.insert("listeners".into(), 12.into());
    h.set_meta(meta);
    let mut packager = Packager::new(h.clone()).context("starting the packager")?;
    let mut shadow = Rendition::new(cfg);

    let part_ms = cfg.part_target.as_millis() as u64;
    let per_part = (part_ms / PACKET_MS) as usize;
    let parts_in = |seconds: u64| seconds * 1000 / part_ms;
    let window = parts_in(args.window_seconds);
    let points = [
        parts_in(args.early_minutes * 60),
        parts_in(args.minutes * 60),
    ];
    let mut results = Vec::new();
    let mut samples: Vec<(u64, bool)> = Vec::new();
    let mut dvr_bytes = 0;
    let mut whole_dvr_us = 0.0;
    let mut join_dvr_us = 0.0;
    let packet = vec![0x5a_u8; PACKET_BYTES];
    let mut n_packet = 0u64;
    for part in 0..points[1] + window {
        if points.contains(&part) {
            (dvr_bytes, whole_dvr_us, join_dvr_us) = whole_dvr(&shadow);
            samples.clear();
        }
        let t0 = Instant::now();
        for _ in 0..per_part {
            packager.push(packet.clone(), START_MS + n_packet * PACKET_MS);
            n_packet += 1;
        }
        let ns = t0.elapsed().as_nanos() as u64;
        shadow.push_part(cfg.part_target, START_MS + part * part_ms);
        let closing = shadow.next_part().part == 0;
        if points.iter().any(|&p| (p..p + window).contains(&part)) {
            samples.push((ns, closing));
            if samples.len() as u64 == window {
                let at = points.iter().find(|&&p| p <= part && part < p + window);
                let at_seconds = at.map_or(0, |p| p * part_ms / 1000);
                let dvr = (dvr_bytes, whole_dvr_us, join_dvr_us);
                results.push(point(at_seconds, &samples, dvr));
            }
        }
    }
    packager.end(true);
    let _ = std::fs::remove_dir_all(&dir);
    let mut it = results.into_iter();
    let (Some(early), Some(late)) = (it.next(), it.next()) else {
        anyhow::bail!("a window was not measured");
    };
    let report = Report {
        late_over_early: late.mean_us / early.mean_us,
        early,
        late,
    };
    print(&report);
    report::json(args.json.as_deref(), &report)
}

/// Size of the whole `dvr.m3u8` of `r`, and the median times (µs) to render it whole and to
/// join its kept pieces, each with its hash.
fn whole_dvr(r: &Rendition) -> (usize, f64, f64) {
    let median = |f: &dyn Fn() -> String| {
        let mut times = Vec::with_capacity(WHOLE_RENDERS);
        let mut len = 0;
        for _ in 0..WHOLE_RENDERS {
            let t0 = Instant::now();
            let text = f();
            let hash = fnv1a(text.as_bytes());
            times.push(t0.elapsed());
            len = std::hint::black_box((text, hash)).0.len();
        }
        times.sort_unstable();
        (len, us(times[times.len() / 2]))
    };
    let (len, whole) = median(&|| r.dvr_playlist());
    let kept = r.dvr_text();
    let (_, join) = median(&|| kept.render());
    (len, whole, join)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The figures of a window; `dvr` is what [`whole_dvr`] measured at its start.
fn point(at_seconds: u64, samples: &[(u64, bool)], dvr: (usize, f64, f64)) -> Point {
    let (dvr_bytes, whole_dvr_us, join_dvr_us) = dvr;
    let mut ns: Vec<u64> = samples.iter().map(|s| s.0).collect();
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    let closing: Vec<u64> = samples.iter().filter(|s| s.1).map(|s| s.0).collect();
    Point {
        at_seconds,
        parts: ns.len(),
        mean_us: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: pct(1.0),
        closing_mean_us: closing.iter().sum::<u64>() as f64 / closing.len().max(1) as f64 / 1000.0,
        dvr_bytes,
        whole_dvr_us,
        join_dvr_us,
    }
}

fn print(r: &Report) {
    let mut rows = Vec::new();
    for (name, p) in [("early", &r.early), ("late", &r.late)] {
        let at = format!("{} min", f(p.at_seconds as f64 / 60.0, 0));
        rows.push((format!("{name}: space length"), at));
        rows.push((format!("{name}: parts measured"), p.parts.to_string()));
        rows.push((format!("{name}: per part mean, µs"), f(p.mean_us, 1)));
        rows.push((format!("{name}: per part p50, µs"), f(p.p50_us, 1)));
        rows.push((format!("{name}: per part p99, µs"), f(p.p99_us, 1)));
        rows.push((format!("{name}: per part max, µs"), f(p.max_us, 1)));
        rows.push((
            format!("{name}: segment-closing part mean, µs"),
            f(p.closing_mean_us, 1),
        ));
        rows.push((format!("{name}: dvr.m3u8, bytes"), p.dvr_bytes.to_string()));
        rows.push((
            format!("{name}: whole dvr.m3u8 render + hash, µs"),
            f(p.whole_dvr_us, 1),
        ));
        rows.push((
            format!("{name}: join kept dvr.m3u8 + hash (a request), µs"),
            f(p.join_dvr_us, 1),
        ));
    }
    rows.push(("late / early (mean)".into(), f(r.late_over_early, 2)));
    let rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    report::table("hls-package: cost of one LL-HLS part", &rows);
}
