//! Admission under load, end to end against a real `tribune serve`: per-address join limits
//! with an honest `429` (other addresses and the host unaffected), and listeners waiting for a
//! scheduled space costing nothing at the moment it starts. (The waiting room itself is in
//! `webapp.rs`, the shield in `shield.rs`, connection-level limits in their own tests.)

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_from_one_address_are_limited_and_nobody_else_notices() {
    // One join per second per address, bursts of four.
    let server = ServerProc::start("admission-rate", &["--join-rate", "1"]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "rate").await;
    let join = format!("{base}/api/spaces/{id}/join");
    let live = format!("{base}/spaces/{id}/live.opus");

    let a = client_from([127, 0, 0, 21]);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = a.post(&join).json(&json!({})).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=5).contains(&wait), "{wait}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"], "rate_limited", "{v}");
            assert_eq!(v["retry_after_s"], wait, "{v}");
        }
    }
    assert_eq!(&statuses[..4], &[200; 4], "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");

    // The lean live.opus path counts against the same address, and answers the same way.
    let r = a.get(&live).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "rate_limited", "{v}");

    // Another address is not affected; neither is the host, from the limited address.
    let b = client_from([127, 0, 0, 22]);
    let r = b.get(&live).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut body = r.bytes_stream();
    assert!(body.next().await.unwrap().unwrap().starts_with(b"OggS"));
    for _ in 0..10 {
        let r = a
            .get(format!("{base}/api/spaces/{id}"))
            .bearer_auth(&host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "the host is never rate limited");
    }
    let refused = scrape(&base).await;
    let line = refused
        .lines()
        .find(|l| l.starts_with("tribune_refusals_total{reason=\"rate_limited\",class=\"join\"}"))
        .expect("the refusal metric");
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 3.0, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_waiting_for_a_scheduled_space_need_nothing_when_it_starts() {
    const WAITING: usize = 40;
    let server = ServerProc::start("admission-scheduled", &[]);
    let base = server.base.clone();
    let starts_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces"),
        Some(ADMIN_KEY),
        Some(json!({"title": "later", "starts_at": starts_at})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let host = v["host_token"].as_str().unwrap().to_owned();
    assert_eq!(v["state"], "scheduled", "{v}");

    // The audience arrives early: each gets the stream's headers at once, then waits on the
    // shared broadcast (from many addresses, as a real crowd would).
    let mut bodies = Vec::new();
    for i in 0..WAITING {
        let c = client_from([127, 0, 1, 1 + i as u8]);
        let r = c
            .get(format!("{base}/spaces/{id}/live.opus"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let mut body = r.bytes_stream();
        let head = body.next().await.unwrap().unwrap();
        assert!(head.windows(8).any(|w| w == b"OpusHead"), "headers first");
        bodies.push(body);
    }
    assert_eq!(metric(&base, "tribune_listeners").await, WAITING as f64);

    // The host starts the show: one request, answered at once.
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/start"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // Every waiting listener gets audio on the connection it already had: nobody had to come
    // back, so the start cost no join, no request and no handshake per listener.
    for body in &mut bodies {
        let mut got = Vec::new();
        let audio = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(chunk)) = body.next().await {
                got.extend_from_slice(&chunk);
                // A page with a granule position: audio, not a header.
                let audio = got
                    .windows(14)
                    .any(|w| &w[..4] == b"OggS" && w[6..14] != [0; 8] && w[6..14] != [0xff; 8]);
                if audio {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(audio, Ok(true), "audio after the start");
    }
    assert_eq!(
        metric(&base, "tribune_listeners_total").await,
        WAITING as f64,
        "no listener reconnected"
    );
    assert_eq!(metric(&base, "tribune_listeners").await, WAITING as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_announced_too_large_or_sent_too_slowly_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = ServerProc::start("admission-body", &[]);
    let base = server.base.clone();
    let (id, _host) = create_space(&base, "bodies").await;
    let addr = base.trim_start_matches("http://").to_owned();
    let answer = async |req: String, then_wait: bool| -> String {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // A bound on a hang, not a timing: the server's body deadline is 10 s.
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if !then_wait && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        })
        .await;
        assert!(read.is_ok(), "no answer");
        String::from_utf8_lossy(&buf).into_owned()
    };
    // A gigabyte announced: refused before a byte of it is read.
    let a = answer(
        format!(
            "POST /api/spaces/{id}/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 1000000000\r\n\r\n"
        ),
        false,
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 413"), "{a}");
    assert!(a.contains("payload_too_large"), "{a}");
    // Ten bytes announced, one sent: the server does not wait for ever.
    let a = answer(
        format!(
            "POST /api/spaces/{id}/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 10\r\n\r\n{{"
        ),
        true,
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 408"), "{a}");
    assert!(a.contains("request_timeout"), "{a}");
    // And a normal join meanwhile.
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/join"),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_is_earned_by_a_credential_and_shared_bytes_are_not_limited() {
    // One request per second per address, bursts of two.
    let server = ServerProc::start("admission-control", &["--ip-rate", "1"]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "control").await;
    let a = client_from([127, 0, 0, 31]);
    // A control path without a credential is browsing: limited like any other.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = a
            .post(format!("{base}/api/spaces/{id}/end"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&401), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    // With the host's credential it is control: never limited per address.
    for _ in 0..10 {
        let r = a
            .get(format!("{base}/api/spaces/{id}"))
            .bearer_auth(&host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // A speaker token of another space lifts nothing here.
    let (other, other_host) = create_space(&base, "other").await;
    let _ = other;
    let r = a
        .get(format!("{base}/api/spaces/{id}"))
        .bearer_auth(&other_host)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        429,
        "the other space's host is a stranger here"
    );
    // HLS objects and the app's files are shared bytes: a venue's NAT fetches them freely.
    let b = client_from([127, 0, 0, 32]);
    for path in ["/app/app.js", &format!("/spaces/{id}/hls/index.m3u8")] {
        for _ in 0..20 {
            let r = b.get(format!("{base}{path}")).send().await.unwrap();
            assert_ne!(r.status().as_u16(), 429, "{path}");
        }
    }
    // A HEAD of the live stream is not a listener.
    for i in 0..3 {
        let r = client_from([127, 0, 0, 40 + i])
            .head(format!("{base}/spaces/{id}/live.opus"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "audio/ogg");
    }
    assert_eq!(metric(&base, "tribune_listeners_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_waiting_room_ticket_does_not_pass_the_shield() {
    let server = ServerProc::start(
        "admission-ticket-shield",
        &["--shield", "on", "--shield-bits", "8"],
    );
    let base = server.base.clone();
    let (id, _host) = create_space(&base, "shielded").await;
    for q in [
        "?ticket=junk",
        "?ticket=0.99999999999.000000000000000000000000",
    ] {
        let r = reqwest::get(format!("{base}/spaces/{id}/live.opus{q}"))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{q}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "proof_of_work_required", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_body_that_never_ends_is_cut_off() {
    let server = ServerProc::start("admission-h2-body", &[]);
    let base = server.base.clone();
    let (id, _host) = create_space(&base, "h2").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // A body that sends one byte, then nothing, for ever.
    let forever = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{"))
    })
    .chain(futures_util::stream::pending());
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        h2.post(format!("{base}/api/spaces/{id}/join"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(forever))
            .send(),
    )
    .await
    .expect("an answer (the server's body deadline is 10 s)")
    .unwrap();
    assert_eq!(r.status().as_u16(), 408);
}
