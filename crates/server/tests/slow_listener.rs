//! A listener that stops reading is dropped once it falls a ring behind; the server's memory
//! for it stays bounded and other listeners are untouched.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt;
use tower::ServiceExt;
use tribune_server::{Config, Server, app::router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_stops_reading_is_dropped() {
    let dir = std::env::temp_dir().join(format!("tribune-slow-{}", std::process::id()));
    let mut cfg = Config::for_tests(dir.clone());
    cfg.slow_listener = Duration::from_secs(1);
    let server = Server::bind(cfg).await.unwrap();
    let app = server.app.clone();
    let created = app
        .create_space(Some("slow"), "slow", "", "Host", None)
        .unwrap();
    let r = router(app.clone());

    let get = || {
        Request::get("/spaces/slow/live.opus")
            .body(Body::empty())
            .unwrap()
    };
    let slow = r.clone().oneshot(get()).await.unwrap();
    let fast = r.clone().oneshot(get()).await.unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(app.metrics.listeners.load(Relaxed), 2);
    let mut fast_body = fast.into_body().into_data_stream();
    let mut slow_body = slow.into_body().into_data_stream();

    // The fast listener reads for 3 s while the slow one reads nothing.
    let mut fast_bytes = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(until, fast_body.next()).await {
        fast_bytes += chunk.len();
    }
    assert!(fast_bytes > 0);

    // The slow one now gets what was prepared at connect (headers + burst), then its stream
    // ends: it lost its place in the ring.
    let mut ended = false;
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_secs(5), slow_body.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(None) => {
                ended = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(ended, "the slow listener's body ended");
    drop(slow_body);
    assert_eq!(app.metrics.listeners_dropped_slow.load(Relaxed), 1);
    assert_eq!(
        app.metrics.listeners.load(Relaxed),
        1,
        "the fast one is still in"
    );

    // The fast listener keeps receiving.
    let more = tokio::time::timeout(Duration::from_secs(5), fast_body.next()).await;
    assert!(matches!(more, Ok(Some(Ok(_)))));
    created.space.end();
    let _ = std::fs::remove_dir_all(dir);
}
