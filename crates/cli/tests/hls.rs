//! LL-HLS end to end: ffmpeg reads `index.m3u8` live and the replay once ended; a low-latency
//! client loop follows the live edge with blocking reloads, parts and delta updates, and every
//! playlist it gets obeys the spec's rules.

mod common;

use std::time::{Duration, Instant};

use common::playlists::*;
use common::*;
use tribune_client::tones::tone_present;
use tribune_media::hls::validate::{self, MediaPlaylist};

/// The part the preload hint names, as (msn, part).
fn hinted(p: &MediaPlaylist) -> (u64, u32) {
    let uri = &p
        .preload_hints
        .iter()
        .find(|h| h.kind == "PART")
        .expect("preload hint")
        .uri;
    let name = uri
        .strip_prefix("part/")
        .and_then(|s| s.strip_suffix(".m4s"))
        .expect("part uri");
    let (m, i) = name.split_once('.').expect("msn.part");
    (m.parse().unwrap(), i.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_live_and_replay() {
    let mut server = ServerProc::start("hls", &[]);
    let base = server.base.clone();
    let t0 = Instant::now();
    let (id, host) = create_space(&base, "hls").await;
    let dir = server.data_dir.clone();
    let a = speak(
        &format!("{base}/api/spaces/{id}/whip"),
        &host,
        440,
        14,
        &dir.join("a.wav"),
    );
    wait_speakers(&base, 1).await;
    let hls = format!("{base}/spaces/{id}/hls");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The multivariant playlist names Opus; ffmpeg plays the live stream from it.
    let (s, _, body) = get(&format!("{hls}/index.m3u8")).await;
    assert_eq!(s, 200);
    let index = String::from_utf8_lossy(&body);
    assert!(
        index.contains("CODECS=\"opus\"") && index.contains("live.m3u8"),
        "{index}"
    );
    let live_wav = dir.join("live.wav");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            &format!("{hls}/index.m3u8"),
            "-t",
            "3",
            "-y",
        ])
        .arg(&live_wav)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tone_present(&ffmpeg_decode(&live_wav), 440.0));

    // A low-latency client: blocking reloads for the hinted part, every part fetched.
    let mut prev = playlist(&format!("{hls}/live.m3u8")).await;
    let until = Instant::now() + Duration::from_secs(5);
    let mut blocking = 0;
    while Instant::now() < until {
        let (msn, part) = hinted(&prev);
        let (s, h, bytes) = get(&format!("{hls}/part/{msn}.{part}.m4s")).await;
        assert_eq!(s, 200, "the hinted part is held until it exists");
        assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
        assert!(h.contains_key("last-modified"));
        assert!(!bytes.is_empty());
        // Conditional: the same ETag gets 304; a Range gets 206.
        let c = reqwest::Client::new();
        let url = format!("{hls}/part/{msn}.{part}.m4s");
        let r = c
            .get(&url)
            .header("if-none-match", h["etag"].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        let r = c
            .get(&url)
            .header("range", "bytes=0-7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap().len(), 8);
        let next = playlist(&format!("{hls}/live.m3u8?_HLS_msn={msn}&_HLS_part={part}")).await;
        blocking += 1;
        if let Err(errs) = validate::check_sequence(&prev, &next) {
            panic!("playlists out of sequence: {errs:?}");
        }
        let delta = playlist(&format!(
            "{hls}/live.m3u8?_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES"
        ))
        .await;
        if delta.skipped.is_some() {
            let merged = validate::apply_delta(&prev, &delta).expect("delta applies");
            validate::check(&merged).expect("merged delta obeys the rules");
        }
        prev = next;
    }
    assert!(
        blocking >= 5,
        "followed the live edge part by part ({blocking})"
    );
    let (s, _, _) = get(&format!("{hls}/live.m3u8?_HLS_msn=1000000")).await;
    assert_eq!(s, 400, "a directive too far ahead");
    let (s, _, _) = get(&format!("{hls}/live.m3u8?_HLS_part=1")).await;
    assert_eq!(s, 400, "_HLS_part without _HLS_msn");

    wait_ok(a, "speaker");
    end_space(&base, &id, &host).await;
    let spoken = t0.elapsed().as_secs_f64();
    let dvr = final_replay(&hls).await;
    assert_eq!(
        dvr.segments.first().map(|s| s.msn),
        Some(0),
        "from the start"
    );
    let total: f64 = dvr.segments.iter().map(|s| s.duration).sum();
    assert!(
        (total - spoken).abs() <= 0.5,
        "replay {total:.2} s, space {spoken:.2} s"
    );
    let replay = dir.join("replay.wav");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            &format!("{hls}/dvr.m3u8"),
            "-y",
        ])
        .arg(&replay)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm = ffmpeg_decode(&replay);
    let decoded = pcm.len() as f64 / 48_000.0;
    assert!(
        (decoded - spoken).abs() <= 0.5,
        "replay decodes to {decoded:.2} s, space {spoken:.2} s"
    );
    assert!(tone_present(&pcm, 440.0));

    // After a restart, the replay is served from disk.
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    assert!(server.child.wait().unwrap().success());
    let server = ServerProc::start_in(dir.clone(), &[]);
    let hls = format!("{}/spaces/{id}/hls", server.base);
    let again = playlist(&format!("{hls}/dvr.m3u8")).await;
    assert!(again.endlist);
    assert_eq!(again.segments.len(), dvr.segments.len());
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            &format!("{hls}/index.m3u8"),
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
