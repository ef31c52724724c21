//! The node directory against a real `redis-server` (Debian's, started on loopback with a
//! temporary directory by `tribune_load::redis`, and stopped at the end).

use std::time::{Duration, Instant};

use tribune_cluster::{Directory, NodeInfo};
use tribune_load::redis::Redis;

/// Longest a step may take before the test fails (a bound, not a timing).
const HANG: Duration = Duration::from_secs(20);

fn node(id: &str, spaces: &[&str]) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        public_url: format!("http://127.0.0.1:80{}", id.len()),
        udp: None,
        load: 0,
        spaces: spaces.iter().map(|s| s.to_string()).collect(),
        at_ms: 1,
    }
}

#[tokio::test]
async fn nodes_register_renew_expire_and_leave() {
    let dir = std::env::temp_dir().join(format!("tribune-dir-redis-{}", std::process::id()));
    let redis = Redis::start(&dir).expect("redis-server");
    let long = Directory::connect(&redis.url(), Duration::from_secs(60))
        .await
        .unwrap();
    let short = Directory::connect(&redis.url(), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(long.nodes().await.unwrap().is_empty());

    long.register(&node("a", &["s1"])).await.unwrap();
    long.register(&node("b", &[])).await.unwrap();
    short.register(&node("c", &["s2"])).await.unwrap();
    let ids = |v: Vec<NodeInfo>| v.into_iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(ids(long.nodes().await.unwrap()), ["a", "b", "c"]);

    // A renewal replaces the record.
    long.register(&node("a", &["s1", "s3"])).await.unwrap();
    let a = long.nodes().await.unwrap().remove(0);
    assert_eq!(a.spaces, ["s1", "s3"]);

    // A node that stops renewing leaves by itself; one that stops cleanly leaves at once.
    let deadline = Instant::now() + HANG;
    while ids(long.nodes().await.unwrap()).contains(&"c".to_string()) {
        assert!(Instant::now() < deadline, "an expired node stays listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    long.leave("b").await.unwrap();
    assert_eq!(ids(long.nodes().await.unwrap()), ["a"]);
}
