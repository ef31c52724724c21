//! A live.opus listener on the plain port (the lean path, a shared writer per few hundred
//! listeners) that stops reading is disconnected once it falls `--slow-listener-ms` behind, and
//! counted; a listener next to it keeps a continuous stream.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lean_listener_that_stops_reading_is_dropped_alone() {
    // A high bitrate fills the stalled connection's buffers sooner.
    let server = ServerProc::start(
        "lean-slow",
        &["--slow-listener-ms", "1000", "--bitrate", "128000"],
    );
    let base = server.base.clone();
    let (id, speaker) = space_with_speaker(&server, "slow", 16).await;
    let url = format!("{base}/spaces/{id}/live.opus");

    // The stalled listener: a small receive buffer, and it never reads.
    let addr = base.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    stalled
        .write_all(format!("GET /spaces/{id}/live.opus HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // A player reading all along.
    let player = listen(&url, 12, &server.data_dir.join("player.wav"));

    assert!(
        eventually(Duration::from_secs(30), async || {
            metric(&base, "tribune_listeners_dropped_slow_total").await >= 1.0
        })
        .await,
        "the stalled listener is dropped"
    );
    // Its connection is closed: what the kernel held for it, then the end (or a reset).
    let mut sink = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stalled.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server closed the stalled connection");

    let r = report(player);
    assert_continuous(&r);
    assert_eq!(r["header_ok"], true, "{r}");
    assert_eq!(
        metric(&base, "tribune_listeners_dropped_slow_total").await,
        1.0,
        "only the stalled one"
    );
    wait_ok(speaker, "speaker");
}
