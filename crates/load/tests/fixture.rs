//! `tribune loadtest` against tiny fixture servers on loopback, in process: a correct Ogg/Opus
//! stream is not gapped, the same stream with one page left out is gapped for every listener,
//! and a server answering 503 is counted as refused (and retried with `--retry`).
//!
//! The fixture speaks like Icecast: `HTTP/1.0 200`, no chunking, the body until the connection
//! closes; the headers, a burst of three pages, then a 100 ms page every 100 ms.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tribune_load::{Args, Exec, Report};
use tribune_media::oggopus::OggOpusWriter;

/// Audio pages the fixture has (one a 100 ms): more than any test here listens to.
const PAGES: usize = 300;
/// Pages sent at once when a listener connects.
const BURST: usize = 3;
/// The page the skipping fixture leaves out (after the burst, so every listener has joined).
const SKIPPED: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Correct,
    SkipOnePage,
    Refuse,
}

/// The stream: its header pages, then audio pages of five 20 ms Opus packets of silence.
fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    let silence = enc.encode_vec(&[0i16; 960], 400).unwrap();
    let mut w = OggOpusWriter::new(0x10ad, 1, 312, vec![]);
    let head = w.header_pages();
    let pages = (0..PAGES)
        .map(|_| {
            for _ in 0..5 {
                w.push(&silence, 960);
            }
            w.flush(false).unwrap().bytes
        })
        .collect();
    (head, pages)
}

/// Serves `mode` on an ephemeral loopback port; returns the stream's URL.
async fn fixture(mode: Mode) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/stream.opus", listener.local_addr().unwrap());
    let stream = Arc::new(stream());
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn, mode, stream.clone()));
        }
    });
    url
}

async fn serve(mut conn: TcpStream, mode: Mode, stream: Arc<(Vec<u8>, Vec<Vec<u8>>)>) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    if mode == Mode::Refuse {
        let _ = conn
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    let (head, pages) = &*stream;
    let mut out = b"HTTP/1.0 200 OK\r\nContent-Type: audio/ogg\r\n\r\n".to_vec();
    out.extend_from_slice(head);
    for page in &pages[..BURST] {
        out.extend_from_slice(page);
    }
    if conn.write_all(&out).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for (i, page) in pages.iter().enumerate().skip(BURST) {
        tick.tick().await;
        if mode == Mode::SkipOnePage && i == SKIPPED {
            continue;
        }
        if conn.write_all(page).await.is_err() {
            return;
        }
    }
}

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: Args,
}

async fn loadtest(args: &[&str]) -> Report {
    let args = Cmd::parse_from(std::iter::once("loadtest").chain(args.iter().copied())).args;
    tribune_load::run(args, Exec::current(&[]).unwrap())
        .await
        .unwrap()
        .expect("a report")
}

#[tokio::test]
async fn a_correct_stream_is_not_gapped_and_a_skipped_page_is() {
    let correct = fixture(Mode::Correct).await;
    let skipping = fixture(Mode::SkipOnePage).await;
    let common = ["--listeners", "20", "--ramp", "100", "--hold", "3"];
    let good_args = [&["--ogg-url", correct.as_str()][..], &common].concat();
    let bad_args = [&["--ogg-url", skipping.as_str()][..], &common].concat();
    let (good, bad) = tokio::join!(loadtest(&good_args), loadtest(&bad_args));
    for r in [&good, &bad] {
        assert_eq!(r.listeners.target, 20);
        assert_eq!(r.listeners.joined, 20, "{:?}", r.errors);
        assert_eq!(r.listeners.held, 20, "{:?}", r.errors);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(r.throughput.pages_total > 20 * 5);
    }
    assert_eq!(good.listeners.gapped, 0);
    assert_eq!(
        bad.listeners.gapped, 20,
        "every listener missed page {SKIPPED}"
    );
}

#[tokio::test]
async fn a_refusing_server_is_counted_and_retried() {
    let url = fixture(Mode::Refuse).await;
    let common = [
        "--ogg-url",
        url.as_str(),
        "--listeners",
        "10",
        "--ramp",
        "100",
    ];
    let once = loadtest(&[&common[..], &["--hold", "2"]].concat()).await;
    assert_eq!(once.listeners.never_joined, 10);
    assert_eq!(once.errors.get("http_503"), Some(&10), "{:?}", once.errors);
    // With --retry each listener tries again after Retry-After (1 s), until the run ends.
    let retried = loadtest(&[&common[..], &["--hold", "3.5", "--retry"]].concat()).await;
    assert_eq!(retried.listeners.never_joined, 10);
    // At least one retry each, at most one a second.
    let refused = retried.errors.get("http_503").copied().unwrap_or(0);
    assert!((20..=40).contains(&refused), "{:?}", retried.errors);
}
