//! The lean live.opus path of the plain listener: it answers as hyper does (same status lines,
//! headers in the same order, same refusal bodies), streams a continuous Ogg stream to HTTP/1.1
//! and HTTP/1.0 clients, ends it cleanly with the space, and leaves every other request to hyper
//! with its first bytes replayed (bodies, keep-alive, `ConnectInfo`).
//!
//! Each test runs a real server (`Server::bind` + `serve`) on loopback and talks raw TCP to it;
//! the hyper path for comparison is the same router served by `axum::serve` on a second port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tribune_client::listen::StreamChecker;
use tribune_server::{App, Config, Server, app::router};

/// Bound on any wait for the server (a hang fails the test; no timing is asserted).
const LIMIT: Duration = Duration::from_secs(20);

struct Running {
    app: Arc<App>,
    /// The plain listener (lean path for live.opus).
    lean: SocketAddr,
    /// The same router behind hyper only.
    hyper: SocketAddr,
}

async fn start(name: &str, tweak: impl FnOnce(&mut Config)) -> Running {
    let dir = std::env::temp_dir().join(format!("tribune-lean-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = Config::for_tests(dir);
    tweak(&mut cfg);
    let server = Server::bind(cfg).await.unwrap();
    let app = server.app.clone();
    let lean = server.http_addr;
    tokio::spawn(server.serve(std::future::pending()));
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hyper = tcp.local_addr().unwrap();
    let svc = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(tcp, svc).await });
    Running { app, lean, hyper }
}

/// Connect and send `parts` one write at a time (letting each go out on its own).
async fn send(addr: SocketAddr, parts: &[&[u8]]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.write_all(p).await.unwrap();
    }
    s
}

/// Read a response head; returns it and the body bytes read with it.
async fn head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            return (head, buf[end + 4..].to_vec());
        }
        let n = tokio::time::timeout(LIMIT, s.read_buf(&mut buf))
            .await
            .expect("a response head in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before a head: {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
}

/// Everything until the server closes the connection.
async fn to_end(s: &mut TcpStream, mut got: Vec<u8>) -> Vec<u8> {
    tokio::time::timeout(LIMIT, s.read_to_end(&mut got))
        .await
        .expect("the server closes the connection")
        .unwrap();
    got
}

/// A head with its `date` value blanked (it is the only part that may differ by the clock).
fn normal(head: &str) -> String {
    head.lines()
        .map(|l| {
            if l.starts_with("date: ") {
                "date: *"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn create(app: &App, id: &str, title: &str) {
    app.create_space(Some(id), title, "about it", "Host", None)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lean_path_answers_byte_for_byte_as_hyper() {
    let r = start("heads", |_| {}).await;
    create(&r.app, "s", "Ünïcode talk").await;
    create(&r.app, "e", "over").await;
    r.app.spaces.get("e").unwrap().end();
    for req in [
        &b"GET /spaces/s/live.opus HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /spaces/s/live.opus?from=player HTTP/1.0\r\n\r\n",
        b"HEAD /spaces/s/live.opus HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /spaces/nope/live.opus HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /spaces/nope/live.opus HTTP/1.0\r\n\r\n",
        b"GET /spaces/e/live.opus HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let text = String::from_utf8_lossy(req).into_owned();
        let mut lean = send(r.lean, &[req]).await;
        let mut hyper = send(r.hyper, &[req]).await;
        let (lean_head, lean_body) = head(&mut lean).await;
        let (hyper_head, hyper_body) = head(&mut hyper).await;
        assert_eq!(normal(&lean_head), normal(&hyper_head), "{text}");
        assert!(
            lean_head.contains("\r\nconnection: close\r\n"),
            "{lean_head}"
        );
        if lean_head.starts_with("HTTP/1.1 200") || lean_head.starts_with("HTTP/1.0 200") {
            if req.starts_with(b"HEAD") {
                assert!(
                    to_end(&mut lean, lean_body).await.is_empty(),
                    "HEAD: no body"
                );
                continue;
            }
            let chunked = lean_head.contains("transfer-encoding: chunked");
            assert_eq!(chunked, text.contains("HTTP/1.1"), "{lean_head}");
            // Both start with the Opus header pages (framed as a chunk for 1.1).
            let skip = if chunked { 4 } else { 0 };
            let mut lean_body = lean_body;
            while lean_body.len() < skip + 36 {
                lean.read_buf(&mut lean_body).await.unwrap();
            }
            assert_eq!(&lean_body[skip..skip + 4], b"OggS", "{text}");
            assert_eq!(&lean_body[skip + 28..skip + 36], b"OpusHead", "{text}");
        } else {
            let lean_body = to_end(&mut lean, lean_body).await;
            let (_, rest) = (hyper_head, hyper_body);
            let len: usize = lean_head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            let mut hyper_body = rest;
            while hyper_body.len() < len {
                hyper.read_buf(&mut hyper_body).await.unwrap();
            }
            assert_eq!(lean_body, hyper_body, "the same JSON body: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_listener_gets_503_and_is_counted() {
    let r = start("cap", |c| c.max_listeners = 1).await;
    create(&r.app, "s", "full").await;
    let req = b"GET /spaces/s/live.opus HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = send(r.lean, &[req]).await;
    assert!(head(&mut first).await.0.starts_with("HTTP/1.1 200 OK\r\n"));
    let mut second = send(r.lean, &[req]).await;
    let (h, body) = head(&mut second).await;
    let body = to_end(&mut second, body).await;
    assert!(h.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{h}");
    let wait: u64 = h
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..=30).contains(&wait), "{h}");
    assert!(
        h.contains("link: </spaces/s/hls/index.m3u8>; rel=\"alternate\""),
        "{h}"
    );
    assert!(h.contains("tribune-position: 1\r\n"), "{h}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "waiting_room");
    assert_eq!(v["position"], 1);
    assert!(v["ticket"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert_eq!(r.app.metrics.listeners_refused_full.load(Relaxed), 1);
    assert_eq!(r.app.metrics.listeners.load(Relaxed), 1);
    let space = r.app.spaces.get("s").unwrap();
    assert_eq!(
        space
            .turned_away
            .lock()
            .sum(tribune_engine::clock::Clock::system().now_s()),
        1
    );
    // hyper's 503 has the same header lines in the same order.
    let mut hyper = send(r.hyper, &[req]).await;
    let (hh, _) = head(&mut hyper).await;
    let names = |h: &str| -> Vec<String> {
        h.lines()
            .map(|l| l.split(':').next().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(names(&h), names(&hh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_split_over_several_writes_is_served() {
    let r = start("split", |_| {}).await;
    create(&r.app, "s", "split").await;
    let mut s = send(
        r.lean,
        &[
            b"GET /spaces/s/li",
            b"ve.opus HTTP/1.1\r\nHo",
            b"st: x\r\n",
            b"\r\n",
        ],
    )
    .await;
    let (h, _) = head(&mut s).await;
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_garbage_heads_get_400_and_the_connection_closes() {
    let r = start("bad", |_| {}).await;
    create(&r.app, "s", "bad").await;
    let mut s = send(
        r.lean,
        &[b"GET /spaces/s/live.opus HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"],
    )
    .await;
    let (h, body) = head(&mut s).await;
    assert!(h.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{h}");
    let body = to_end(&mut s, body).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "bad_request");
    assert_eq!(r.app.metrics.listeners_total.load(Relaxed), 0);

    let mut s = send(r.lean, &[b"\x16\x03\x01 not http at all\r\n\r\n"]).await;
    let (h, body) = head(&mut s).await;
    assert!(h.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{h}");
    to_end(&mut s, body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let r = start("slowloris", |c| c.head_timeout = Duration::from_millis(300)).await;
    let mut silent = send(r.lean, &[]).await;
    let mut partial = send(r.lean, &[b"GET /spaces/s/live.op"]).await;
    assert!(to_end(&mut silent, Vec::new()).await.is_empty());
    assert!(to_end(&mut partial, Vec::new()).await.is_empty());
    assert_eq!(r.app.metrics.http_head_timeouts.load(Relaxed), 2);
}

/// Reads one response with a `content-length` body from a keep-alive connection.
async fn response(s: &mut TcpStream) -> (String, serde_json::Value) {
    let (h, mut body) = head(s).await;
    let len: usize = h
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .parse()
        .unwrap();
    while body.len() < len {
        s.read_buf(&mut body).await.unwrap();
    }
    (h, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_reach_hyper_with_bodies_keep_alive_and_the_peer_address() {
    let r = start("rewind", |_| {}).await;
    create(&r.app, "s", "rewind").await;
    let body = br#"{"name": "Ada"}"#;
    let post = format!(
        "POST /api/spaces/s/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    // The join handler reads `ConnectInfo<SocketAddr>`: a 200 means axum got the peer address.
    let mut s = send(r.lean, &[post.as_bytes(), &body[..5], &body[5..]]).await;
    let (h, v) = response(&mut s).await;
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert!(v["token"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    // The same connection serves a second request.
    s.write_all(b"GET /api/spaces/s HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (h, v) = response(&mut s).await;
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert_eq!(v["id"], "s");
}

/// A raw lean listener: its stream fed to a checker until `bytes` arrived.
async fn listen_raw(addr: SocketAddr, http10: bool, bytes: usize) -> (TcpStream, StreamChecker) {
    let req: &[u8] = if http10 {
        b"GET /spaces/s/live.opus HTTP/1.0\r\n\r\n"
    } else {
        b"GET /spaces/s/live.opus HTTP/1.1\r\nHost: x\r\n\r\n"
    };
    let mut s = send(addr, &[req]).await;
    let (h, mut body) = head(&mut s).await;
    assert!(h.contains(" 200 OK\r\n"), "{h}");
    while dechunk(&body, http10).len() < bytes {
        tokio::time::timeout(LIMIT, s.read_buf(&mut body))
            .await
            .unwrap()
            .unwrap();
    }
    let mut checker = StreamChecker::new().unwrap();
    checker.push(&dechunk(&body, http10));
    (s, checker)
}

/// The payload of complete chunks (or the bytes as they are, for HTTP/1.0).
fn dechunk(body: &[u8], raw: bool) -> Vec<u8> {
    if raw {
        return body.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
        let start = end + 2;
        if rest.len() < start + size + 2 {
            break;
        }
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_listeners_get_a_continuous_stream_and_are_counted() {
    let r = start("stream", |_| {}).await;
    create(&r.app, "s", "stream").await;
    let space = r.app.spaces.get("s").unwrap();
    // A player (reqwest, HTTP/1.1) through tribune-client's listener, and a raw HTTP/1.0 one.
    let url = format!("http://{}/spaces/s/live.opus", r.lean);
    let player = tokio::spawn(tribune_client::listen::run(
        tribune_client::listen::Options {
            url,
            duration: Some(Duration::from_secs(3)),
            out: None,
        },
        std::future::pending(),
    ));
    // Well past the header pages and the burst: a few pages made while connected.
    let (old, checker) = listen_raw(r.lean, true, 2000).await;
    let report = player.await.unwrap().unwrap();
    assert_eq!(report.status, 200);
    assert!(report.header_ok, "{report:?}");
    assert!(report.pages > 10, "{report:?}");
    assert_eq!(
        (report.seq_gaps, report.granule_gaps, report.crc_errors),
        (0, 0, 0)
    );
    let stats = checker.stats();
    assert!(stats.header_ok && stats.pages > 5, "{stats:?}");
    assert_eq!(
        (stats.seq_gaps, stats.granule_gaps, stats.crc_errors),
        (0, 0, 0)
    );
    assert_eq!(r.app.metrics.listeners_total.load(Relaxed), 2);
    assert!(r.app.metrics.listener_bytes_sent.load(Relaxed) >= 2000);
    // A listener that went away is noticed at the next page it is written.
    assert!(
        eventually(|| r.app.metrics.listeners.load(Relaxed) == 1).await,
        "the player left"
    );
    assert_eq!(space.live.listeners.load(Relaxed), 1);
    drop(old);
    assert!(
        eventually(|| r.app.metrics.listeners.load(Relaxed) == 0).await,
        "both left"
    );
    assert_eq!(space.live.listeners.load(Relaxed), 0);
    assert_eq!(r.app.metrics.listeners_dropped_slow.load(Relaxed), 0);
}

/// Whether `f` becomes true within [`LIMIT`] (polled; a bound on a hang, not a timing).
async fn eventually(f: impl Fn() -> bool) -> bool {
    let end = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_space_ends_listeners_get_the_rest_and_the_end() {
    let r = start("end", |_| {}).await;
    create(&r.app, "s", "end").await;
    let (mut one, _) = listen_raw(r.lean, false, 500).await;
    let (mut zero, _) = listen_raw(r.lean, true, 500).await;
    r.app.spaces.get("s").unwrap().end();
    let tail = to_end(&mut one, Vec::new()).await;
    assert!(
        tail.ends_with(b"\r\n0\r\n\r\n"),
        "the last chunk ends the body"
    );
    let tail = to_end(&mut zero, Vec::new()).await;
    // The last page carries end-of-stream (header type flag 4).
    let last = tail.windows(4).rposition(|w| w == b"OggS").unwrap();
    assert_eq!(tail[last + 5] & 4, 4, "end-of-stream page");
    // The writer closes a socket before it drops the listener's entry: the count follows.
    assert!(
        eventually(|| r.app.metrics.listeners.load(Relaxed) == 0).await,
        "both counted out"
    );
    // An ended space refuses new listeners.
    let mut late = send(r.lean, &[b"GET /spaces/s/live.opus HTTP/1.1\r\n\r\n"]).await;
    assert!(head(&mut late).await.0.starts_with("HTTP/1.1 410 Gone\r\n"));
}
