//! An event subscriber that stops reading is dropped once it falls behind the hub's ring; the
//! others keep receiving every event.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt;
use serde_json::json;
use tower::ServiceExt;
use tribune_engine::events::LAG_LIMIT;
use tribune_server::{Config, Server, app::router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_event_subscriber_is_dropped_alone() {
    let dir = std::env::temp_dir().join(format!("tribune-slow-events-{}", std::process::id()));
    let server = Server::bind(Config::for_tests(dir.clone())).await.unwrap();
    let app = server.app.clone();
    let key = app.cfg.admin_key.clone();
    let created = app
        .create_space(Some("ev"), "events", "", "Host", None)
        .unwrap();
    let r = router(app.clone());
    let get = || {
        Request::get("/api/spaces/ev/events")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    let slow = r.clone().oneshot(get()).await.unwrap();
    let fast = r.clone().oneshot(get()).await.unwrap();
    assert_eq!(slow.status(), 200);
    let mut slow = slow.into_body().into_data_stream();
    let mut fast = fast.into_body().into_data_stream();

    // Publish more than a subscriber may lag, reading only the fast one.
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), fast.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\"n\":last") || text.matches("event: test").count() > LAG_LIMIT + 50 {
                break;
            }
        }
        text
    });
    for n in 0..(LAG_LIMIT + 100) {
        created.space.events.publish("test", &json!({ "n": n }));
        if n % 8 == 0 {
            // Let the fast reader keep up: it is fast, not infinitely fast.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let text = reader.await.unwrap();
    let got = text.matches("event: test").count();
    assert!(
        got > LAG_LIMIT + 50,
        "the fast subscriber got the events ({got})"
    );

    // The slow one gets what was queued for it, then its stream ends.
    let mut ended = false;
    for _ in 0..(LAG_LIMIT * 2) {
        match tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(None) => {
                ended = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(ended, "the slow subscriber was dropped");
    assert_eq!(
        app.metrics
            .events_dropped_slow
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    created.space.end();
    let _ = std::fs::remove_dir_all(dir);
}
