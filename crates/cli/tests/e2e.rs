//! End to end with real processes: a `tribune serve`, two `tribune speak` publishers (440 Hz and
//! 660 Hz), `tribune listen` listeners, ffmpeg on the recording.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tribune_client::listen::analyze_wav;
use tribune_client::tones::tone_present;

/// Whether the Ogg file's last page carries end-of-stream (the recorder finished it).
fn ends_with_eos(path: &std::path::Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let Some(pos) = bytes.windows(4).rposition(|w| w == b"OggS") else {
        return false;
    };
    bytes.get(pos + 5).is_some_and(|flags| flags & 4 != 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_listeners_and_recording() {
    let server = ServerProc::start("e2e", &[]);
    let base = server.base.clone();
    let t_create = Instant::now();
    let (id, host) = create_space(&base, "e2e").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let live = format!("{base}/spaces/{id}/live.opus");
    let a_tok = mint(&base, &id, &host, "speaker", "A").await;
    let b_tok = mint(&base, &id, ADMIN_KEY, "speaker", "B").await;
    let dir = server.data_dir.clone();
    let a = speak(&whip, &a_tok, 440, 12, &dir.join("a.wav"));
    let b = speak(&whip, &b_tok, 660, 12, &dir.join("b.wav"));
    wait_speakers(&base, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A listener from mid-stream for 5 s.
    let l1 = report(listen(&live, 5, &dir.join("l1.wav")));
    // Another one joins later still, and its raw bytes go to ffmpeg.
    let mut resp = reqwest::get(&live).await.expect("live.opus");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/ogg");
    assert!(resp.headers().contains_key("icy-name"));
    let mut raw = Vec::new();
    let stop = Instant::now() + Duration::from_secs(3);
    while Instant::now() < stop {
        match tokio::time::timeout(Duration::from_secs(1), resp.chunk()).await {
            Ok(Ok(Some(c))) => raw.extend_from_slice(&c),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    drop(resp);
    let raw_path = dir.join("late.opus");
    std::fs::write(&raw_path, &raw).unwrap();

    wait_ok(a, "speaker A");
    wait_ok(b, "speaker B");
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(&host),
        None,
    )
    .await;
    let spoken = t_create.elapsed().as_secs_f64();
    assert_eq!(s, 200, "end: {v}");
    assert_eq!(v["state"], "ended");

    // The listener's stream is continuous and holds both tones.
    assert_continuous(&l1);
    assert_eq!(l1["header_ok"], true, "{l1}");
    let l1_pcm = analyze_wav(dir.join("l1.wav")).unwrap();
    assert!(
        l1_pcm.len() > 48_000 * 4,
        "about 5 s (plus the burst) decoded"
    );
    assert!(tone_present(&l1_pcm, 440.0), "listener hears A");
    assert!(tone_present(&l1_pcm, 660.0), "listener hears B");

    // Each speaker hears the other and not itself (mix-minus).
    let a_heard = analyze_wav(dir.join("a.wav")).unwrap();
    let b_heard = analyze_wav(dir.join("b.wav")).unwrap();
    assert!(tone_present(&a_heard, 660.0), "A hears B");
    assert!(!tone_present(&a_heard, 440.0), "A does not hear itself");
    assert!(tone_present(&b_heard, 440.0), "B hears A");
    assert!(!tone_present(&b_heard, 660.0), "B does not hear itself");

    // The late joiner's bytes decode without errors.
    let (_, clean, errors) = ffmpeg_check(&raw_path);
    assert!(clean, "late joiner's stream decodes cleanly: {errors}");

    // The recording is complete: decodes cleanly, lasts as long as the space, holds both tones.
    let rec = dir.join("recordings").join(format!("{id}.opus"));
    assert!(
        eventually(Duration::from_secs(10), async || ends_with_eos(&rec)).await,
        "recording finished"
    );
    let (duration, clean, errors) = ffmpeg_check(&rec);
    assert!(clean, "recording decodes without errors: {errors}");
    assert!(
        (duration - spoken).abs() <= 0.5,
        "recording lasts {duration:.2} s, the space {spoken:.2} s"
    );
    let rec_pcm = ffmpeg_decode(&rec);
    assert!(tone_present(&rec_pcm, 440.0) && tone_present(&rec_pcm, 660.0));

    // Served over HTTP with Range.
    let c = reqwest::Client::new();
    let r = c
        .get(format!("{base}/spaces/{id}/recording.opus"))
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], b"OggS");

    // An ended space answers 410 with a link to its recording.
    let r = reqwest::get(&live).await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(
        r.headers()["link"]
            .to_str()
            .unwrap()
            .contains("recording.opus")
    );
    // So does WHIP (a speaker whose publisher reconnects after the end), with the JSON error.
    let r = reqwest::Client::new()
        .post(&whip)
        .bearer_auth(&a_tok)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(
        r.headers()["link"].to_str().unwrap(),
        format!("</spaces/{id}/recording.opus>; rel=\"alternate\"; type=\"audio/ogg\"")
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "gone", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("recording.opus"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leaves_a_playable_recording() {
    let mut server = ServerProc::start("crash", &[]);
    let t_create = Instant::now();
    let (id, mut a) = space_with_speaker(&server, "crash", 30).await;
    let dir = server.data_dir.clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let spoken = t_create.elapsed().as_secs_f64();
    server.kill9();
    let _ = a.kill();
    let _ = a.wait();

    let rec = dir.join("recordings").join(format!("{id}.opus"));
    let (duration, clean, errors) = ffmpeg_check(&rec);
    assert!(clean, "a recording cut by SIGKILL still decodes: {errors}");
    assert!(
        duration >= spoken - 1.5 && duration <= spoken + 0.5,
        "recording {duration:.2} s for {spoken:.2} s spoken: at most about a second lost"
    );
    assert!(tone_present(&ffmpeg_decode(&rec), 440.0));
}

/// Fails (never skips) unless this host has the IPv6 loopback `::1`, saying how to enable it.
fn require_ipv6_loopback() {
    if let Err(e) = std::net::UdpSocket::bind("[::1]:0") {
        panic!(
            "no IPv6 loopback: binding [::1]:0 failed ({e}). This test needs `::1` on lo: \
             `sysctl -w net.ipv6.conf.lo.disable_ipv6=0` (in a container: \
             `--sysctl net.ipv6.conf.lo.disable_ipv6=0`)"
        );
    }
}

/// One dual-stack UDP port serves an IPv6 and an IPv4 speaker; each hears the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_speakers_on_one_port() {
    require_ipv6_loopback();
    let server = ServerProc::start("dual", &["--udp", "[::]:0", "--advertise", "::1,127.0.0.1"]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "dual stack").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let dir = server.data_dir.clone();
    let v6 = mint(&base, &id, &host, "speaker", "six").await;
    let v4 = mint(&base, &id, &host, "speaker", "four").await;
    let a = speak_from("::1", &whip, &v6, 440, 6, &dir.join("a.wav"));
    let b = speak_from("127.0.0.1", &whip, &v4, 660, 6, &dir.join("b.wav"));
    wait_ok(a, "IPv6 speaker");
    wait_ok(b, "IPv4 speaker");
    assert!(
        tone_present(&analyze_wav(dir.join("a.wav")).unwrap(), 660.0),
        "v6 hears v4"
    );
    assert!(
        tone_present(&analyze_wav(dir.join("b.wav")).unwrap(), 440.0),
        "v4 hears v6"
    );
}

/// SIGTERM suspends: the process exits 0 and the recording so far decodes. After a restart the
/// space is interrupted; its host resumes it and the recording continues the same Ogg stream,
/// so the whole file decodes as one stream holding both parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_then_resume_continues_one_recording() {
    let secret = ["--jwt-secret", "restart-test-secret"];
    let mut server = ServerProc::start("restart", &secret);
    let base = server.base.clone();
    let dir = server.data_dir.clone();
    let (id, host) = create_space(&base, "restart").await;
    let tok = mint(&base, &id, &host, "speaker", "A").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let a = speak(&whip, &tok, 440, 4, &dir.join("a.wav"));
    wait_ok(a, "first speaker");
    stop_cleanly(&mut server);
    let rec = dir.join("recordings").join(format!("{id}.opus"));
    let (first_part, clean, errors) = ffmpeg_check(&rec);
    assert!(clean, "suspended recording decodes: {errors}");
    assert!(
        !ends_with_eos(&rec),
        "a suspended recording stays open-ended"
    );

    // Restart on the same data directory.
    let server = ServerProc::start_in(dir.clone(), &secret);
    let base = server.base.clone();
    let (_, v) = api("GET", &format!("{base}/api/spaces/{id}"), None, None).await;
    assert_eq!(v["state"], "interrupted", "{v}");
    let whip = format!("{base}/api/spaces/{id}/whip");
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/resume"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200, "host resumes: {v}");
    assert_eq!(v["state"], "live");
    let b = speak(&whip, &tok, 660, 4, &dir.join("b.wav"));
    wait_ok(b, "second speaker");
    // One stream: headers once, page sequence and granules continuous, decodes whole.
    let (_, st) = end_and_check(&base, &id, &host, &rec).await;
    assert!(st.header_ok, "{st:?}");
    assert_eq!(
        (
            st.seq_gaps,
            st.granule_gaps,
            st.crc_errors,
            st.decode_errors
        ),
        (0, 0, 0, 0),
        "{st:?}"
    );
    let (total, clean, errors) = ffmpeg_check(&rec);
    assert!(clean, "{errors}");
    let pcm = ffmpeg_decode(&rec);
    let decoded = pcm.len() as f64 / 48_000.0;
    assert!(
        decoded > first_part + 3.0,
        "decoded {decoded:.2} s (first part {first_part:.2} s, container says {total:.2} s)"
    );
    assert!(
        tone_present(&pcm, 440.0) && tone_present(&pcm, 660.0),
        "both parts are in the one file"
    );
}

/// The README's demo: `tribune demo` prints `listen: <url>` first, and that stream decodes into
/// audio that is not silent, holding both demo voices. A second run on the same data directory
/// replaces the old `demo` space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_is_on_air() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = temp_dir("demo");
    for run in 0..2 {
        let mut demo = Command::new(bin())
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--udp",
                "127.0.0.1:0",
                "--log",
                "warn",
            ])
            .arg("--data-dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn demo");
        let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
        let first = lines.next().expect("a line").expect("read");
        let url = first
            .strip_prefix("listen: ")
            .expect("first line is `listen: <url>`")
            .to_owned();
        assert!(url.ends_with("/spaces/demo/live.opus"), "{url}");
        std::thread::spawn(move || for _ in lines {});
        let out = dir.join(format!("demo-{run}.wav"));
        let r = report(listen(&url, 10, &out));
        let _ = demo.kill();
        let _ = demo.wait();
        assert_continuous(&r);
        let pcm = analyze_wav(&out).unwrap();
        let rms = (pcm.iter().map(|x| x * x).sum::<f32>() / pcm.len() as f32).sqrt();
        assert!(rms > 0.01, "the demo is not silent (rms {rms})");
        assert!(
            tone_present(&pcm, 220.0) || tone_present(&pcm, 330.0),
            "a demo voice is heard"
        );
    }
}

/// `POST /resume` scans the interrupted recording (tens of MB for a long space) on a blocking
/// thread without holding the space: while the scan waits on the file, the space still answers.
/// The recording is swapped for a FIFO the test feeds, so the scan is held exactly as long as the
/// test wants, with no timing involved; the bytes fed are the real recording, which then goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_scans_the_recording_without_holding_the_space() {
    let secret = ["--jwt-secret", "resume-scan-secret"];
    let mut server = ServerProc::start("resume-scan", &secret);
    let base = server.base.clone();
    let dir = server.data_dir.clone();
    let (id, host) = create_space(&base, "resume scan").await;
    let tok = mint(&base, &id, &host, "speaker", "A").await;
    let a = speak(
        &format!("{base}/api/spaces/{id}/whip"),
        &tok,
        440,
        3,
        &dir.join("a.wav"),
    );
    wait_ok(a, "first speaker");
    stop_cleanly(&mut server);

    let server = ServerProc::start_in(dir.clone(), &secret);
    let base = server.base.clone();
    let rec = dir.join("recordings").join(format!("{id}.opus"));
    let recorded = std::fs::read(&rec).expect("the suspended recording");
    let kept = dir.join("kept.opus");
    std::fs::write(&kept, &recorded).unwrap();
    std::fs::remove_file(&rec).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&rec).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", rec.display());

    let resume = tokio::spawn({
        let (base, id, host) = (base.clone(), id.clone(), host.clone());
        async move {
            api(
                "POST",
                &format!("{base}/api/spaces/{id}/resume"),
                Some(&host),
                None,
            )
            .await
        }
    });
    // Opening the FIFO for writing returns once the server has opened it to scan: from here
    // until the bytes are written, the scan is in progress.
    let (rec2, kept2) = (rec.clone(), kept.clone());
    let writer = tokio::task::spawn_blocking(move || {
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(&rec2)
            .expect("open the FIFO");
        // The path gets the real file back (what the repair and the recorder then use); the
        // scan reads its bytes through the FIFO it already holds.
        std::fs::remove_file(&rec2).unwrap();
        std::fs::copy(&kept2, &rec2).unwrap();
        w
    })
    .await
    .unwrap();

    // Mid-scan, the space answers: its summary takes the room's and the media's locks.
    let summary = tokio::time::timeout(
        Duration::from_secs(20),
        api("GET", &format!("{base}/api/spaces/{id}"), None, None),
    )
    .await;
    let (s, v) = summary.expect("the space answers while its recording is scanned");
    assert_eq!(s, 200, "{v}");
    assert!(!resume.is_finished(), "the resume waits for its scan");

    let fed = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut w = writer;
        w.write_all(&recorded).expect("feed the scan");
    });
    fed.await.unwrap();
    let (s, v) = resume.await.unwrap();
    assert_eq!(s, 200, "host resumes: {v}");
    assert_eq!(v["state"], "live");
    let b = speak(
        &format!("{base}/api/spaces/{id}/whip"),
        &tok,
        660,
        3,
        &dir.join("b.wav"),
    );
    wait_ok(b, "second speaker");
    let (bytes, st) = end_and_check(&base, &id, &host, &rec).await;
    assert!(st.header_ok, "{st:?}");
    assert!(
        bytes.len() > std::fs::metadata(&kept).unwrap().len() as usize,
        "it went on"
    );
}

/// Stops the server with SIGTERM (a restart, not a crash) and checks it exits cleanly.
fn stop_cleanly(server: &mut ServerProc) {
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

/// Ends the space as its host, waits for the recording's end of stream, and reads the
/// recording back through the stream checker: its bytes and what the checker saw.
async fn end_and_check(
    base: &str,
    id: &str,
    host: &str,
    rec: &std::path::Path,
) -> (Vec<u8>, tribune_client::listen::Stats) {
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(host),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        eventually(Duration::from_secs(10), async || ends_with_eos(rec)).await,
        "recording finished"
    );
    let bytes = std::fs::read(rec).unwrap();
    let mut checker = tribune_client::listen::StreamChecker::new().unwrap();
    checker.push(&bytes);
    let st = checker.stats().clone();
    (bytes, st)
}
