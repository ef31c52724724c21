//! `captions`: how late live captions reach a listener, what they cost the server, and how
//! right they are, with the real model (Whisper base, CTranslate2 int8, one engine thread).
//!
//! Two `tribune serve` processes on loopback: one with `--captions-model`, with nginx
//! (`deploy/nginx/edge.conf`) in front of it, and one without (the baseline). Speech is
//! `espeak-ng` reading [`SCRIPT`] (the script of `crates/cli/tests/captions.rs`), one WAV made
//! at the start. Each of `--rounds` rounds runs, one after the other (never both at once, so
//! neither steals the other's CPU):
//!
//! 1. on the captioned server, a fresh space and `tribune speak --file WAV --loop --seconds S`.
//!    Every [`POLL`] the origin's and then the edge's `subs.m3u8` are read; each segment newly
//!    listed at the edge is fetched from the edge once, and for each cue first seen in it the
//!    delay is (when the playlist listing the segment arrived from the edge) − (the cue's end
//!    on the wall clock: the segment's `EXT-X-PROGRAM-DATE-TIME` + cue end − `X-TIMESTAMP-MAP`
//!    `LOCAL`); `origin_delay_ms` is the same with the time the origin first listed it. Once
//!    the speaker has stopped and the edge lists a segment ending [`DRAIN_PAST`] after that, the
//!    round's window closes: the server's CPU (utime + stime, `/proc/PID/stat`) and the
//!    `tribune_captions_*` counters are read again, the space is ended with the host token and
//!    `captions.vtt` is fetched for the word error rate;
//! 2. on the baseline server, the same: a fresh space, the same speaker for the same seconds,
//!    a window as long as the captioned one (the same time after the speaker stops), the
//!    server's CPU over it.
//!
//! CPU figures are shares of one core while speaking: CPU time over the window divided by the
//! speaker's seconds on the air (connected → exited), so a space with continuous speech costs
//! that much; `captions_cost` is the captioned server's share less the baseline's.
//!
//! Word error rate (lowercase, punctuation stripped, word-level edit distance over the
//! reference's length), of `captions.vtt`'s cues joined in order:
//! - `wer`: against the script repeated as far as it was spoken: the reference is the script
//!   repeated `ceil(k)` times and its cut is where the transcript aligns best (the fewest
//!   edits over cuts from one repetition to `ceil(k)`), `k` = seconds on the air / WAV
//!   seconds; this does not charge the transcript for the unspoken tail of the last loop;
//! - `wer_whole_reps`: against the script repeated `floor(k)` times, the transcript whole (the
//!   partial last loop's words count as insertions).
//!
//! Every phase is bounded in time; a round that fails is reported with its reason and the
//! figures it got. Both servers, the edge and every speaker are killed at the end, on errors too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use tribune_captions::{word_error_rate as wer, words};

use crate::harness::{Guard, Server, Space};
use crate::procstat;
use crate::report::{f, json, table};
use crate::varnish::free_port;

/// Arguments of `captions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start (servers and speakers).
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// The nginx binary (the edge).
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx_bin: PathBuf,
    /// Where `nginx/edge.conf` is.
    #[arg(long, default_value = "deploy")]
    deploy_dir: PathBuf,
    /// The captions model directory (scripts/captions-model.sh DIR fetches it).
    #[arg(long, default_value = "target/models/whisper-base")]
    model: PathBuf,
    /// Rounds (each a captioned run, then the same run on the baseline server).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds the speaker speaks in each run (the WAV looped).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Also write every round, every cue and the summary here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What the speaker says (as `crates/cli/tests/captions.rs`).
pub const SCRIPT: &str = "The quick brown fox jumps over the lazy dog. \
    Every word spoken in this room is written down as it is said. \
    Captions help people who cannot hear the conversation.";

/// Playlist polling interval.
const POLL: Duration = Duration::from_millis(100);
/// Bound on a setup step (a speaker connecting, the edge answering).
const SETUP: Duration = Duration::from_secs(30);
/// Bound on the captions catching up once the speaker has stopped.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// The round's window closes once the edge lists a segment ending this long after the speaker
/// stopped (past the chunker's 600 ms pause and the mix's own delay).
const DRAIN_PAST: Duration = Duration::from_millis(2000);
/// Bound on one espeak-ng or ffprobe run.
const TOOL_LIMIT: Duration = Duration::from_secs(60);
/// Two sightings of a cue's text are the same cue if their wall-clock starts are this close.
const SAME_CUE_MS: f64 = 1000.0;

/// One cue of the live rendition, first seen at the edge.
#[derive(Debug, Clone, Serialize)]
pub struct CueSeen {
    /// The segment it was first seen in.
    pub msn: u64,
    /// Its times in the media timeline, as served.
    pub media_start_ms: u64,
    pub media_end_ms: u64,
    pub text: String,
    /// Its end on the wall clock (segment PDT + end − LOCAL), Unix ms.
    pub end_unix_ms: f64,
    /// When the playlist listing its segment first arrived from the edge, Unix ms.
    pub seen_edge_unix_ms: f64,
    /// `seen_edge_unix_ms − end_unix_ms`.
    pub delay_ms: f64,
    /// The same with the time the origin first listed the segment (when it did in a poll).
    pub origin_delay_ms: Option<f64>,
}

/// One round: its figures, as far as it got.
#[derive(Debug, Default, Serialize)]
pub struct Round {
    pub round: usize,
    pub ok: bool,
    pub error: Option<String>,
    /// Captioned run: the speaker on the air (connected → exited), and the window measured
    /// (before the speaker started → the captions caught up).
    pub speaking_s: Option<f64>,
    pub window_s: Option<f64>,
    /// Speaker exited → the edge listed a segment [`DRAIN_PAST`] past it.
    pub drain_s: Option<f64>,
    /// Counter deltas over the window.
    pub engine_busy_ms: Option<f64>,
    pub cues_total: Option<f64>,
    pub chunks_total: Option<f64>,
    pub dropped_audio_ms: Option<f64>,
    /// The server's own delay figures (end of speech → cue made): the mean over the window's
    /// cues, and the gauge of the longest so far.
    pub server_delay_mean_ms: Option<f64>,
    pub server_delay_max_ms: Option<f64>,
    /// Whole-process CPU of the captioned server over the window, ms.
    pub process_cpu_ms: Option<f64>,
    /// CPU over the window of the server's threads, by name (per-space suffixes dropped;
    /// `main` is the main thread), ms, from `/proc/PID/task/*/stat`.
    pub threads_cpu_ms: BTreeMap<String, f64>,
    /// Of those, the caption threads (`captions`, `captions-in`) and the unnamed threads other
    /// than main (CTranslate2's worker, where the model runs), ms.
    pub inference_threads_cpu_ms: Option<f64>,
    /// Shares of one core while speaking (CPU / `speaking_s`); `engine_share` is from the
    /// counter, `inference_threads_share` from `inference_threads_cpu_ms`.
    pub engine_share: Option<f64>,
    pub inference_threads_share: Option<f64>,
    pub process_share: Option<f64>,
    /// Baseline run (no model): the same figures.
    pub plain_speaking_s: Option<f64>,
    pub plain_window_s: Option<f64>,
    pub plain_process_cpu_ms: Option<f64>,
    pub plain_process_share: Option<f64>,
    pub plain_threads_cpu_ms: BTreeMap<String, f64>,
    /// The same set of threads as `inference_threads_cpu_ms`, on the baseline server.
    pub plain_inference_threads_cpu_ms: Option<f64>,
    /// Segments listed at the edge, and cues seen in them.
    pub segments_seen: Option<usize>,
    pub cues_seen: Option<usize>,
    /// Cues seen twice (in neighbouring segments) with wall-clock times more than 2 ms apart.
    pub inconsistent_cues: Option<usize>,
    /// Segment fetches from the edge that did not answer 200 with WebVTT.
    pub segment_errors: Option<usize>,
    /// Loops of the script spoken (`speaking_s` / WAV seconds).
    pub loops: Option<f64>,
    pub wer: Option<f64>,
    /// Reference words the best cut kept.
    pub wer_reference_words: Option<usize>,
    pub wer_whole_reps: Option<f64>,
    /// The same (aligned) WER of the live rendition's cues (through the edge), in time order.
    pub wer_live: Option<f64>,
    /// `captions.vtt`'s cues, joined.
    pub transcript: Option<String>,
    pub cues: Vec<CueSeen>,
    /// What the round was doing (the reason of a timeout).
    #[serde(skip)]
    step: &'static str,
}

/// A distribution, nearest rank.
#[derive(Debug, Default, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Spread {
        if xs.is_empty() {
            return Spread::default();
        }
        xs.sort_by(f64::total_cmp);
        let at = |p: f64| xs[((p * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1];
        Spread {
            count: xs.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: xs[xs.len() - 1],
            mean: xs.iter().sum::<f64>() / xs.len() as f64,
        }
    }
}

/// Over the rounds that succeeded.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Every cue of every round, ms.
    pub delay_ms: Spread,
    pub origin_delay_ms: Spread,
    /// Shares of one core while speaking: sums of CPU over sums of seconds on the air.
    pub engine_share: f64,
    pub inference_threads_share: f64,
    pub process_share_captions: f64,
    pub process_share_plain: f64,
    pub captions_cost_share: f64,
    /// Mean of the rounds'.
    pub wer: f64,
    pub wer_whole_reps: f64,
    pub wer_live: f64,
    pub dropped_audio_ms: f64,
    pub cues: usize,
    pub inconsistent_cues: usize,
    pub segment_errors: usize,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub rounds_run: usize,
    pub rounds_ok: usize,
    pub seconds: u64,
    pub script: &'static str,
    pub wav_s: f64,
    pub model: String,
    pub nginx_version: String,
    pub cpus: usize,
    pub summary: Summary,
    pub rounds: Vec<Round>,
}

/// What every round shares.
struct Setup<'a> {
    args: &'a Args,
    http: reqwest::Client,
    captioned: Server,
    plain: Server,
    edge: String,
    wav: PathBuf,
    wav_s: f64,
    ticks: u64,
    dir: PathBuf,
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    ensure!(args.seconds >= 10, "--seconds must be at least 10");
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
    ensure!(
        args.model.join("model.bin").exists(),
        "no captions model at {} (scripts/captions-model.sh {}, or --model)",
        args.model.display(),
        args.model.display()
    );
    let model = args
        .model
        .canonicalize()
        .with_context(|| format!("{}", args.model.display()))?;
    let dir = std::env::temp_dir().join(format!("tribune-bench-captions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (wav, wav_s) = speech(&dir).await?;
    eprintln!("captions: the script is {wav_s:.2} s of speech");

    let captioned = Server::start(
        &args.server_bin,
        &[
            "--captions-model".into(),
            model.to_string_lossy().into_owned(),
        ],
    )
    .context("starting the captioned server")?;
    let plain = Server::start(&args.server_bin, &[]).context("starting the baseline server")?;
    let mut edge = Edge::start(
        &args,
        &format!("127.0.0.1:{}", captioned.http_addr.port()),
        &dir.join("edge"),
    )?;
    let edge_port = edge.port;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    until(SETUP, "nginx listening", async || {
        tokio::net::TcpStream::connect(("127.0.0.1", edge_port))
            .await
            .is_ok()
    })
    .await?;
    let setup = Setup {
        args: &args,
        http,
        captioned,
        plain,
        edge: format!("http://127.0.0.1:{edge_port}"),
        wav,
        wav_s,
        ticks: procstat::clock_ticks_per_second(),
        dir: dir.clone(),
    };

    let mut rounds = Vec::new();
    for i in 1..=args.rounds {
        let mut r = Round {
            round: i,
            ..Round::default()
        };
        match one_round(&setup, &mut r).await {
            Ok(()) => r.ok = true,
            Err(e) => r.error = Some(format!("{}: {e:#}", r.step)),
        }
        eprintln!(
            "captions: round {i}/{}: {}",
            args.rounds,
            match &r.error {
                None => format!(
                    "{} cues, delay p50 {} s, engine {} of a core, WER {}",
                    r.cues.len(),
                    f(
                        Spread::of(r.cues.iter().map(|c| c.delay_ms).collect()).p50 / 1000.0,
                        2
                    ),
                    f(r.engine_share.unwrap_or(0.0), 3),
                    f(r.wer.unwrap_or(f64::NAN), 3)
                ),
                Some(e) => format!("FAILED: {e}"),
            }
        );
        rounds.push(r);
    }
    edge.stop();
    drop(setup);

    let ok: Vec<&Round> = rounds.iter().filter(|r| r.ok).collect();
    let sum = |g: fn(&Round) -> Option<f64>| ok.iter().filter_map(|r| g(r)).sum::<f64>();
    let mean = |g: fn(&Round) -> Option<f64>| sum(g) / ok.len().max(1) as f64;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let speaking = sum(|r| r.speaking_s);
    let plain_speaking = sum(|r| r.plain_speaking_s);
    let mut summary = Summary {
        delay_ms: Spread::of(
            ok.iter()
                .flat_map(|r| r.cues.iter().map(|c| c.delay_ms))
                .collect(),
        ),
        origin_delay_ms: Spread::of(
            ok.iter()
                .flat_map(|r| r.cues.iter().filter_map(|c| c.origin_delay_ms))
                .collect(),
        ),
        engine_share: ratio(sum(|r| r.engine_busy_ms) / 1000.0, speaking),
        inference_threads_share: ratio(sum(|r| r.inference_threads_cpu_ms) / 1000.0, speaking),
        process_share_captions: ratio(sum(|r| r.process_cpu_ms) / 1000.0, speaking),
        process_share_plain: ratio(sum(|r| r.plain_process_cpu_ms) / 1000.0, plain_speaking),
        wer: mean(|r| r.wer),
        wer_whole_reps: mean(|r| r.wer_whole_reps),
        wer_live: mean(|r| r.wer_live),
        dropped_audio_ms: sum(|r| r.dropped_audio_ms),
        cues: ok.iter().map(|r| r.cues.len()).sum(),
        inconsistent_cues: ok.iter().filter_map(|r| r.inconsistent_cues).sum(),
        segment_errors: ok.iter().filter_map(|r| r.segment_errors).sum(),
        ..Summary::default()
    };
    summary.captions_cost_share = summary.process_share_captions - summary.process_share_plain;

    let s = |x: f64| f(x / 1000.0, 2);
    let d = &summary.delay_ms;
    let o = &summary.origin_delay_ms;
    table(
        &format!(
            "captions: Whisper base int8, {} of {} rounds of {} s of looped espeak-ng speech",
            ok.len(),
            rounds.len(),
            args.seconds
        ),
        &[
            (
                "cues measured (through the nginx edge)",
                d.count.to_string(),
            ),
            (
                "delay p50 / p90 (s)",
                format!("{} / {}", s(d.p50), s(d.p90)),
            ),
            (
                "delay p99 / max (s)",
                format!("{} / {}", s(d.p99), s(d.max)),
            ),
            (
                "delay at the origin p50 / p99 / max (s)",
                format!("{} / {} / {}", s(o.p50), s(o.p99), s(o.max)),
            ),
            (
                "engine CPU, the counter (share of a core)",
                f(summary.engine_share, 3),
            ),
            (
                "caption + inference threads, /proc (share of a core)",
                f(summary.inference_threads_share, 3),
            ),
            (
                "server CPU with captions (share of a core)",
                f(summary.process_share_captions, 3),
            ),
            (
                "server CPU without captions (share of a core)",
                f(summary.process_share_plain, 3),
            ),
            (
                "captions cost (share of a core)",
                f(summary.captions_cost_share, 3),
            ),
            ("WER, aligned to what was spoken", f(summary.wer, 3)),
            ("WER, whole vs floor(k) loops", f(summary.wer_whole_reps, 3)),
            (
                "WER of the live rendition (aligned)",
                f(summary.wer_live, 3),
            ),
            (
                "dropped audio (ms, all rounds)",
                f(summary.dropped_audio_ms, 0),
            ),
            (
                "inconsistent cue times / segment errors",
                format!("{} / {}", summary.inconsistent_cues, summary.segment_errors),
            ),
        ],
    );
    let rounds_ok = ok.len();
    let report = Report {
        rounds_run: rounds.len(),
        rounds_ok,
        seconds: args.seconds,
        script: SCRIPT,
        wav_s,
        model: model.display().to_string(),
        nginx_version: version(&args.nginx_bin),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        summary,
        rounds,
    };
    json(args.json.as_deref(), &report)?;
    if rounds_ok == report.rounds_run {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("captions: logs kept in {}", dir.display());
    }
    ensure!(rounds_ok > 0, "every round failed");
    Ok(())
}

/// Counters of the captioned server read at the window's two ends.
#[derive(Debug, Clone, Copy)]
struct Counters {
    engine_busy_ms: f64,
    cues: f64,
    chunks: f64,
    dropped_ms: f64,
    delay_sum_ms: f64,
    delay_max_ms: f64,
}

async fn counters(server: &Server) -> Result<Counters> {
    let m = server.metrics().await?;
    Ok(Counters {
        engine_busy_ms: m.get("tribune_captions_engine_busy_ms_total")?,
        cues: m.get("tribune_captions_cues_total")?,
        chunks: m.get("tribune_captions_chunks_total")?,
        dropped_ms: m.get("tribune_captions_dropped_audio_ms_total")?,
        delay_sum_ms: m.get("tribune_captions_delay_ms_sum")?,
        delay_max_ms: m.get("tribune_captions_delay_ms_max")?,
    })
}

fn unix_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// One round (see the module docs), filling `r` as it goes.
async fn one_round(su: &Setup<'_>, r: &mut Round) -> Result<()> {
    let secs = |d: Duration| d.as_secs_f64();
    let server = &su.captioned;
    let pid = server.pid();

    r.step = "creating the captioned space";
    let space = server
        .create_space(&format!("captions round {}", r.round))
        .await?;
    let index_url = format!("{}/spaces/{}/hls/index.m3u8", su.edge, space.id);
    let mut index = String::new();
    until(
        SETUP,
        "index.m3u8 through the edge",
        async || match get_text(&su.http, &index_url).await {
            Ok((200, t)) => {
                index = t;
                true
            }
            _ => false,
        },
    )
    .await?;
    ensure!(
        index.contains("subs.m3u8"),
        "the multivariant playlist lists no subtitles: {index}"
    );

    r.step = "starting the captioned run's speaker";
    let c0 = counters(server).await?;
    let p0 = procstat::sample(pid, su.ticks)?;
    let th0 = threads_cpu(pid);
    let speaker = Speaker::start(server, &space, su, &format!("reader{}", r.round)).await?;
    server.wait_metric("tribune_speakers", 1.0).await?;
    let t_on = Instant::now();

    r.step = "following the subtitles playlist";
    let subs = format!("/spaces/{}/hls/subs.m3u8", space.id);
    let (edge_pl, origin_pl) = (
        format!("{}{subs}", su.edge),
        format!("{}{subs}", server.base),
    );
    let mut origin_seen: HashMap<u64, f64> = HashMap::new();
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    let mut tries: HashMap<u64, u32> = HashMap::new();
    let mut by_text: HashMap<String, Vec<usize>> = HashMap::new();
    let (mut inconsistent, mut seg_errors) = (0usize, 0usize);
    let mut listed_end_ms = 0.0f64;
    let deadline = t_on + Duration::from_secs(su.args.seconds) + SETUP + DRAIN_LIMIT;
    let t_drained = loop {
        let tick = Instant::now();
        ensure!(
            tick < deadline,
            "the captions did not catch up within {} s of the speaker's end (listed to {:.1} s \
             before it)",
            DRAIN_LIMIT.as_secs(),
            speaker
                .exited()
                .map_or(f64::NAN, |(_, u)| (u - listed_end_ms) / 1000.0)
        );
        if let Ok((200, text)) = get_text(&su.http, &origin_pl).await {
            let at = unix_ms_now();
            for s in listed(&text) {
                origin_seen.entry(s.msn).or_insert(at);
            }
        }
        if let Ok((200, text)) = get_text(&su.http, &edge_pl).await {
            let at = unix_ms_now();
            for s in listed(&text) {
                listed_end_ms = listed_end_ms.max(s.pdt_ms + s.duration_ms);
                if seen.contains(&s.msn) {
                    continue;
                }
                let n = tries.entry(s.msn).or_insert(0);
                *n += 1;
                let url = format!("{}/spaces/{}/hls/subs/{}.vtt", su.edge, space.id, s.msn);
                let body = match get_text(&su.http, &url).await {
                    Ok((200, b)) if b.starts_with("WEBVTT") => b,
                    _ => {
                        seg_errors += 1;
                        if *n >= 3 {
                            seen.insert(s.msn);
                        }
                        continue;
                    }
                };
                seen.insert(s.msn);
                let Some((local, cues)) = parse_segment(&body) else {
                    seg_errors += 1;
                    continue;
                };
                for (start, end, text) in cues {
                    let wall = |t: u64| s.pdt_ms + t as f64 - local as f64;
                    let (ws, we) = (wall(start), wall(end));
                    let same = by_text.get(&text).and_then(|ix| {
                        ix.iter().copied().find(|&i| {
                            let c = &r.cues[i];
                            (wall(c.media_start_ms) - ws).abs() < SAME_CUE_MS
                                || (c.end_unix_ms - we).abs() < SAME_CUE_MS
                        })
                    });
                    if let Some(i) = same {
                        if (r.cues[i].end_unix_ms - we).abs() > 2.0 {
                            inconsistent += 1;
                        }
                        continue;
                    }
                    by_text.entry(text.clone()).or_default().push(r.cues.len());
                    r.cues.push(CueSeen {
                        msn: s.msn,
                        media_start_ms: start,
                        media_end_ms: end,
                        text,
                        end_unix_ms: we,
                        seen_edge_unix_ms: at,
                        delay_ms: at - we,
                        origin_delay_ms: origin_seen.get(&s.msn).map(|o| o - we),
                    });
                }
            }
        }
        if let Some((_, exit_unix)) = speaker.exited()
            && listed_end_ms >= exit_unix + DRAIN_PAST.as_millis() as f64
        {
            break Instant::now();
        }
        tokio::time::sleep_until((tick + POLL).into()).await;
    };
    let (t_off, _) = speaker.exited().context("the speaker's end")?;
    let speaking = secs(t_off.saturating_duration_since(t_on));
    ensure!(speaking > 1.0, "the speaker was on the air {speaking:.1} s");
    let c1 = counters(server).await?;
    let p1 = procstat::sample(pid, su.ticks)?;
    let th1 = threads_cpu(pid);
    let tail = t_drained - t_off;
    r.speaking_s = Some(speaking);
    r.window_s = Some(secs(p1.at - p0.at));
    r.drain_s = Some(secs(tail));
    r.engine_busy_ms = Some(c1.engine_busy_ms - c0.engine_busy_ms);
    r.cues_total = Some(c1.cues - c0.cues);
    r.chunks_total = Some(c1.chunks - c0.chunks);
    r.dropped_audio_ms = Some(c1.dropped_ms - c0.dropped_ms);
    r.server_delay_mean_ms =
        Some((c1.delay_sum_ms - c0.delay_sum_ms) / (c1.cues - c0.cues).max(1.0));
    r.server_delay_max_ms = Some(c1.delay_max_ms);
    let cpu_ms = secs(p1.cpu.saturating_sub(p0.cpu)) * 1000.0;
    r.process_cpu_ms = Some(cpu_ms);
    r.engine_share = Some((c1.engine_busy_ms - c0.engine_busy_ms) / 1000.0 / speaking);
    r.process_share = Some(cpu_ms / 1000.0 / speaking);
    r.threads_cpu_ms = by_name(&th0, &th1, su.ticks);
    let inference = inference_ms(&r.threads_cpu_ms);
    r.inference_threads_cpu_ms = Some(inference);
    r.inference_threads_share = Some(inference / 1000.0 / speaking);
    r.segments_seen = Some(seen.len());
    r.cues_seen = Some(r.cues.len());
    r.inconsistent_cues = Some(inconsistent);
    r.segment_errors = Some(seg_errors);
    drop(speaker);

    r.step = "ending the captioned space and reading captions.vtt";
    end_space(su, server, &space).await?;
    let (s, vtt) = get_text(
        &su.http,
        &format!("{}/spaces/{}/captions.vtt", server.base, space.id),
    )
    .await?;
    ensure!(s == 200, "captions.vtt: {s} {vtt}");
    let (_, cues) = parse_segment(&vtt).with_context(|| format!("captions.vtt: {vtt}"))?;
    let transcript: Vec<String> = cues.into_iter().map(|(_, _, t)| t).collect();
    let transcript = transcript.join(" ");
    let loops = speaking / su.wav_s;
    r.loops = Some(loops);
    let (w, kept) = wer_aligned(SCRIPT, &transcript, loops);
    r.wer = Some(w);
    r.wer_reference_words = Some(kept);
    r.wer_whole_reps = Some(wer(
        &vec![SCRIPT; (loops.floor() as usize).max(1)].join(" "),
        &transcript,
    ));
    let mut live = r.cues.clone();
    live.sort_by(|a, b| a.end_unix_ms.total_cmp(&b.end_unix_ms));
    let live: Vec<&str> = live.iter().map(|c| c.text.as_str()).collect();
    r.wer_live = Some(wer_aligned(SCRIPT, &live.join(" "), loops).0);
    r.transcript = Some(transcript);

    r.step = "the baseline run (no captions)";
    let pid = su.plain.pid();
    let space = su
        .plain
        .create_space(&format!("plain round {}", r.round))
        .await?;
    let p0 = procstat::sample(pid, su.ticks)?;
    let th0 = threads_cpu(pid);
    let speaker = Speaker::start(&su.plain, &space, su, &format!("plain{}", r.round)).await?;
    su.plain.wait_metric("tribune_speakers", 1.0).await?;
    let t_on = Instant::now();
    let limit = t_on + Duration::from_secs(su.args.seconds) + SETUP;
    let t_off = loop {
        if let Some((t, _)) = speaker.exited() {
            break t;
        }
        ensure!(Instant::now() < limit, "the baseline speaker did not stop");
        tokio::time::sleep(POLL).await;
    };
    tokio::time::sleep_until((t_off + tail).into()).await;
    let p1 = procstat::sample(pid, su.ticks)?;
    let th1 = threads_cpu(pid);
    let speaking = secs(t_off.saturating_duration_since(t_on));
    ensure!(
        speaking > 1.0,
        "the baseline speaker was on the air {speaking:.1} s"
    );
    let cpu_ms = secs(p1.cpu.saturating_sub(p0.cpu)) * 1000.0;
    r.plain_speaking_s = Some(speaking);
    r.plain_window_s = Some(secs(p1.at - p0.at));
    r.plain_process_cpu_ms = Some(cpu_ms);
    r.plain_process_share = Some(cpu_ms / 1000.0 / speaking);
    r.plain_threads_cpu_ms = by_name(&th0, &th1, su.ticks);
    r.plain_inference_threads_cpu_ms = Some(inference_ms(&r.plain_threads_cpu_ms));
    drop(speaker);
    end_space(su, &su.plain, &space).await?;
    ensure!(!r.cues.is_empty(), "no cue reached the edge");
    Ok(())
}

/// Thread names that end in `-` and (part of) a space id.
const PER_SPACE: [&str; 5] = ["captions-in", "captions", "mixer", "pager", "rec"];

/// Each thread of process `pid`: id → (name, utime + stime in clock ticks). The main thread is
/// named `main`; a per-space suffix (`mixer-3bzkJfR4M`) is dropped.
fn threads_cpu(pid: u32) -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // Fields 14 and 15 of proc(5); `fields` starts at field 3.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let (Some(u), Some(s)) = (field(14), field(15)) else {
            continue;
        };
        let name = if tid == pid {
            "main"
        } else {
            PER_SPACE
                .into_iter()
                .find(|p| comm.strip_prefix(p).is_some_and(|r| r.starts_with('-')))
                .unwrap_or(comm)
        };
        out.insert(tid, (name.to_owned(), u + s));
    }
    out
}

/// CPU between two [`threads_cpu`] readings by thread name, ms (a thread born in between
/// counts from 0; one that ended in between is missing).
fn by_name(
    before: &HashMap<u32, (String, u64)>,
    after: &HashMap<u32, (String, u64)>,
    ticks: u64,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (tid, (name, t)) in after {
        let t0 = before.get(tid).map_or(0, |(_, t0)| *t0);
        *out.entry(name.clone()).or_insert(0.0) +=
            t.saturating_sub(t0) as f64 * 1000.0 / ticks.max(1) as f64;
    }
    out
}

/// The caption threads and the unnamed ones but main (named like the binary, `tribune`).
fn inference_ms(threads: &BTreeMap<String, f64>) -> f64 {
    threads
        .iter()
        .filter(|(n, _)| n.starts_with("captions") || n.as_str() == "tribune")
        .map(|(_, ms)| ms)
        .sum()
}

/// `POST /api/spaces/{id}/end` with the host token.
async fn end_space(su: &Setup<'_>, server: &Server, space: &Space) -> Result<()> {
    let url = format!("{}/api/spaces/{}/end", server.base, space.id);
    let resp = su
        .http
        .post(&url)
        .bearer_auth(&space.host_token)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    ensure!(status.is_success(), "POST {url}: {status}: {text}");
    Ok(())
}

/// `tribune speak --file WAV --loop`, its log written to a file; killed on drop. Its end is
/// when its stderr closes.
struct Speaker {
    _child: Guard,
    exited: Arc<Mutex<Option<(Instant, f64)>>>,
}

impl Speaker {
    async fn start(server: &Server, space: &Space, su: &Setup<'_>, name: &str) -> Result<Speaker> {
        let extra: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--file".into(),
            su.wav.to_string_lossy().into_owned(),
            "--loop".into(),
            "--seconds".into(),
            su.args.seconds.to_string(),
        ];
        let (child, mut stderr) = server.speak_with(space, name, &extra).await?;
        let mut log = std::fs::File::create(su.dir.join(format!("speak-{name}.log")))?;
        let exited = Arc::new(Mutex::new(None));
        let done = exited.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stderr, &mut log);
            if let Ok(mut d) = done.lock() {
                *d = Some((Instant::now(), unix_ms_now()));
            }
        });
        Ok(Speaker {
            _child: child,
            exited,
        })
    }

    /// When it exited (monotonic, Unix ms), once it has.
    fn exited(&self) -> Option<(Instant, f64)> {
        self.exited.lock().ok().and_then(|g| *g)
    }
}

/// One segment as listed in `subs.m3u8`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Listed {
    msn: u64,
    pdt_ms: f64,
    duration_ms: f64,
}

/// The segments of a subtitles playlist (those with a `PROGRAM-DATE-TIME`).
fn listed(text: &str) -> Vec<Listed> {
    let (mut pdt, mut dur) = (None, 0.0);
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(t) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = tribune_media::hls::time::parse(t.trim());
        } else if let Some(d) = l.strip_prefix("#EXTINF:") {
            dur = d
                .split(',')
                .next()
                .and_then(|d| d.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
        } else if let Some(n) = l.strip_prefix("subs/").and_then(|l| l.strip_suffix(".vtt"))
            && let (Ok(msn), Some(p)) = (n.parse(), pdt.take())
        {
            out.push(Listed {
                msn,
                pdt_ms: p as f64,
                duration_ms: dur * 1000.0,
            });
        }
    }
    out
}

/// A cue as read: start and end ms, text.
type VttCue = (u64, u64, String);

/// `HH:MM:SS.mmm` or `MM:SS.mmm` → ms.
fn timestamp_ms(s: &str) -> Option<u64> {
    let (hms, frac) = s.trim().split_once('.')?;
    let ms: u64 = frac.parse().ok()?;
    let parts: Vec<u64> = hms
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let (h, m, s) = match parts.as_slice() {
        [m, s] => (0, *m, *s),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    Some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// A WebVTT text: `X-TIMESTAMP-MAP`'s `LOCAL` (0 without one) and its cues (start, end, text
/// with the entities `&amp;`, `&lt;`, `&gt;` undone). `None` if it is not WebVTT or a timing
/// line is malformed.
fn parse_segment(text: &str) -> Option<(u64, Vec<VttCue>)> {
    let mut lines = text.lines();
    if !lines.next()?.starts_with("WEBVTT") {
        return None;
    }
    let mut local = 0;
    let mut cues = Vec::new();
    let mut cur: Option<(u64, u64, Vec<String>)> = None;
    for l in lines {
        if let Some(map) = l.strip_prefix("X-TIMESTAMP-MAP=") {
            let at = map.split(',').find_map(|p| p.strip_prefix("LOCAL:"))?;
            local = timestamp_ms(at)?;
        } else if let Some((a, b)) = l.split_once("-->") {
            if let Some((s, e, t)) = cur.take() {
                cues.push((s, e, t.join(" ")));
            }
            let b = b.split_whitespace().next()?;
            cur = Some((timestamp_ms(a)?, timestamp_ms(b)?, Vec::new()));
        } else if l.trim().is_empty() {
            if let Some((s, e, t)) = cur.take() {
                cues.push((s, e, t.join(" ")));
            }
        } else if let Some((_, _, t)) = cur.as_mut() {
            t.push(
                l.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            );
        }
    }
    if let Some((s, e, t)) = cur {
        cues.push((s, e, t.join(" ")));
    }
    Some((local, cues))
}

/// Lowercase words, punctuation stripped.
/// Edit distances of `hyp` (whole) against every prefix of `reference`: `d[i]` is the distance
/// to the first `i` reference words.
fn distances(reference: &[String], hyp: &[String]) -> Vec<usize> {
    let mut prev: Vec<usize> = (0..=hyp.len()).collect();
    let mut out = vec![hyp.len()];
    for (i, rw) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hyp.len() + 1];
        for (j, hw) in hyp.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        out.push(cur[hyp.len()]);
        prev = cur;
    }
    out
}

/// WER of `hyp` against `script` looped `loops` times, cut where `hyp` aligns best (see the
/// module docs); and the reference words kept.
fn wer_aligned(script: &str, hyp: &str, loops: f64) -> (f64, usize) {
    let one = words(script).len();
    let reps = (loops.ceil() as usize).max(1);
    let r = words(&vec![script; reps].join(" "));
    let d = distances(&r, &words(hyp));
    // The fewest edits; of equals, the longest reference.
    let best = (one.min(r.len())..=r.len())
        .min_by_key(|&i| (d[i], std::cmp::Reverse(i)))
        .unwrap_or(r.len());
    (d[best] as f64 / best.max(1) as f64, best)
}

/// A GET: (status, body).
async fn get_text(http: &reqwest::Client, url: &str) -> Result<(u16, String)> {
    let resp = http
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
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

/// Runs `program` with `args` (bounded by [`TOOL_LIMIT`]); fails unless it exits 0.
async fn tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<std::process::Output> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let out = tokio::time::timeout(TOOL_LIMIT, child.wait_with_output())
        .await
        .with_context(|| format!("{program} took over {} s", TOOL_LIMIT.as_secs()))?
        .with_context(|| format!("running {program}"))?;
    ensure!(
        out.status.success(),
        "{program}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

/// The script as espeak-ng speaks it (a 22.05 kHz WAV in `dir`), and its length in seconds.
async fn speech(dir: &Path) -> Result<(PathBuf, f64)> {
    let wav = dir.join("script.wav");
    let w = wav.as_os_str();
    tool(
        "espeak-ng",
        &[
            "-v".as_ref(),
            "en-us".as_ref(),
            "-s".as_ref(),
            "145".as_ref(),
            "-g".as_ref(),
            "8".as_ref(),
            "-w".as_ref(),
            w,
            SCRIPT.as_ref(),
        ],
    )
    .await
    .context("espeak-ng (Debian's espeak-ng)")?;
    let probe = tool(
        "ffprobe",
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-show_entries".as_ref(),
            "format=duration".as_ref(),
            "-of".as_ref(),
            "csv=p=0".as_ref(),
            w,
        ],
    )
    .await?;
    let text = String::from_utf8_lossy(&probe.stdout);
    let secs: f64 = text
        .trim()
        .parse()
        .with_context(|| format!("ffprobe gave no duration: {text:?}"))?;
    ensure!(secs > 1.0, "the speech is {secs} s long");
    Ok((wav, secs))
}

/// The first line nginx prints of its version.
fn version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

/// nginx with `deploy/nginx/edge.conf` in front of `origin` (`host:port`); stopped on drop.
struct Edge {
    child: std::process::Child,
    port: u16,
}

impl Edge {
    fn start(args: &Args, origin: &str, dir: &Path) -> Result<Edge> {
        let cache = dir.join("cache");
        std::fs::create_dir_all(&cache)?;
        let port = free_port()?;
        let conf = std::fs::read_to_string(args.deploy_dir.join("nginx/edge.conf"))
            .context("deploy/nginx/edge.conf (run from the repository root, or --deploy-dir)")?
            .replace("@USER@", "root")
            .replace("@PORT@", &format!("127.0.0.1:{port}"))
            .replace("@ORIGIN@", origin)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_error_rates() {
        assert_eq!(wer("a b c d", "a b c d"), 0.0);
        assert_eq!(wer("a b c d", "a x c d"), 0.25);
        assert_eq!(wer("The fox, jumps!", "the fox jumps"), 0.0);
        assert_eq!(wer("a b", ""), 1.0);
        // Two and a half loops spoken, all right: the aligned WER is 0, cut after 10 words.
        let (w, kept) = wer_aligned("a b c d", "a b c d a b c d a b", 2.5);
        assert_eq!((w, kept), (0.0, 10));
        // Against two whole loops, the partial third is two insertions.
        assert_eq!(wer("a b c d a b c d", "a b c d a b c d a b"), 0.25);
    }

    #[test]
    fn a_segment_and_a_playlist() {
        let seg = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:10.000\n\n\
                   00:00:09.500 --> 00:00:11.250\nHello &amp; you\n\n00:11.300 --> 00:00:12.000\nx\n";
        let (local, cues) = parse_segment(seg).unwrap();
        assert_eq!(local, 10_000);
        assert_eq!(
            cues,
            vec![
                (9_500, 11_250, "Hello & you".to_owned()),
                (11_300, 12_000, "x".to_owned())
            ]
        );
        assert!(parse_segment("WEBVT\n").is_none());
        let pl = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:2.0,\nsubs/4.vtt\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n#EXTINF:1.92,\nsubs/5.vtt\n";
        assert_eq!(
            listed(pl),
            vec![
                Listed {
                    msn: 4,
                    pdt_ms: 1_700_000_000_000.0,
                    duration_ms: 2000.0
                },
                Listed {
                    msn: 5,
                    pdt_ms: 1_700_000_002_000.0,
                    duration_ms: 1920.0
                }
            ]
        );
    }

    #[test]
    fn spread_is_nearest_rank() {
        let s = Spread::of((1..=20).map(f64::from).collect());
        assert_eq!(
            (s.count, s.p50, s.p90, s.p99, s.max),
            (20, 10.0, 18.0, 20.0, 20.0)
        );
        assert_eq!(Spread::of(vec![]).count, 0);
    }
}
