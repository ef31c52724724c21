//! aiortc (Python WebRTC, PyPI) publishes to tribune over WHIP (`tests/interop/aiortc_whip.py`):
//! - `sendrecv`: with a `tribune speak` 660 Hz speaker on stage, aiortc sends 440 Hz and records
//!   what it receives: the mix-minus, which holds 660 Hz and not its own 440 Hz;
//! - `sendonly`: the answer is `recvonly`, and a listener hears aiortc's 440 Hz.
//!
//! aiortc is installed by the test into a virtualenv under `target/` (`python3 -m venv`, then
//! `pip install`), before entering the network namespace; without python3-venv or PyPI the
//! test fails and says so. aioice ignores loopback, so the scenario runs in its own network
//! namespace ([`common::netns`]).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::netns::{self, CLIENT_IP, SERVER_IP};
use common::*;
use serde_json::Value;
use tribune_client::listen::analyze_wav;
use tribune_client::tones::tone_present;

/// The aiortc the interop tests are run with (the README names it).
const AIORTC: &str = "aiortc==1.16.0";

fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv")
}

fn python() -> PathBuf {
    venv().join("bin/python")
}

fn has_aiortc() -> bool {
    Command::new(python())
        .args([
            "-c",
            &format!(
                "import aiortc, sys; sys.exit(aiortc.__version__ != {:?})",
                &AIORTC[8..]
            ),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// Install aiortc into the virtualenv unless it is there (once per test process).
fn ensure_aiortc() {
    static ONCE: Mutex<()> = Mutex::new(());
    let _g = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if has_aiortc() {
        return;
    }
    netns::require("python3", "python3-venv");
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 -m venv failed: this test needs Debian's python3-venv"
    );
    let out = Command::new(python())
        .args(["-m", "pip", "install", "--quiet", AIORTC])
        .output()
        .expect("run pip");
    assert!(
        out.status.success() && has_aiortc(),
        "pip install {AIORTC} failed (this test needs PyPI):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child killed when dropped, on every path.
struct Kill(Option<Child>);

impl Kill {
    /// Wait (bounded: the script ends itself within 90 s) and parse its JSON line.
    fn report(mut self) -> Value {
        let child = self.0.take().expect("child");
        let out = child.wait_with_output().expect("wait for aiortc");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        serde_json::from_str(line).unwrap_or_else(|_| {
            panic!(
                "aiortc printed no report: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

impl Drop for Kill {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn aiortc(whip: &str, token: &str, direction: &str, dir: &std::path::Path, record: bool) -> Kill {
    let mut cmd = Command::new(python());
    cmd.arg(netns::interop_dir().join("aiortc_whip.py"))
        .args(["--url", whip, "--token", token, "--direction", direction])
        .args(["--tone", "440", "--seconds", "6"])
        .arg("--answer-out")
        .arg(dir.join("answer.sdp"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if record {
        cmd.arg("--record").arg(dir.join("aiortc-heard.wav"));
    }
    Kill(Some(cmd.spawn().expect("spawn aiortc")))
}

fn start_server(name: &str) -> ServerProc {
    let udp = format!("{SERVER_IP}:0");
    ServerProc::start(name, &["--udp", &udp, "--advertise", SERVER_IP])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_sendrecv_hears_the_mix_minus_not_itself() {
    ensure_aiortc();
    if !netns::enter("aiortc_sendrecv_hears_the_mix_minus_not_itself") {
        return;
    }
    let server = start_server("aiortc-sendrecv");
    let base = server.base.clone();
    let dir = server.data_dir.clone();
    let (id, host) = create_space(&base, "aiortc sendrecv").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let other = mint(&base, &id, &host, "speaker", "Other").await;
    let speaker = speak_from(CLIENT_IP, &whip, &other, 660, 15, &dir.join("other.wav"));
    let _speaker = Kill(Some(speaker));
    wait_speakers(&base, 1).await;
    let token = mint(&base, &id, &host, "speaker", "aiortc").await;
    let r = aiortc(&whip, &token, "sendrecv", &dir, true).report();
    assert_eq!(r["status"], 201, "{r}");
    assert_eq!(r["connected"], true, "{r}");
    assert!(r["frames_received"].as_u64().unwrap_or(0) > 100, "{r}");
    let answer = std::fs::read_to_string(dir.join("answer.sdp")).unwrap();
    assert!(answer.contains("a=sendrecv"), "{answer}");
    assert!(
        !answer.contains("trickle"),
        "no trickle advertised: {answer}"
    );
    let heard = ffmpeg_decode(&dir.join("aiortc-heard.wav"));
    assert!(
        tone_present(&heard, 660.0),
        "aiortc hears the other speaker"
    );
    assert!(!tone_present(&heard, 440.0), "aiortc does not hear itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_sendonly_gets_recvonly_and_is_heard() {
    ensure_aiortc();
    if !netns::enter("aiortc_sendonly_gets_recvonly_and_is_heard") {
        return;
    }
    let server = start_server("aiortc-sendonly");
    let base = server.base.clone();
    let dir = server.data_dir.clone();
    let (id, host) = create_space(&base, "aiortc sendonly").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let token = mint(&base, &id, &host, "speaker", "aiortc").await;
    let publisher = aiortc(&whip, &token, "sendonly", &dir, false);
    let flowing = eventually(Duration::from_secs(30), async || {
        metric(&base, "tribune_rtp_packets_received_total").await > 0.0
    })
    .await;
    assert!(flowing, "audio from aiortc reaches tribune");
    let wav = dir.join("listener.wav");
    let l = report(listen(&format!("{base}/spaces/{id}/live.opus"), 3, &wav));
    let r = publisher.report();
    assert_eq!(r["status"], 201, "{r}");
    assert_eq!(r["connected"], true, "{r}");
    let answer = std::fs::read_to_string(dir.join("answer.sdp")).unwrap();
    let audio = &answer[answer.find("m=audio").expect("audio section")..];
    assert!(audio.contains("a=recvonly\r\n"), "{answer}");
    assert!(!answer.contains("trickle"), "{answer}");
    assert_eq!(l["status"], 200, "{l}");
    let pcm = analyze_wav(&wav).expect("listener wav");
    assert!(tone_present(&pcm, 440.0), "the listener hears aiortc: {l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_through_a_node_that_does_not_own_the_space() {
    ensure_aiortc();
    if !netns::enter("aiortc_through_a_node_that_does_not_own_the_space") {
        return;
    }
    let udp = format!("{SERVER_IP}:0");
    let (_redis, nodes, id, host) = common::cluster::two_nodes_one_space(
        "aiortc-cluster",
        &["--udp", &udp, "--advertise", SERVER_IP],
    )
    .await;
    // The offer goes to n2; n1 runs the space and gets the media.
    let (owner, entry) = (&nodes[0].base, &nodes[1].base);
    let dir = nodes[1].data_dir.clone();
    let whip = format!("{entry}/api/spaces/{id}/whip");
    let token = mint(entry, &id, &host, "speaker", "aiortc").await;
    let publisher = aiortc(&whip, &token, "sendonly", &dir, false);
    let flowing = eventually(Duration::from_secs(30), async || {
        metric(owner, "tribune_rtp_packets_received_total").await > 0.0
    })
    .await;
    assert!(flowing, "audio from aiortc reaches the owner");
    let wav = dir.join("listener.wav");
    let l = report(listen(&format!("{entry}/spaces/{id}/live.opus"), 3, &wav));
    let r = publisher.report();
    assert_eq!(r["status"], 201, "{r}");
    assert_eq!(r["connected"], true, "{r}");
    assert_eq!(l["status"], 200, "{l}");
    let pcm = analyze_wav(&wav).expect("listener wav");
    assert!(tone_present(&pcm, 440.0), "heard through n2: {l}");
}
