//! Live captions, end to end, with the real speech model (Whisper base, CTranslate2 int8,
//! fetched by `scripts/captions-model.sh target/models/whisper-base`, which `scripts/test.sh`
//! runs): a speaker plays `espeak-ng` speech of a fixed script into a captioned space, and
//! - the WebVTT subtitles rendition read through a real nginx edge (`deploy/nginx/edge.conf`)
//!   and the whole `captions.vtt` after `/end` both hold the script's words (word error rate
//!   below [`MAX_WER`], computed here) with cue times inside the space's timeline; the public
//!   snapshot carries the latest caption for the pages;
//! - a space on a server without a model has no rendition and no caption thread (no CPU);
//! - an engine slowed on purpose drops the oldest audio and counts it, while listeners hear
//!   the mix without a gap;
//! - a missing or malformed model directory stops `serve` with a message naming it.
//!
//! Needs espeak-ng, ffprobe and nginx (`scripts/packages.sh test`) and the model directory
//! (`TRIBUNE_TEST_CAPTIONS_MODEL`, default `target/models/whisper-base`): missing, the test fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use tribune_captions::vtt;
use tribune_captions::{word_error_rate as wer, words};

/// What the speaker says.
const SCRIPT: &str = "The quick brown fox jumps over the lazy dog. \
    Every word spoken in this room is written down as it is said. \
    Captions help people who cannot hear the conversation.";

/// The word error rate the captions must stay under: espeak's synthetic voice is harder for
/// Whisper base than a person (it read "brown" as "round" in trials), and the mix is cut into
/// stretches at pauses.
const MAX_WER: f64 = 0.35;

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("TRIBUNE_TEST_CAPTIONS_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models/whisper-base")
        });
    assert!(
        dir.join("model.bin").exists(),
        "no captions model at {}: run scripts/captions-model.sh {} (scripts/test.sh does)",
        dir.display(),
        dir.display()
    );
    dir
}

/// The script as espeak-ng speaks it (22.05 kHz WAV), and its length in seconds.
fn speech(dir: &Path) -> (PathBuf, f64) {
    let wav = dir.join("script.wav");
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "145", "-g", "8", "-w"])
        .arg(&wav)
        .arg(SCRIPT)
        .status()
        .unwrap_or_else(|e| {
            panic!("espeak-ng: {e} (Debian's espeak-ng; scripts/packages.sh test installs it)")
        });
    assert!(ok.success(), "espeak-ng failed");
    let (secs, _, _) = ffmpeg_check(&wav);
    (wav, secs)
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    let s = r.status().as_u16();
    (s, r.text().await.unwrap_or_default())
}

/// Thread names of process `pid`.
fn threads(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(name) = std::fs::read_to_string(t.path().join("comm")) {
                out.push(name.trim().to_owned());
            }
        }
    }
    out
}

fn speak_file(
    whip: &str,
    token: &str,
    wav: &Path,
    seconds: f64,
    looped: bool,
) -> std::process::Child {
    let mut c = Command::new(bin());
    c.args([
        "speak",
        "--bind",
        "127.0.0.1",
        "--whip",
        whip,
        "--token",
        token,
        "--file",
    ])
    .arg(wav)
    .args(["--seconds", &format!("{seconds:.1}")]);
    if looped {
        c.arg("--loop");
    }
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn tribune speak")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captions_through_the_edge_and_in_the_replay() {
    require_file(NGINX, "nginx");
    let model = model_dir();
    let dir = temp_dir("captions-speech");
    std::fs::create_dir_all(&dir).unwrap();
    let (wav, secs) = speech(&dir);
    let model_arg = model.to_str().expect("UTF-8 path").to_owned();
    let server = ServerProc::start("captions", &["--captions-model", &model_arg]);
    let base = server.base.clone();
    let origin = base.trim_start_matches("http://").to_owned();
    let prefix = temp_dir("captions-edge");
    let cache = prefix.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let nofile = format!("worker_rlimit_nofile {};", crowd::nofile_limit());
    let edge = Nginx::start(
        "edge.conf",
        prefix,
        &[
            ("worker_rlimit_nofile 65536;", &nofile),
            ("@ORIGIN@", &origin),
            ("@CACHE@", cache.to_str().unwrap()),
        ],
    );
    let edge_base = format!("http://127.0.0.1:{}", edge.port);

    let (id, host) = create_space(&base, "captioned").await;
    let names = threads(server.child.id());
    assert!(
        names.iter().any(|n| n.starts_with("captions-")),
        "no caption thread: {names:?}"
    );
    // nginx takes a moment to listen.
    let index_url = format!("{edge_base}/spaces/{id}/hls/index.m3u8");
    assert!(
        eventually(Duration::from_secs(10), async || reqwest::get(&index_url)
            .await
            .is_ok_and(|r| r.status().is_success()))
        .await,
        "the edge serves the multivariant playlist"
    );
    let index = get_text(&index_url).await.1;
    assert!(
        index.contains("TYPE=SUBTITLES") && index.contains("SUBTITLES=\"subs\""),
        "{index}"
    );
    let tok = mint(&base, &id, &host, "speaker", "Reader").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    // The script, then a few seconds of silence (the last words end a stretch).
    let speaker = speak_file(&whip, &tok, &wav, secs + 4.0, false);
    wait_speakers(&base, 1).await;

    // Through the edge: the subtitles playlist lists the captioned segments; read them all.
    let mut heard = String::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut media_end_ms = 0u64;
    let ok = eventually(Duration::from_secs(60), async || {
        let (s, pl) = get_text(&format!("{edge_base}/spaces/{id}/hls/subs.m3u8")).await;
        if s != 200 {
            return false;
        }
        let msns: Vec<u64> = pl
            .lines()
            .filter_map(|l| l.strip_prefix("subs/").and_then(|l| l.strip_suffix(".vtt")))
            .filter_map(|n| n.parse().ok())
            .collect();
        for msn in msns {
            if !seen.insert(msn) {
                continue;
            }
            let (s, body) = get_text(&format!("{edge_base}/spaces/{id}/hls/subs/{msn}.vtt")).await;
            assert_eq!(s, 200, "subs/{msn}.vtt: {body}");
            assert!(body.contains("X-TIMESTAMP-MAP=MPEGTS:"), "{body}");
            for c in vtt::parse(&body).unwrap_or_else(|e| panic!("subs/{msn}.vtt: {e}: {body}")) {
                if !heard.contains(&c.text) {
                    heard.push_str(&c.text);
                    heard.push(' ');
                }
                media_end_ms = media_end_ms.max(c.end_ms);
            }
        }
        wer(SCRIPT, &heard) < MAX_WER
    })
    .await;
    let w = wer(SCRIPT, &heard);
    eprintln!("captions through the edge: WER {w:.2}: {heard:?}");
    assert!(
        ok,
        "the subtitles rendition through the edge: WER {w:.2} ≥ {MAX_WER}: {heard:?}"
    );
    // Cue times are media times of this space's audio (it started at 0 and has run < 2 min).
    assert!(
        media_end_ms > 0 && media_end_ms < 120_000,
        "cue end {media_end_ms} ms"
    );
    let (_, snap) = api(
        "GET",
        &format!("{base}/spaces/{id}/snapshot.json"),
        None,
        None,
    )
    .await;
    let cap = snap["cap"]["t"].as_str().unwrap_or_default().to_owned();
    assert!(
        !words(&cap).is_empty() && words(&cap).iter().all(|w| !w.is_empty()),
        "snapshot cap: {snap}"
    );

    wait_ok(speaker, "speaker");
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, whole) = get_text(&format!("{base}/spaces/{id}/captions.vtt")).await;
    assert_eq!(s, 200, "{whole}");
    let cues = vtt::parse(&whole).unwrap_or_else(|e| panic!("captions.vtt: {e}: {whole}"));
    let text: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
    let w = wer(SCRIPT, &text.join(" "));
    eprintln!("captions.vtt: WER {w:.2}: {text:?}");
    assert!(w < MAX_WER, "captions.vtt WER {w:.2}: {whole}");
    // In the recording's time: inside its length (the speech lasted `secs`, plus silence).
    let (rec_len, _, _) = ffmpeg_check(&{
        let p = dir.join("rec.opus");
        let b = reqwest::get(format!("{base}/spaces/{id}/recording.opus"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        std::fs::write(&p, &b).unwrap();
        p
    });
    for c in &cues {
        assert!(
            c.end_ms as f64 <= rec_len * 1000.0 + 500.0,
            "cue {c:?} past the recording's {rec_len} s"
        );
    }
    let m = scrape(&base).await;
    for name in [
        "tribune_captions_cues_total",
        "tribune_captions_engine_busy_ms_total",
        "tribune_captions_delay_ms_max",
    ] {
        let v = metric(&base, name).await;
        assert!(v > 0.0, "{name} = {v}\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_model_there_are_no_captions_and_no_threads() {
    let server = ServerProc::start("captions-off", &[]);
    let base = server.base.clone();
    let (id, _host) = create_space(&base, "plain").await;
    let index = get_text(&format!("{base}/spaces/{id}/hls/index.m3u8"))
        .await
        .1;
    assert!(!index.contains("SUBTITLES"), "{index}");
    assert_eq!(
        get_text(&format!("{base}/spaces/{id}/hls/subs.m3u8"))
            .await
            .0,
        404
    );
    assert_eq!(
        get_text(&format!("{base}/spaces/{id}/captions.vtt"))
            .await
            .0,
        404
    );
    let (_, snap) = api(
        "GET",
        &format!("{base}/spaces/{id}/snapshot.json"),
        None,
        None,
    )
    .await;
    assert!(snap.get("cap").is_none(), "{snap}");
    let names = threads(server.child.id());
    assert!(
        !names.iter().any(|n| n.starts_with("captions")),
        "caption threads without a model: {names:?}"
    );
    assert_eq!(metric(&base, "tribune_captions_spaces").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_engine_drops_audio_and_listeners_hear_every_tick() {
    let model = model_dir();
    let dir = temp_dir("captions-starved");
    std::fs::create_dir_all(&dir).unwrap();
    let (wav, _) = speech(&dir);
    let server = ServerProc::start(
        "captions-starved",
        &[
            "--captions-model",
            model.to_str().unwrap(),
            "--captions-slowdown-ms",
            "25000",
        ],
    );
    let base = server.base.clone();
    let (id, host) = create_space(&base, "starved").await;
    let late_before = metric(&base, "tribune_mixer_late_ticks_total").await;
    let listener = listen(
        &format!("{base}/spaces/{id}/live.opus"),
        40,
        &dir.join("heard.opus"),
    );
    let tok = mint(&base, &id, &host, "speaker", "Reader").await;
    // 36 s of speech against an engine that takes 25 s a stretch and keeps 20 s waiting.
    let speaker = speak_file(
        &format!("{base}/api/spaces/{id}/whip"),
        &tok,
        &wav,
        36.0,
        true,
    );
    wait_speakers(&base, 1).await;
    let dropped = eventually(Duration::from_secs(60), async || {
        metric(&base, "tribune_captions_dropped_audio_ms_total").await > 0.0
    })
    .await;
    assert!(
        dropped,
        "the slowed engine never dropped audio:\n{}",
        scrape(&base).await
    );
    wait_ok(speaker, "speaker");
    let rep = report(listener);
    assert_continuous(&rep);
    assert_eq!(
        metric(&base, "tribune_captions_tap_full_total").await,
        0.0,
        "the mixer could not hand ticks over"
    );
    let late = metric(&base, "tribune_mixer_late_ticks_total").await - late_before;
    eprintln!(
        "starved engine: dropped {} ms of speech; mixer late ticks meanwhile: {late}",
        metric(&base, "tribune_captions_dropped_audio_ms_total").await
    );
}

#[test]
fn a_missing_or_malformed_model_stops_serve_naming_it() {
    let data = temp_dir("captions-bad");
    std::fs::create_dir_all(&data).unwrap();
    let missing = data.join("no-such-model");
    let bad = data.join("bad-model");
    std::fs::create_dir_all(&bad).unwrap();
    for f in [
        "model.bin",
        "config.json",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        std::fs::write(bad.join(f), b"not a model").unwrap();
    }
    for (dir, want) in [
        (&missing, "not a directory"),
        (&bad, "config.json is not a Whisper model's"),
    ] {
        let out = Command::new(bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--udp",
                "127.0.0.1:0",
                "--admin-key",
                ADMIN_KEY,
            ])
            .arg("--data-dir")
            .arg(data.join("d"))
            .arg("--captions-model")
            .arg(dir)
            .output()
            .expect("run serve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "serve started with {}",
            dir.display()
        );
        assert!(
            err.contains(&dir.display().to_string()) && err.contains(want),
            "{err}"
        );
    }
}
