//! Bad input gets a precise status and loses nothing: each case of the issue, asserted against a
//! real server process, while a speaker and a listener keep going.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use tribune_server::auth::{Keys, Role};

const SECRET: &str = "bad-input-test-secret";

async fn post_sdp(url: &str, token: Option<&str>, ctype: &str, body: Vec<u8>) -> (u16, String) {
    let c = reqwest::Client::new();
    let mut r = c.post(url).header("content-type", ctype).body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("post");
    let s = resp.status().as_u16();
    (s, resp.text().await.unwrap_or_default())
}

const NO_OPUS: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
    a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_errors_and_disturb_nobody() {
    let server = ServerProc::start("bad", &["--jwt-secret", SECRET, "--ice-timeout", "3"]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "bad input").await;
    let (other, other_host) = create_space(&base, "other").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let dir = server.data_dir.clone();

    // A speaker and a listener that must not notice anything below.
    let tok = mint(&base, &id, &host, "speaker", "A").await;
    let a = speak(&whip, &tok, 440, 14, &dir.join("a.wav"));
    wait_speakers(&base, 1).await;
    let listener = listen(
        &format!("{base}/spaces/{id}/live.opus"),
        10,
        &dir.join("l.wav"),
    );

    let sdp = "application/sdp";
    let speaker = mint(&base, &id, &host, "speaker", "B").await;
    // Unknown space.
    let (s, _) = post_sdp(
        &format!("{base}/api/spaces/nope/whip"),
        Some(&speaker),
        sdp,
        b"v=0".to_vec(),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(
        reqwest::get(format!("{base}/spaces/nope/live.opus"))
            .await
            .unwrap()
            .status(),
        404
    );
    // Missing, invalid, expired token.
    let (s, _) = post_sdp(&whip, None, sdp, b"v=0".to_vec()).await;
    assert_eq!(s, 401);
    let (s, _) = post_sdp(&whip, Some("garbage"), sdp, b"v=0".to_vec()).await;
    assert_eq!(s, 401);
    let keys = Keys::new(SECRET);
    let past = SystemTime::now() - Duration::from_secs(3600);
    let (expired, _) = keys.mint(
        &id,
        "late",
        "Late",
        Role::Speaker,
        Duration::from_secs(60),
        past,
    );
    let (s, body) = post_sdp(&whip, Some(&expired), sdp, b"v=0".to_vec()).await;
    assert_eq!(s, 401);
    assert!(body.contains("expired"), "{body}");
    // A token of another space; a role that may not publish.
    let elsewhere = mint(&base, &other, &other_host, "speaker", "X").await;
    let (s, _) = post_sdp(&whip, Some(&elsewhere), sdp, b"v=0".to_vec()).await;
    assert_eq!(s, 403);
    let listener_tok = mint(&base, &id, &host, "listener", "L").await;
    let (s, _) = post_sdp(&whip, Some(&listener_tok), sdp, b"v=0".to_vec()).await;
    assert_eq!(s, 403);
    // A speaker may not mint tokens or end the space.
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(&speaker),
        None,
    )
    .await;
    assert_eq!(s, 403);
    // Wrong content type.
    let (s, _) = post_sdp(&whip, Some(&speaker), "application/json", b"{}".to_vec()).await;
    assert_eq!(s, 415);
    // Malformed SDP, an offer without Opus: 400 with the reason.
    let (s, body) = post_sdp(&whip, Some(&speaker), sdp, b"hello".to_vec()).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = post_sdp(&whip, Some(&speaker), sdp, NO_OPUS.as_bytes().to_vec()).await;
    assert_eq!(s, 400);
    assert!(body.contains("Opus"), "{body}");
    // Too large.
    let (s, _) = post_sdp(&whip, Some(&speaker), sdp, vec![b'a'; 200_000]).await;
    assert_eq!(s, 413);
    // PATCH unsupported (no trickle ICE, no ICE restart): 405 with Allow.
    let r = reqwest::Client::new()
        .patch(format!("{whip}/whatever"))
        .bearer_auth(&speaker)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=ice-ufrag:x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(!r.headers()["allow"].to_str().unwrap().contains("PATCH"));
    // CORS preflight without credentials.
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &whip)
        .header("origin", "https://example.org")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-post"], "application/sdp");
    assert!(
        r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("Location")
    );

    // UDP garbage on the media port: dropped and counted.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = metric(&base, "tribune_udp_dropped_unknown_total").await;
    for i in 0..5000u32 {
        let junk: Vec<u8> = (0..(i % 300))
            .map(|j| (i.wrapping_mul(31) ^ j) as u8)
            .collect();
        let _ = sock.send_to(&junk, server.udp);
    }
    assert!(
        eventually(Duration::from_secs(10), async || {
            metric(&base, "tribune_udp_dropped_unknown_total").await >= before + 4000.0
        })
        .await,
        "junk datagrams are counted as dropped"
    );

    // The speaker and the listener never noticed.
    wait_ok(a, "speaker A");
    let l = report(listener);
    assert_continuous(&l);
    let pcm = tribune_client::listen::analyze_wav(dir.join("l.wav")).unwrap();
    assert!(tribune_client::tones::tone_present(&pcm, 440.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_speaker_times_out_and_leaves_the_mix() {
    let server = ServerProc::start("vanish", &["--ice-timeout", "3"]);
    let base = server.base.clone();
    let (id, mut a) = space_with_speaker(&server, "vanish", 60).await;
    // Gone without a DELETE.
    let _ = a.kill();
    let _ = a.wait();
    assert!(
        eventually(Duration::from_secs(30), async || metric(
            &base,
            "tribune_speakers"
        )
        .await
            == 0.0)
        .await,
        "the silent speaker is timed out"
    );
    assert_eq!(
        metric(&base, "tribune_whip_sessions_timed_out_total").await,
        1.0
    );
    let (_, v) = api("GET", &format!("{base}/api/spaces/{id}"), None, None).await;
    assert_eq!(v["speakers"].as_array().unwrap().len(), 0, "{v}");
}
