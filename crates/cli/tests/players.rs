//! Software we did not write, against a real `tribune serve` with two tone speakers (440 Hz and
//! 660 Hz): VLC plays `live.opus` joined mid-stream, an Icecast 2.4 relay carries it to ffmpeg,
//! and VLC, mpv and ffmpeg play the LL-HLS playlist. Each program is Debian's
//! (`scripts/packages.sh test` installs them); a missing one fails the test.
//!
//! VLC refuses to run as root, so as root it runs as `nobody` (`setpriv`, which execs: the pid
//! we signal is VLC's). Icecast runs as its own user through `<changeowner>`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tribune_client::tones::tone_present;

/// A live space with two speakers (440 Hz and 660 Hz for `seconds`), both connected.
async fn two_tone_space(server: &ServerProc, seconds: u32) -> (String, Vec<Child>) {
    let base = &server.base;
    let (id, host) = create_space(base, "players").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let a = mint(base, &id, &host, "speaker", "A").await;
    let b = mint(base, &id, &host, "speaker", "B").await;
    let dir = &server.data_dir;
    let speakers = vec![
        speak(&whip, &a, 440, seconds, &dir.join("a.wav")),
        speak(&whip, &b, 660, seconds, &dir.join("b.wav")),
    ];
    wait_speakers(base, 2).await;
    (id, speakers)
}

/// End the speakers now (they would end by themselves after their `--seconds`).
fn stop(speakers: Vec<Child>) {
    for mut s in speakers {
        let _ = s.kill();
        let _ = s.wait();
    }
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

/// A directory anyone may write (VLC writes its WAV there as `nobody`).
fn open_dir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

/// `cvlc` transcoding `url` to a 48 kHz mono WAV at `out`, as `nobody` when we are root.
fn vlc(url: &str, out: &Path, home: &Path) -> Child {
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "cvlc",
        ]);
        c
    } else {
        Command::new("cvlc")
    };
    let sout = format!(
        "#transcode{{acodec=s16l,channels=1,samplerate=48000}}:std{{access=file,mux=wav,dst={}}}",
        out.display()
    );
    cmd.args(["-I", "dummy", "--no-video", url, "--sout", &sout])
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("VLC is installed (vlc-bin and vlc-plugin-base; scripts/packages.sh test)")
}

/// Let `child` run for `run`, then SIGINT (VLC finishes its WAV header on it); SIGKILL if it
/// has not ended 10 s later. Returns what it wrote to stderr.
fn run_then_interrupt(mut child: Child, run: Duration) -> String {
    let end = Instant::now() + run;
    while Instant::now() < end {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let stop = Instant::now() + Duration::from_secs(10);
    while Instant::now() < stop && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// ffmpeg reads 6 s of `url` into a 48 kHz mono WAV at `out`: whether it succeeded, and what it
/// said (errors only).
fn ffmpeg_record(url: &str, out: &Path) -> (bool, String) {
    let ff = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-t", "6", "-i", url])
        .args(["-ac", "1", "-ar", "48000", "-y"])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed (scripts/packages.sh test)");
    (
        ff.status.success(),
        String::from_utf8_lossy(&ff.stderr).into_owned(),
    )
}

/// The decoded audio holds at least `seconds` and both speakers' tones.
fn assert_both_tones(path: &Path, seconds: f64, who: &str, log: &str) {
    let pcm = ffmpeg_decode(path);
    let got = pcm.len() as f64 / 48_000.0;
    assert!(
        got >= seconds,
        "{who}: {got:.2} s of audio in {}, want at least {seconds} s; its log:\n{log}",
        path.display()
    );
    assert!(tone_present(&pcm, 440.0), "{who} hears the 440 Hz speaker");
    assert!(tone_present(&pcm, 660.0), "{who} hears the 660 Hz speaker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlc_plays_live_opus_joined_mid_stream() {
    let server = ServerProc::start("vlc-ogg", &[]);
    let (id, speakers) = two_tone_space(&server, 25).await;
    // Join well after the start: the shared pages are numbered far past the headers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = open_dir(&server.data_dir, "vlc");
    let out = dir.join("live.wav");
    let url = format!("{}/spaces/{id}/live.opus", server.base);
    let child = vlc(&url, &out, &dir);
    let log =
        tokio::task::spawn_blocking(move || run_then_interrupt(child, Duration::from_secs(8)))
            .await
            .expect("vlc");
    assert!(
        !log.contains("ogg demux error"),
        "VLC's Ogg demuxer refused the stream:\n{log}"
    );
    assert_both_tones(&out, 4.0, "VLC", &log);
    stop(speakers);
}

/// Icecast 2.4 as a child process (as its own user) with `crates/cli/tests/data/icecast-relay.xml`.
struct Icecast {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Icecast {
    fn relay(dir: PathBuf, upstream_port: u16, mount: &str) -> Icecast {
        let port = free_port();
        let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/icecast-relay.xml");
        let mut conf = std::fs::read_to_string(&template).expect("relay template");
        if is_root() {
            let group = Command::new("id")
                .args(["-gn", "icecast2"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .expect("the icecast2 user exists (Debian's icecast2 package makes it)");
            conf = conf
                .replace("@USER@", "icecast2")
                .replace("@GROUP@", &group);
        } else if let (Some(a), Some(b)) = (conf.find("<changeowner>"), conf.find("</changeowner>"))
        {
            conf.replace_range(a..b + "</changeowner>".len(), "");
        }
        let conf = conf
            .replace("@PORT@", &port.to_string())
            .replace("@UPSTREAM_PORT@", &upstream_port.to_string())
            .replace("@MOUNT@", mount)
            .replace("@DIR@", dir.to_str().expect("UTF-8 temp dir"));
        for token in [
            "@PORT@",
            "@UPSTREAM_PORT@",
            "@MOUNT@",
            "@DIR@",
            "@USER@",
            "@GROUP@",
        ] {
            assert!(!conf.contains(token), "{token} left unsubstituted");
        }
        let path = dir.join("icecast.xml");
        std::fs::write(&path, conf).expect("write icecast.xml");
        let child = Command::new("icecast2")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Icecast is installed (icecast2; scripts/packages.sh test)");
        Icecast { child, dir, port }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Icecast {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_icecast_relay_carries_live_opus() {
    let server = ServerProc::start("icecast-relay", &[]);
    let (id, speakers) = two_tone_space(&server, 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the base URL");
    let icecast = Icecast::relay(
        open_dir(&server.data_dir, "icecast"),
        port,
        &format!("/spaces/{id}/live.opus"),
    );
    let relay = format!("http://127.0.0.1:{}/relay.opus", icecast.port);
    // The relay's mount exists once Icecast has pulled and accepted the stream's headers
    // (Icecast 2.4 answers no HEAD: a GET, dropped once its status is in).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let up = eventually(Duration::from_secs(20), async || {
        client
            .get(&relay)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(
        up,
        "the relay mount came up; Icecast's log:\n{}",
        icecast.error_log()
    );
    let out = server.data_dir.join("relay.wav");
    let (ok, errors) = ffmpeg_record(&relay, &out);
    assert!(
        ok && errors.trim().is_empty(),
        "ffmpeg reads the relay without errors: {errors}"
    );
    let log = icecast.error_log();
    for bad in ["unknown type", "Problem processing stream"] {
        assert!(!log.contains(bad), "Icecast logged {bad:?}:\n{log}");
    }
    assert_both_tones(&out, 5.0, "the Icecast relay", &log);
    // Icecast's own late-joiner framing (headers at 0 and 1, then its queue's pages with their
    // numbers) reads as continuous to tribune's checker, and so does tribune's own stream.
    let via_relay = report(listen(&relay, 4, &server.data_dir.join("l-relay.wav")));
    assert_continuous(&via_relay);
    assert_eq!(via_relay["header_ok"], true, "{via_relay}");
    stop(speakers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlc_mpv_and_ffmpeg_play_the_hls_playlist() {
    let server = ServerProc::start("players-hls", &[]);
    let (id, speakers) = two_tone_space(&server, 40).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let url = format!("{}/spaces/{id}/hls/index.m3u8", server.base);
    let dir = open_dir(&server.data_dir, "hls-players");

    let vlc_out = dir.join("vlc.wav");
    let child = vlc(&url, &vlc_out, &dir);
    let vlc_log =
        tokio::task::spawn_blocking(move || run_then_interrupt(child, Duration::from_secs(10)))
            .await
            .expect("vlc");
    assert_both_tones(&vlc_out, 5.0, "VLC (HLS)", &vlc_log);

    let mpv_out = dir.join("mpv.wav");
    let mpv = Command::new("mpv")
        .args(["--no-config", "--really-quiet", "--no-video", "--ao=pcm"])
        .arg(format!("--ao-pcm-file={}", mpv_out.display()))
        .args(["--length=6", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpv is installed (scripts/packages.sh test)");
    let mpv_log =
        tokio::task::spawn_blocking(move || run_then_interrupt(mpv, Duration::from_secs(20)))
            .await
            .expect("mpv");
    assert_both_tones(&mpv_out, 5.0, "mpv (HLS)", &mpv_log);

    let ff_out = dir.join("ffmpeg.wav");
    let (ok, errors) = ffmpeg_record(&url, &ff_out);
    assert!(ok, "ffmpeg plays the playlist: {errors}");
    assert_both_tones(&ff_out, 5.0, "ffmpeg (HLS)", &errors);
    stop(speakers);
}
