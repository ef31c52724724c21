//! `accept` when the process is out of file descriptors: the pending connections are closed (their
//! clients see the end at once instead of hanging in the backlog), the failure is counted, and the
//! listener accepts again as soon as descriptors are free.
//!
//! This binary holds one test on purpose: it lowers its own process's open-file limit.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tribune_metrics::Metrics;
use tribune_net::accept::Acceptor;

/// Longest a step may hang before the test fails (a bound, not a timing).
const HANG: Duration = Duration::from_secs(20);

fn nofile() -> (u64, u64) {
    rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit")
}

#[tokio::test]
async fn out_of_descriptors_pending_clients_are_closed_and_accepting_resumes() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let metrics = Arc::new(Metrics::default());
    let farewell = bytes::Bytes::from_static(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
    let mut acceptor = Acceptor::new(tcp, metrics.clone()).farewell(farewell.clone());
    // Three clients wait in the backlog (the kernel completes their handshakes).
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(TcpStream::connect(addr).await.expect("connect"));
    }

    // Use up every descriptor: a limit just above the highest one open, every gap filled.
    let (soft, hard) = nofile();
    let highest = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .expect("some descriptors");
    rlimit::setrlimit(rlimit::Resource::NOFILE, highest + 1, hard).expect("setrlimit");
    let mut fillers = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fillers.push(f);
    }

    // The acceptor gives its spare back for each pending client and closes it; it hands out
    // nothing while the process is out of descriptors.
    let accepted = tokio::time::timeout(Duration::from_millis(500), acceptor.accept()).await;
    assert!(accepted.is_err(), "nothing can be accepted and kept now");
    for c in &mut clients {
        // Told to come back, then closed: the farewell, then the end of the stream.
        let mut got = Vec::new();
        let r = tokio::time::timeout(HANG, c.read_to_end(&mut got))
            .await
            .expect("a pending client is told at once");
        assert!(r.is_ok(), "closed cleanly: {r:?}");
        assert_eq!(got, farewell, "the canned answer before the close");
    }
    assert!(metrics.accept_fd_exhausted.load(Relaxed) >= 1);

    // Descriptors free again: the next client is accepted.
    drop(fillers);
    rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).expect("restore the limit");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (conn, peer) = tokio::time::timeout(HANG, acceptor.accept())
        .await
        .expect("accepting resumes");
    assert_eq!(peer, client.local_addr().expect("client addr"));
    drop(conn);
}
