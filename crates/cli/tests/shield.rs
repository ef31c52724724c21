//! Shield mode end to end, against a real `tribune serve` on loopback: new listeners need a
//! proof-of-work ticket (joins and live.opus), a ticket is good once and for its own space,
//! garbage never costs a 500, listeners already in are untouched, and the automatic switch
//! turns on under a burst of joins. Small `--shield-bits` keep the solving cheap.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `POST /join` with an optional ticket (`Tribune-Pow`) and token.
async fn join(base: &str, id: &str, pow: Option<&str>, token: Option<&str>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/api/spaces/{id}/join"))
        .json(&json!({"name": "Ada"}));
    if let Some(p) = pow {
        r = r.header("tribune-pow", p);
    }
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("join");
    let status = resp.status().as_u16();
    let v = resp.json().await.unwrap_or(Value::Null);
    (status, v)
}

/// A ticket for space `id`, solved natively.
async fn ticket(base: &str, id: &str) -> String {
    let (s, c) = api(
        "GET",
        &format!("{base}/api/spaces/{id}/challenge"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{c}");
    let (challenge, bits) = (
        c["challenge"].as_str().unwrap().to_owned(),
        c["bits"].as_u64(),
    );
    tokio::task::spawn_blocking(move || {
        tribune_client::pow::solve(&challenge, bits.unwrap() as u32)
    })
    .await
    .unwrap()
}

async fn set_mode(base: &str, mode: &str) -> Value {
    let (s, v) = api(
        "POST",
        &format!("{base}/api/admin/shield"),
        Some(ADMIN_KEY),
        Some(json!({"mode": mode})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// A plain `GET …/live.opus` (the lean listener path) on a raw connection: the status, and the
/// stream to keep reading from.
async fn live(base: &str, id: &str, query: &str) -> (u16, Vec<u8>, TcpStream) {
    let mut s = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect");
    s.write_all(
        format!("GET /spaces/{id}/live.opus{query} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .expect("a response head")
            .expect("read");
        assert!(
            n > 0,
            "closed before the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, buf[end..].to_vec(), s)
}

/// Reads until `want` bytes came in (bounded: a hang fails the test, a slow machine does not).
async fn read_at_least(s: &mut TcpStream, mut have: Vec<u8>, want: usize) -> Vec<u8> {
    let mut chunk = [0u8; 8192];
    while have.len() < want {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .expect("bytes keep coming")
            .expect("read");
        assert!(n > 0, "the stream ended after {} bytes", have.len());
        have.extend_from_slice(&chunk[..n]);
    }
    have
}

/// Reads until an Ogg page starts in what came in (the body may be chunked).
async fn read_ogg(s: &mut TcpStream, mut have: Vec<u8>) -> Vec<u8> {
    while !have.windows(4).any(|w| w == b"OggS") {
        let more = have.len() + 1;
        have = read_at_least(s, have, more).await;
    }
    have
}

/// The refusal body of a live.opus answer (read to its end: the server closes).
async fn refusal_body(mut s: TcpStream, mut have: Vec<u8>) -> Value {
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut have)).await;
    serde_json::from_slice(&have)
        .unwrap_or_else(|_| panic!("JSON: {:?}", String::from_utf8_lossy(&have)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_need_a_ticket_and_a_ticket_is_good_once() {
    let server = ServerProc::start("shield-join", &["--shield", "on", "--shield-bits", "8"]);
    let base = server.base.clone();
    let (id, _) = create_space(&base, "shielded").await;
    let (other, _) = create_space(&base, "another").await;

    // Without a ticket: refused, with a challenge to solve.
    let (s, v) = join(&base, &id, None, None).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"], "proof_of_work_required", "{v}");
    assert_eq!(v["challenge"]["bits"], 8, "{v}");
    let challenge = v["challenge"]["challenge"].as_str().unwrap().to_owned();
    assert!(challenge.starts_with(&format!("1.{id}.")), "{challenge}");

    // The challenge endpoint gives the same one, cacheable by edges.
    let resp = reqwest::get(format!("{base}/api/spaces/{id}/challenge"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=5");
    let c: Value = resp.json().await.unwrap();
    assert_eq!(c["shield"], true);
    assert_eq!(c["bits"], 8);
    assert!(c["expires_s"].as_u64().unwrap() > 0);

    // With a solved ticket: in.
    let t = ticket(&base, &id).await;
    let (s, v) = join(&base, &id, Some(&t), None).await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().expect("token").to_owned();

    // The same ticket again: refused.
    let (s, v) = join(&base, &id, Some(&t), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("proof_of_work_reused")),
        "{v}"
    );
    assert!(v["challenge"]["challenge"].is_string(), "{v}");

    // A ticket for another space: invalid here.
    let elsewhere = ticket(&base, &other).await;
    let (s, v) = join(&base, &id, Some(&elsewhere), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("proof_of_work_invalid")),
        "{v}"
    );

    // Garbage: invalid (or not a ticket at all), never a server error.
    let long = "a".repeat(300);
    let forged = format!("{}:1", challenge.replacen(&id, &other, 1));
    for g in [
        "x",
        ":",
        "1.a.b.c.d:1",
        "1:2:3",
        &long,
        &forged,
        &format!("{challenge}:"),
        "%00",
    ] {
        let (s, v) = join(&base, &id, Some(g), None).await;
        assert_eq!(s, 403, "{g:?}: {v}");
        assert!(
            matches!(
                v["error"].as_str(),
                Some("proof_of_work_invalid" | "proof_of_work_required")
            ),
            "{g:?}: {v}"
        );
    }

    // Renewing a listener token needs no ticket: those already in are untouched.
    let (s, v) = join(&base, &id, None, Some(&token)).await;
    assert_eq!(s, 200, "{v}");

    assert!(
        metric(
            &base,
            "tribune_refusals_total{reason=\"proof_of_work_required\",class=\"join\"}"
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            &base,
            "tribune_refusals_total{reason=\"proof_of_work_reused\",class=\"join\"}"
        )
        .await
            >= 1.0
    );
    assert_eq!(metric(&base, "tribune_shield_on").await, 1.0);
}

/// The web app's solver (`web/pow.js`, run by Node) makes tickets the server accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_solver_makes_good_tickets() {
    // Without Node this check cannot run, so it fails (naming the package), never passes.
    let node = netns::require("node", "nodejs");
    let server = ServerProc::start("shield-js", &["--shield", "on", "--shield-bits", "10"]);
    let base = server.base.clone();
    let (id, _) = create_space(&base, "js").await;
    let (_, c) = api(
        "GET",
        &format!("{base}/api/spaces/{id}/challenge"),
        None,
        None,
    )
    .await;
    // A copy as .mjs, so Node loads it as an ES module as browsers do.
    let dir = temp_dir("shield-js");
    let module = dir.join("pow.mjs");
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/web/pow.js");
    std::fs::copy(&web, &module).unwrap();
    let script = format!(
        "import {{ solve, sha256Hex }} from {module:?};\n\
         if (sha256Hex('abc') !== 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad') process.exit(2);\n\
         console.log(solve({challenge:?}, {bits}));",
        module = module.display().to_string(),
        challenge = c["challenge"].as_str().unwrap(),
        bits = c["bits"],
    );
    let out = std::process::Command::new(node)
        .args(["--input-type=module", "-e", &script])
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(tribune_client::pow::is_solved(&t, 10), "{t}");
    let (s, v) = join(&base, &id, Some(&t), None).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_listeners_need_a_ticket_and_those_in_stay() {
    let server = ServerProc::start("shield-live", &["--shield", "off", "--shield-bits", "8"]);
    let base = server.base.clone();
    let (id, _) = create_space(&base, "live").await;

    // In before the shield goes up.
    let (s, first, mut early) = live(&base, &id, "").await;
    assert_eq!(s, 200);
    let first = read_ogg(&mut early, first).await;

    let st = set_mode(&base, "on").await;
    assert_eq!(
        (st["mode"].as_str(), st["on"].as_bool()),
        (Some("on"), Some(true)),
        "{st}"
    );

    // A newcomer without a ticket: 403 with the JSON refusal.
    let (s, rest, conn) = live(&base, &id, "").await;
    assert_eq!(s, 403);
    let v = refusal_body(conn, rest).await;
    assert_eq!(v["error"], "proof_of_work_required", "{v}");
    assert!(v["challenge"]["challenge"].is_string(), "{v}");

    // With one (in the query, as any player can send it): audio.
    let t = ticket(&base, &id).await;
    let (s, body, mut late) = live(&base, &id, &format!("?pow={t}")).await;
    assert_eq!(s, 200);
    read_ogg(&mut late, body).await;
    // And only once.
    let (s, rest, conn) = live(&base, &id, &format!("?pow={t}")).await;
    assert_eq!(s, 403);
    assert_eq!(
        refusal_body(conn, rest).await["error"],
        "proof_of_work_reused"
    );

    // The listener from before keeps receiving: pages keep coming, seconds' worth (far more
    // than could have been on the way when the shield went up).
    let before = first.len();
    let more = read_at_least(&mut early, first, before + 4096).await;
    assert!(more[before..].windows(4).any(|w| w == b"OggS"));

    // Off again: newcomers come in without a ticket.
    set_mode(&base, "off").await;
    let (s, _, _conn) = live(&base, &id, "").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_joins_turns_an_auto_shield_on() {
    // No per-address limits: every join of the burst comes from 127.0.0.1.
    let server = ServerProc::start(
        "shield-auto",
        &[
            "--shield-joins-per-s",
            "20",
            "--shield-bits",
            "8",
            "--join-rate",
            "0",
            "--ip-rate",
            "0",
        ],
    );
    let base = server.base.clone();
    let (id, _) = create_space(&base, "flash crowd").await;
    let (_, st) = api(
        "GET",
        &format!("{base}/api/admin/shield"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(
        (st["mode"].as_str(), st["on"].as_bool()),
        (Some("auto"), Some(false)),
        "{st}"
    );
    assert_eq!(metric(&base, "tribune_shield_on").await, 0.0);
    // The operator's status needs the operator key.
    let (s, _) = api("GET", &format!("{base}/api/admin/shield"), None, None).await;
    assert_eq!(s, 401);

    // 60 joins at once (repeated, should a burst straddle two seconds on a slow machine).
    let on = eventually(Duration::from_secs(30), async || {
        let burst = (0..60).map(|_| join(&base, &id, None, None));
        futures_util::future::join_all(burst).await;
        let (_, st) = api(
            "GET",
            &format!("{base}/api/admin/shield"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
        st["on"] == true
    })
    .await;
    assert!(on, "the shield went on");
    assert_eq!(metric(&base, "tribune_shield_on").await, 1.0);
    // The joins past the threshold were refused, and counted.
    let (s, v) = join(&base, &id, None, None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("proof_of_work_required")),
        "{v}"
    );
    assert!(
        metric(
            &base,
            "tribune_refusals_total{reason=\"proof_of_work_required\",class=\"join\"}"
        )
        .await
            >= 1.0
    );
    // A solved ticket still gets in.
    let t = ticket(&base, &id).await;
    assert_eq!(join(&base, &id, Some(&t), None).await.0, 200);
    // The operator can force it off.
    let st = set_mode(&base, "off").await;
    assert_eq!(st["on"], false, "{st}");
    assert_eq!(join(&base, &id, None, None).await.0, 200);
}
