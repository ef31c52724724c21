//! `glass`: glass-to-glass latency from a speaker to an HLS listener.
//!
//! A WAV of silence with a 100 ms 1 kHz beep every 2.12 s is published with `tribune speak --file`.
//! `speak` sends its first frame on the first 20 ms tick after it logs "WebRTC connected", and
//! then one frame per tick on a drift-free schedule, so beep k leaves the speaker at
//! `connected + 10 ms (half a tick, ± 10 ms) + offset_k`; the bench reads that log line from the
//! speaker's stderr as it is written and stamps it on its own monotonic clock.
//!
//! Two listeners run at the same time, both started (and receiving silence) before the speaker
//! connects, so the first beep either hears is beep 0:
//! - **LL-HLS** (in the bench): fetches `live.m3u8`, then loops on the preload-hinted part together
//!   with the blocking reload `_HLS_msn`/`_HLS_part` for it, decodes each part's Opus packets
//!   (minimal `moof`/`trun`/`mdat` parsing) and stamps when the part's body arrived.
//! - **ffmpeg** (`ffmpeg -i live.m3u8`, no LL-HLS support: it polls for whole segments), decoding
//!   to raw PCM on a pipe flushed per packet; each read of PCM is stamped when read. Run twice:
//!   as fast as the segments come (the arrival of the data), and with `-re` (read at the native
//!   rate from where it started, three segments behind the live edge, as a player plays).
//!
//! A beep is detected at its first sample above 0.1 after at least 0.5 s below; its index comes
//! from the decoded sample position (101,760 samples per beep), so a missed beep does not
//! shift the others. Latency = arrival − send time.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use tribune_media::hls::validate;

use crate::harness::{SETUP_LIMIT, Server};
use crate::report::f;

const RATE: u32 = 48_000;
/// Offset of the first beep in the WAV, seconds.
const FIRST_BEEP_S: f64 = 1.0;
/// Beep period, seconds: about 2 s, but not a multiple of the 400 ms part (nor of the 2 s
/// segment), so that beeps fall at every phase of a part: 2.12 s gives 10 phases 40 ms apart.
/// A multiple of the 20 ms frame, so every beep starts on a frame.
const PERIOD_S: f64 = 2.12;
const BEEP_MS: u64 = 100;
const BEEP_HZ: f64 = 1000.0;
const BEEP_AMPLITUDE: f64 = 0.5;
/// A sample above this starts a beep...
const ONSET_LEVEL: f32 = 0.1;
/// ... after at least this many samples at or below it.
const QUIET_SAMPLES: u64 = RATE as u64 / 2;
/// Half a 20 ms tick: the mean wait from "WebRTC connected" to the first frame.
const FIRST_FRAME_DELAY: Duration = Duration::from_millis(10);

/// Arguments of `glass`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// How long the speaker talks, seconds (one beep per 2 s).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Extra seconds the listeners keep listening after the speaker's last beep.
    #[arg(long, default_value_t = 12)]
    tail_seconds: u64,
    /// The ffmpeg binary (the non-LL player); empty to skip it.
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: String,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One listener's beeps.
#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub name: String,
    pub beeps_sent: usize,
    pub beeps_heard: usize,
    pub latency_ms: Vec<f64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
    pub first_error: Option<String>,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub seconds: u64,
    pub loadavg_before: String,
    pub loadavg_after: String,
    pub ll_hls: Listener,
    pub ffmpeg: Option<Listener>,
    pub ffmpeg_re: Option<Listener>,
    /// `PART-HOLD-BACK` and `HOLD-BACK` of the playlist, seconds: where players start.
    pub part_hold_back_s: Option<f64>,
    pub hold_back_s: Option<f64>,
    /// LL-HLS only: parts fetched and part fetches that skipped ahead (media gaps).
    pub ll_parts: u64,
    pub ll_part_gaps: u64,
}

/// Beep onsets found in a decoded stream: (sample position, arrival).
#[derive(Debug, Default)]
struct Detector {
    pos: u64,
    quiet: u64,
    onsets: Vec<(u64, Instant)>,
}

impl Detector {
    fn new() -> Detector {
        Detector {
            pos: 0,
            quiet: 0,
            onsets: Vec::new(),
        }
    }

    fn push(&mut self, samples: &[f32], arrival: Instant) {
        for &s in samples {
            if s.abs() > ONSET_LEVEL {
                if self.quiet >= QUIET_SAMPLES {
                    self.onsets.push((self.pos, arrival));
                }
                self.quiet = 0;
            } else {
                self.quiet += 1;
            }
            self.pos += 1;
        }
    }

    /// Latency per beep: the first onset is beep 0 (the listener was receiving before the
    /// speaker connected), later ones are numbered by their distance in samples from it.
    fn latencies(&self, first_send: Instant, beeps: usize) -> Vec<Option<f64>> {
        let mut out = vec![None; beeps];
        let Some(&(p0, _)) = self.onsets.first() else {
            return out;
        };
        let period = PERIOD_S * RATE as f64;
        for &(p, at) in &self.onsets {
            let k = ((p - p0) as f64 / period).round() as usize;
            if k < beeps && out[k].is_none() {
                let sent = first_send + Duration::from_secs_f64(FIRST_BEEP_S + k as f64 * PERIOD_S);
                out[k] = Some(signed_ms(at, sent));
            }
        }
        out
    }
}

fn signed_ms(at: Instant, since: Instant) -> f64 {
    if at >= since {
        (at - since).as_secs_f64() * 1000.0
    } else {
        -((since - at).as_secs_f64() * 1000.0)
    }
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    ensure!(args.seconds >= 4, "--seconds must be at least 4");
    let loadavg_before = crate::hls_serve::loadavg();
    let server = Server::start(&args.server_bin, &[])?;
    let space = server.create_space("glass").await?;
    let beeps = ((args.seconds as f64 - FIRST_BEEP_S) / PERIOD_S).floor() as usize + 1;
    let wav = server.data_dir().join("beeps.wav");
    write_wav(&wav, args.seconds as f64 + 0.5)?;

    let hls = format!("{}/spaces/{}/hls/", server.base, space.id);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    // The rendition must be there (silent) before the speaker comes.
    let end = Instant::now() + SETUP_LIMIT;
    let control = loop {
        let r = http.get(format!("{hls}live.m3u8")).send().await?;
        if r.status().is_success() {
            let p = validate::parse(&r.text().await?).map_err(|e| anyhow::anyhow!("{e}"))?;
            if p.segments.len() >= 3 || args.ffmpeg.is_empty() {
                break p.server_control.unwrap_or_default();
            }
        }
        if Instant::now() > end {
            bail!("live.m3u8 did not list 3 segments in {SETUP_LIMIT:?} without a speaker");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let listen_for = Duration::from_secs(args.seconds + args.tail_seconds) + SETUP_LIMIT;
    let ll = Arc::new(Mutex::new(LlState::default()));
    let ll_task = {
        let (http, hls, ll) = (http.clone(), hls.clone(), ll.clone());
        tokio::spawn(async move {
            let r = ll_listen(&http, &hls, &ll, listen_for).await;
            if let Err(e) = r {
                ll.lock()
                    .expect("not poisoned")
                    .error
                    .get_or_insert(format!("{e:#}"));
            }
        })
    };
    let ff = (!args.ffmpeg.is_empty())
        .then(|| Ffmpeg::start(&args.ffmpeg, &format!("{hls}live.m3u8"), false))
        .transpose()?;
    let ff_re = (!args.ffmpeg.is_empty())
        .then(|| Ffmpeg::start(&args.ffmpeg, &format!("{hls}live.m3u8"), true))
        .transpose()?;

    // Both listeners hear (silent) audio before the speaker starts.
    let end = Instant::now() + SETUP_LIMIT;
    loop {
        let ll_ok = ll.lock().expect("not poisoned").detector.pos > 0;
        let ff_ok =
            ff.as_ref().is_none_or(|f| f.pos() > 0) && ff_re.as_ref().is_none_or(|f| f.pos() > 0);
        if ll_ok && ff_ok {
            break;
        }
        if let Some(e) = &ll.lock().expect("not poisoned").error {
            bail!("LL-HLS listener: {e}");
        }
        if Instant::now() > end {
            bail!("listeners got no audio (ll {ll_ok}, ffmpeg {ff_ok}) in {SETUP_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("listeners receiving; starting the speaker ({beeps} beeps)");

    let (speaker, stderr) = server
        .speak_with(
            &space,
            "beeps",
            &[
                "--file".into(),
                wav.display().to_string(),
                "--seconds".into(),
                (args.seconds + 2).to_string(),
            ],
        )
        .await?;
    let connected = Arc::new(Mutex::new(None::<Instant>));
    {
        let connected = connected.clone();
        let log = server.data_dir().join("speak-beeps.log");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(log).ok();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("WebRTC connected") {
                    connected
                        .lock()
                        .expect("not poisoned")
                        .get_or_insert(Instant::now());
                }
                if let Some(f) = file.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
            }
        });
    }
    let end = Instant::now() + SETUP_LIMIT;
    let connected_at = loop {
        if let Some(t) = *connected.lock().expect("not poisoned") {
            break t;
        }
        if Instant::now() > end {
            bail!("the speaker did not connect in {SETUP_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let first_send = connected_at + FIRST_FRAME_DELAY;
    eprintln!(
        "speaker connected; listening {} s",
        args.seconds + args.tail_seconds
    );
    tokio::time::sleep(Duration::from_secs(args.seconds + args.tail_seconds)).await;
    drop(speaker);
    ll_task.abort();
    let _ = ll_task.await;

    let ll = ll.lock().expect("not poisoned");
    let ll_hls = summarize(
        "LL-HLS (bench client: hinted part + blocking reload)",
        ll.detector.latencies(first_send, beeps),
        ll.error.clone(),
    );
    let ffmpeg = ff.map(|ff| {
        let (lat, err) = ff.finish(first_send, beeps);
        summarize(
            "ffmpeg -i live.m3u8 (segments, as fast as they come)",
            lat,
            err,
        )
    });
    let ffmpeg_re = ff_re.map(|ff| {
        let (lat, err) = ff.finish(first_send, beeps);
        summarize(
            "ffmpeg -re -i live.m3u8 (segments, played in real time)",
            lat,
            err,
        )
    });
    let report = Report {
        seconds: args.seconds,
        loadavg_before,
        loadavg_after: crate::hls_serve::loadavg(),
        ll_hls,
        ffmpeg,
        ffmpeg_re,
        part_hold_back_s: control.part_hold_back,
        hold_back_s: control.hold_back,
        ll_parts: ll.parts,
        ll_part_gaps: ll.gaps,
    };
    print(&report);
    crate::report::json(args.json.as_deref(), &report)
}

fn summarize(name: &str, lat: Vec<Option<f64>>, first_error: Option<String>) -> Listener {
    let beeps_sent = lat.len();
    let v: Vec<f64> = lat.into_iter().flatten().collect();
    let heard = v.len();
    let mut sorted = v.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if sorted.is_empty() {
            f64::NAN
        } else {
            sorted[((sorted.len() - 1) as f64 * p).round() as usize]
        }
    };
    Listener {
        name: name.into(),
        beeps_sent,
        beeps_heard: heard,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        max_ms: q(1.0),
        min_ms: q(0.0),
        latency_ms: v,
        first_error,
    }
}

/// 48 kHz mono 16-bit WAV: silence with a beep every [`PERIOD_S`] from [`FIRST_BEEP_S`].
fn write_wav(path: &Path, seconds: f64) -> Result<()> {
    let n = (seconds * RATE as f64) as usize;
    let mut pcm = vec![0i16; n];
    let beep = (BEEP_MS * RATE as u64 / 1000) as usize;
    let mut k = 0;
    loop {
        let start = ((FIRST_BEEP_S + k as f64 * PERIOD_S) * RATE as f64) as usize;
        if start >= n {
            break;
        }
        for (i, s) in pcm[start..(start + beep).min(n)].iter_mut().enumerate() {
            let t = i as f64 / RATE as f64;
            *s = (BEEP_AMPLITUDE * (2.0 * std::f64::consts::PI * BEEP_HZ * t).sin() * 32767.0)
                as i16;
        }
        k += 1;
    }
    let data_len = (n * 2) as u32;
    let mut out = Vec::with_capacity(44 + n * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// The LL-HLS listener's state, shared with the reporter.
#[derive(Default)]
struct LlState {
    detector: Detector,
    parts: u64,
    gaps: u64,
    error: Option<String>,
}

/// Follows the live edge: the hinted part and the blocking reload for it, at the same time.
async fn ll_listen(
    http: &reqwest::Client,
    hls: &str,
    state: &Mutex<LlState>,
    length: Duration,
) -> Result<()> {
    let end = Instant::now() + length;
    let text = http
        .get(format!("{hls}live.m3u8"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut playlist = validate::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut decoder = opus::Decoder::new(RATE, opus::Channels::Mono)?;
    let mut pcm = vec![0f32; 5760];
    let mut last: Option<(u64, u64)> = None;
    while Instant::now() < end {
        let hint = playlist
            .preload_hints
            .iter()
            .find(|h| h.kind == "PART")
            .context("no EXT-X-PRELOAD-HINT part")?
            .uri
            .clone();
        let (msn, part) = part_id(&hint).with_context(|| format!("hint {hint}"))?;
        let reload = format!("{hls}live.m3u8?_HLS_msn={msn}&_HLS_part={part}");
        let (body, text) = tokio::join!(
            async {
                let r = http.get(format!("{hls}{hint}")).send().await?;
                let r = r.error_for_status()?;
                let b = r.bytes().await?;
                Ok::<_, anyhow::Error>((b, Instant::now()))
            },
            async {
                let r = http.get(&reload).send().await?.error_for_status()?;
                Ok::<_, anyhow::Error>(r.text().await?)
            }
        );
        let (body, arrival) = body?;
        playlist = validate::parse(&text?).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut st = state.lock().expect("not poisoned");
        st.parts += 1;
        if let Some((m, p)) = last
            && !((msn == m && part == p + 1) || (msn == m + 1 && part == 0))
        {
            st.gaps += 1;
        }
        last = Some((msn, part));
        for packet in opus_packets(&body)? {
            let n = decoder.decode_float(packet, &mut pcm, false)?;
            st.detector.push(&pcm[..n], arrival);
        }
    }
    Ok(())
}

/// `part/{msn}.{i}.m4s` → (msn, i).
fn part_id(uri: &str) -> Option<(u64, u64)> {
    let name = uri.rsplit('/').next()?.strip_suffix(".m4s")?;
    let (m, i) = name.split_once('.')?;
    Some((m.parse().ok()?, i.parse().ok()?))
}

/// The samples of a CMAF fragment (or several back to back): per `moof`, the sizes in its
/// `trun`s, then the packets in the `mdat` that follows.
fn opus_packets(data: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    for (kind, body) in boxes(data)? {
        match kind {
            b"moof" => {
                sizes.clear();
                for (k, traf) in boxes(body)? {
                    if k != b"traf" {
                        continue;
                    }
                    for (k, b) in boxes(traf)? {
                        if k == b"trun" {
                            sizes.extend(trun_sizes(b)?);
                        }
                    }
                }
            }
            b"mdat" => {
                let mut at = 0;
                for &s in &sizes {
                    ensure!(at + s <= body.len(), "mdat shorter than trun");
                    out.push(&body[at..at + s]);
                    at += s;
                }
                sizes.clear();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Boxes in `data`: (type, body).
fn boxes(mut data: &[u8]) -> Result<Vec<(&[u8; 4], &[u8])>> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let size = u32::from_be_bytes(data[..4].try_into()?) as usize;
        let kind: &[u8; 4] = data[4..8].try_into()?;
        ensure!(size >= 8 && size <= data.len(), "bad box size {size}");
        out.push((kind, &data[8..size]));
        data = &data[size..];
    }
    Ok(out)
}

/// Sample sizes of a `trun` box body (ISO/IEC 14496-12 §8.8.8).
fn trun_sizes(b: &[u8]) -> Result<Vec<usize>> {
    ensure!(b.len() >= 8, "short trun");
    let flags = u32::from_be_bytes([0, b[1], b[2], b[3]]);
    let count = u32::from_be_bytes(b[4..8].try_into()?) as usize;
    ensure!(flags & 0x200 != 0, "trun without sample sizes");
    let mut at = 8;
    if flags & 0x1 != 0 {
        at += 4;
    }
    if flags & 0x4 != 0 {
        at += 4;
    }
    let per = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count()
        * 4;
    let size_at = if flags & 0x100 != 0 { 4 } else { 0 };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let o = at + i * per + size_at;
        ensure!(o + 4 <= b.len(), "short trun");
        out.push(u32::from_be_bytes(b[o..o + 4].try_into()?) as usize);
    }
    Ok(out)
}

/// `ffmpeg -i live.m3u8` decoding to 48 kHz mono s16 on a pipe; a thread stamps each read.
struct Ffmpeg {
    child: std::process::Child,
    detector: Arc<Mutex<Detector>>,
    reader: Option<std::thread::JoinHandle<()>>,
    log: PathBuf,
}

impl Ffmpeg {
    fn start(bin: &str, url: &str, realtime: bool) -> Result<Ffmpeg> {
        let log = std::env::temp_dir().join(format!(
            "tribune-bench-ffmpeg-{}-{realtime}.log",
            std::process::id()
        ));
        let mut child = Command::new(bin)
            .args(["-nostdin", "-hide_banner", "-loglevel", "warning"])
            .args(if realtime { &["-re"][..] } else { &[][..] })
            .args(["-i", url])
            .args([
                "-f",
                "s16le",
                "-ac",
                "1",
                "-ar",
                "48000",
                "-flush_packets",
                "1",
            ])
            .arg("pipe:1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut stdout = child.stdout.take().context("ffmpeg stdout")?;
        let detector = Arc::new(Mutex::new(Detector::new()));
        let d = detector.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 3840];
            let mut carry: Option<u8> = None;
            let mut samples = Vec::with_capacity(1920);
            loop {
                let n = match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let at = Instant::now();
                samples.clear();
                let mut bytes = buf[..n].iter().copied();
                if let Some(lo) = carry.take()
                    && let Some(hi) = bytes.next()
                {
                    samples.push(i16::from_le_bytes([lo, hi]) as f32 / 32768.0);
                }
                loop {
                    match (bytes.next(), bytes.next()) {
                        (Some(lo), Some(hi)) => {
                            samples.push(i16::from_le_bytes([lo, hi]) as f32 / 32768.0)
                        }
                        (Some(lo), None) => {
                            carry = Some(lo);
                            break;
                        }
                        _ => break,
                    }
                }
                d.lock().expect("not poisoned").push(&samples, at);
            }
        });
        Ok(Ffmpeg {
            child,
            detector,
            reader: Some(reader),
            log,
        })
    }

    fn pos(&self) -> u64 {
        self.detector.lock().expect("not poisoned").pos
    }

    fn finish(mut self, first_send: Instant, beeps: usize) -> (Vec<Option<f64>>, Option<String>) {
        let exited = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = exited
            .map(|s| format!("ffmpeg exited early ({s}): {}", log.trim()))
            .or_else(|| {
                (!log.trim().is_empty())
                    .then(|| log.lines().take(3).collect::<Vec<_>>().join(" / "))
            });
        let lat = self
            .detector
            .lock()
            .expect("not poisoned")
            .latencies(first_send, beeps);
        (lat, err)
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn print(r: &Report) {
    println!(
        "\n### glass: speaker → HLS listener, {} s, a 100 ms beep every {PERIOD_S} s\n",
        r.seconds
    );
    println!("| listener | beeps heard / sent | p50 ms | p90 ms | max ms | min ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for l in std::iter::once(&r.ll_hls)
        .chain(r.ffmpeg.as_ref())
        .chain(r.ffmpeg_re.as_ref())
    {
        println!(
            "| {} | {} / {} | {} | {} | {} | {} |",
            l.name,
            l.beeps_heard,
            l.beeps_sent,
            f(l.p50_ms, 0),
            f(l.p90_ms, 0),
            f(l.max_ms, 0),
            f(l.min_ms, 0)
        );
    }
    println!(
        "\nLL-HLS parts fetched {}, part sequence gaps {}",
        r.ll_parts, r.ll_part_gaps
    );
    println!(
        "load average before / after: {} / {}",
        r.loadavg_before, r.loadavg_after
    );
    println!(
        "playlist PART-HOLD-BACK {:?} s, HOLD-BACK {:?} s",
        r.part_hold_back_s, r.hold_back_s
    );
    for l in std::iter::once(&r.ll_hls)
        .chain(r.ffmpeg.as_ref())
        .chain(r.ffmpeg_re.as_ref())
    {
        if let Some(e) = &l.first_error {
            println!("{} (error or log): {e}", l.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tribune_media::fmp4::{self, Sample};

    #[test]
    fn splits_a_fragment_into_its_packets() {
        let (a, b) = (vec![1u8; 7], vec![2u8; 13]);
        let samples = [
            Sample {
                data: &a,
                duration: 960,
            },
            Sample {
                data: &b,
                duration: 960,
            },
        ];
        let mut two = fmp4::fragment(1, 0, &samples, &[]);
        two.extend(fmp4::fragment(2, 1920, &samples[1..], &[]));
        let packets = opus_packets(&two).unwrap();
        assert_eq!(packets, vec![&a[..], &b[..], &b[..]]);
    }

    #[test]
    fn parses_part_names() {
        assert_eq!(part_id("part/12.3.m4s"), Some((12, 3)));
        assert_eq!(part_id("seg/12.m4s"), None);
    }

    #[test]
    fn numbers_beeps_by_their_distance() {
        let t0 = Instant::now();
        let mut d = Detector::new();
        let period = (PERIOD_S * RATE as f64) as usize;
        let mut pcm = vec![0f32; period * 3];
        // Beeps 0 and 2 heard, 1 missed.
        pcm[RATE as usize] = 0.5;
        pcm[RATE as usize + 2 * period] = 0.5;
        d.push(&pcm, t0 + Duration::from_secs(10));
        let lat = d.latencies(t0, 3);
        assert!(lat[0].is_some() && lat[1].is_none() && lat[2].is_some());
        assert!((lat[0].unwrap() - (10.0 - FIRST_BEEP_S) * 1000.0).abs() < 1.0);
    }
}
