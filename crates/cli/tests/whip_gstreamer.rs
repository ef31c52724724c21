//! GStreamer's webrtcbin publishes to tribune over WHIP: Debian's `whip-client` (GStreamer
//! 1.22) sends a 440 Hz tone, audio-only (its offer has no BUNDLE group) and audio+video
//! (max-bundle, video first as the BUNDLE tag, webrtcbin's RSA DTLS certificate), and a
//! `tribune listen` listener hears 440 Hz each time; and once through a cluster node that does
//! not own the space (the offer forwarded to the owner, media to the owner's UDP port).
//!
//! Two quirks of that client are worked around here, neither ours: libnice ignores loopback,
//! so each test runs in its own network namespace ([`common::netns`]); and its UPnP helper
//! clashes with whip-client's libsoup, so a stub of it is built with gcc
//! (`tests/interop/gupnp-igd-stub.c`).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::netns::{self, SERVER_IP};
use common::*;
use tribune_client::listen::analyze_wav;
use tribune_client::tones::tone_present;

const AUDIO: &str = "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample \
    ! queue ! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue \
    ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111";
const VIDEO: &str = "videotestsrc is-live=true ! video/x-raw,width=320,height=240 ! videoconvert \
    ! queue ! vp8enc deadline=1 ! rtpvp8pay pt=96 ssrc=2 ! queue \
    ! application/x-rtp,media=video,encoding-name=VP8,payload=96";

/// A child killed when dropped, on every path.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Build the libgupnp-igd stub into `dir/lib`; returns that directory (for LD_LIBRARY_PATH).
fn gupnp_stub(dir: &Path) -> std::path::PathBuf {
    netns::require("gcc", "gcc");
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).expect("lib dir");
    let ok = Command::new("gcc")
        .args([
            "-shared",
            "-fPIC",
            "-Wl,-soname,libgupnp-igd-1.0.so.4",
            "-o",
        ])
        .arg(lib.join("libgupnp-igd-1.0.so.4"))
        .arg(netns::interop_dir().join("gupnp-igd-stub.c"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "gcc builds the libgupnp-igd stub");
    lib
}

/// whip-client publishes to the space and a listener hears it. `clustered`: through a node that
/// does not own the space (the offer forwarded to its owner, media straight to the owner's UDP
/// port, the listener on the node it published through: a relayed stream).
async fn publish_and_listen(name: &str, video: bool, clustered: bool) {
    netns::require("whip-client", "simple-whip-client");
    let udp = format!("{SERVER_IP}:0");
    let advertise = ["--udp", udp.as_str(), "--advertise", SERVER_IP];
    let (_redis, servers, id, host);
    if clustered {
        let (r, n, i, h) = common::cluster::two_nodes_one_space(name, &advertise).await;
        (_redis, servers, id, host) = (Some(r), n, i, h);
    } else {
        servers = vec![ServerProc::start(name, &advertise)];
        let (i, h) = create_space(&servers[0].base, name).await;
        (_redis, id, host) = (None, i, h);
    }
    // The owner counts the packets; `base` is where the client goes (the other node, clustered).
    let owner = servers[0].base.clone();
    let base = servers.last().map(|s| s.base.clone()).unwrap_or_default();
    let dir = servers[0].data_dir.clone();
    let token = mint(&base, &id, &host, "speaker", "GStreamer").await;
    let lib = gupnp_stub(&dir);
    let log = std::fs::File::create(dir.join("whip-client.log")).expect("log");
    let mut cmd = Command::new("whip-client");
    cmd.args(["-u", &format!("{base}/api/spaces/{id}/whip"), "-t", &token])
        // Candidates in the offer: tribune does not take trickled ones (PATCH is 405).
        .args(["-n", "-l", "4", "-A", AUDIO])
        .env("LD_LIBRARY_PATH", &lib)
        .env("GST_REGISTRY", dir.join("gst-registry.bin"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    if video {
        cmd.args(["-V", VIDEO]);
    }
    let client = Kill(cmd.spawn().expect("spawn whip-client"));
    let client_log = || std::fs::read_to_string(dir.join("whip-client.log")).unwrap_or_default();
    let flowing = eventually(Duration::from_secs(30), async || {
        metric(&owner, "tribune_rtp_packets_received_total").await > 0.0
    })
    .await;
    assert!(
        flowing,
        "audio from whip-client reaches tribune:\n{}",
        client_log()
    );
    let heard = dir.join("listener.wav");
    let report = report(listen(&format!("{base}/spaces/{id}/live.opus"), 4, &heard));
    drop(client);
    assert_eq!(report["status"], 200, "{report}");
    let pcm = analyze_wav(&heard).expect("listener wav");
    assert!(
        tone_present(&pcm, 440.0),
        "the listener hears whip-client's 440 Hz: {report}\n{}",
        client_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_audio_only_without_bundle() {
    if netns::enter("gstreamer_audio_only_without_bundle") {
        publish_and_listen("gst-audio", false, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_audio_and_video_max_bundle() {
    if netns::enter("gstreamer_audio_and_video_max_bundle") {
        publish_and_listen("gst-av", true, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_through_a_node_that_does_not_own_the_space() {
    if netns::enter("gstreamer_through_a_node_that_does_not_own_the_space") {
        publish_and_listen("gst-cluster", false, true).await;
    }
}
