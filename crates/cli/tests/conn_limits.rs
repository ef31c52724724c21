//! Cheap rejection at the connection level (issue 7): the per-address cap on the audience
//! listener, slow and oversized request heads, idle kept-alive connections, and the reserve of
//! file descriptors that keeps the control listener working while the audience port is full.
//!
//! Every bound here is a limit on a hang, never a timing the test depends on.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Longest any one step may hang before the test fails.
const HANG: Duration = Duration::from_secs(30);

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().expect("address")
}

/// A connection to `server` from the loopback address `source`.
async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source.parse::<IpAddr>().expect("ip"), 0))
        .expect("bind a loopback source address");
    socket.connect(server).await.expect("connect")
}

/// Everything the server sends until it closes the connection (or a reset), within [`HANG`].
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let done = tokio::time::timeout(HANG, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(done.is_ok(), "the server did not close the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// One request on `s`, and the response head and body as text (`Content-Length` framed); what
/// came before the connection closed, if it did.
async fn request(s: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(HANG, async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out);
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if out.len() >= end + 4 + len {
                    return;
                }
            }
        }
    })
    .await
    .expect("a response");
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /healthz` from `source` answers 200.
async fn healthy_from(source: &str, server: SocketAddr) -> bool {
    let mut s = connect_from(source, server).await;
    request(&mut s, "/healthz")
        .await
        .starts_with("HTTP/1.1 200")
}

/// The value of one labelled series in `/metrics` at `base`.
async fn series(base: &str, line_prefix: &str) -> f64 {
    let text = scrape(base).await;
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line_prefix} missing"))
}

const TOO_MANY: &str = "tribune_refusals_total{reason=\"too_many_connections\",class=\"join\"} ";
const BAD_HEAD: &str = "tribune_refusals_total{reason=\"bad_head\",class=\"browse\"} ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_its_share_of_connections_and_no_more() {
    let server = ServerProc::start(
        "conn-cap",
        &["--max-conns-per-ip", "4", "--head-timeout-ms", "120000"],
    );
    let base = server.base.clone();
    let http = addr(&base);

    // Four idle connections from one address take its share...
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.5", http).await);
    }
    // ...so the fifth (accepted after them: the backlog is in order) gets the canned 429.
    let mut extra = connect_from("127.0.0.5", http).await;
    let answer = read_to_close(&mut extra).await;
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 5\r\n"), "{answer}");
    assert!(lower.contains("\r\nconnection: close\r\n"), "{answer}");
    let body: Value = serde_json::from_str(&answer[answer.find("\r\n\r\n").expect("head") + 4..])
        .expect("a JSON body");
    assert_eq!(body["error"], "too_many_connections", "{body}");
    assert_eq!(body["retry_after_s"], 5, "{body}");
    assert!(series(&base, TOO_MANY).await >= 1.0);

    // Another address is served meanwhile.
    assert!(healthy_from("127.0.0.6", http).await);

    // Closing one of the four frees a slot for the address.
    drop(held.pop());
    assert!(
        eventually(HANG, async || healthy_from("127.0.0.5", http).await).await,
        "a closed connection gives its slot back"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_idle_connections_and_huge_heads_are_cut_off() {
    let server = ServerProc::start(
        "conn-slow",
        &["--head-timeout-ms", "1500", "--idle-timeout", "1"],
    );
    let base = server.base.clone();
    let http = addr(&base);
    let bad_before = series(&base, BAD_HEAD).await;

    // Slowloris on a fresh connection (the plain listener's own head read) and on a kept-alive
    // one (hyper's header-read timeout): a byte every 100 ms, so the connection is never idle,
    // yet the head never completes.
    let dribble = async |mut s: TcpStream| {
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let mut closed = false;
        let _ = tokio::time::timeout(HANG, async {
            for i in 0.. {
                let byte = head.get(i).copied().unwrap_or(b'a');
                if s.write_all(&[byte]).await.is_err() {
                    closed = true;
                    return;
                }
                let mut buf = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        closed = true;
                        return;
                    }
                    _ => {}
                }
            }
        })
        .await;
        closed
    };
    let fresh = connect_from("127.0.0.7", http).await;
    let mut kept = connect_from("127.0.0.8", http).await;
    assert!(
        request(&mut kept, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let (fresh_closed, kept_closed, served) = tokio::join!(dribble(fresh), dribble(kept), async {
        // A normal client is served while both dribble.
        tokio::time::sleep(Duration::from_millis(500)).await;
        healthy_from("127.0.0.9", http).await
    });
    assert!(fresh_closed, "a slow first head is cut off");
    assert!(
        kept_closed,
        "a slow head on a kept-alive connection is cut off"
    );
    assert!(served, "a normal client is served meanwhile");
    assert!(
        series(&base, BAD_HEAD).await >= bad_before + 2.0,
        "both slow heads are counted"
    );

    // A kept-alive connection that sends nothing more is closed.
    let mut idle = connect_from("127.0.0.10", http).await;
    assert!(
        request(&mut idle, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let rest = read_to_close(&mut idle).await;
    assert!(rest.is_empty(), "nothing more was sent: {rest:?}");

    // A head over --max-header-bytes (16 KiB) is refused with a 4xx, and the server stays up.
    let mut huge = connect_from("127.0.0.11", http).await;
    let big = "a".repeat(20 * 1024);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close before taking all of it.
    let _ = huge.write_all(req.as_bytes()).await;
    let answer = read_to_close(&mut huge).await;
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer:?}");
    assert!(healthy_from("127.0.0.12", http).await);
}

/// A `tribune serve` with at most `nofile` file descriptors and a control listener; returns it
/// with its audience and control addresses.
fn start_with_nofile(name: &str, nofile: u64, extra: &[&str]) -> (ServerProc, String) {
    let data_dir = temp_dir(name);
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0"])
        .args(["--control-listen", "127.0.0.1:0"])
        .args(["--admin-key", ADMIN_KEY, "--log", "info,str0m=warn"])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn tribune serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().expect("server output").expect("read stdout");
    let first = next();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address line")
        .to_owned();
    let udp = first
        .split_whitespace()
        .find_map(|w| w.trim_end_matches(')').parse().ok())
        .expect("udp address");
    let second = next();
    let control = second
        .strip_prefix("tribune control on ")
        .unwrap_or_else(|| panic!("not the control line: {second:?}"))
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    let server = ServerProc {
        child,
        base,
        https: None,
        udp,
        data_dir,
    };
    (server, control)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audience_port_leaves_the_control_port_working() {
    // 400 descriptors: the audience may hold 200 connections, the rest is the server's own.
    let (server, control) = start_with_nofile(
        "conn-reserve",
        400,
        &["--head-timeout-ms", "120000", "--max-conns-per-ip", "0"],
    );
    let base = server.base.clone();
    let http = addr(&base);
    let (id, host) = create_space(&control, "reserve").await;

    // Idle connections from many addresses, more than the audience's share: the port refuses
    // the ones past it.
    let mut held = Vec::new();
    for i in 0..260u32 {
        let source = format!("127.0.{}.{}", 1 + i / 200, 2 + i % 200);
        held.push(connect_from(&source, http).await);
    }
    assert!(
        eventually(HANG, async || {
            metric(&control, "tribune_audience_connections_shed_total").await >= 1.0
        })
        .await,
        "the audience port refuses connections past its share"
    );
    assert_eq!(
        metric(&control, "tribune_audience_connections").await,
        200.0
    );
    // A new audience connection is told to come back (a canned 503 with Retry-After), not
    // closed bare: a client can tell a full server from a dead one.
    let mut late = connect_from("127.0.3.2", http).await;
    let answer = request(&mut late, "/healthz").await;
    assert!(
        answer.starts_with("HTTP/1.1 503 ") && answer.contains("\r\nretry-after: 5\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\"overloaded\""), "{answer}");

    // The control port serves the whole API meanwhile: health, the space, a host's action.
    let (s, _) = api("GET", &format!("{control}/healthz"), None, None).await;
    assert_eq!(s, 200);
    let (s, v) = api("GET", &format!("{control}/api/spaces/{id}"), None, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api(
        "POST",
        &format!("{control}/api/spaces/{id}/stage/mute"),
        Some(&host),
        None,
    )
    .await;
    assert!((200..300).contains(&s), "{s} {v}");

    // Once the idle connections go, the audience port serves again.
    drop(held);
    assert!(
        eventually(HANG, async || healthy_from("127.0.3.1", http).await).await,
        "the audience port serves again"
    );
}
