//! Nodes sharing one Redis (Debian's `redis-server`, started on loopback by the test): each
//! registers itself, every node lists every live node and the spaces each owns, and losing
//! Redis costs the listing (`503` with `Retry-After`), never the nodes.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tribune_load::redis::Redis;

/// Longest the cluster may take to show a change (renewals run every 5 s): a bound, not a timing.
const HANG: Duration = Duration::from_secs(30);
const SECRET: &str = "cluster-test-jwt-secret";

/// `GET /api/cluster` with the operator key: status, `Retry-After`, body.
async fn cluster(base: &str) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/cluster"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("GET /api/cluster");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

/// Whether `v` lists exactly nodes n1..n3, with their URLs, and n1 owning `space`.
fn all_three(v: &Value, space: &str) -> bool {
    let Some(nodes) = v["nodes"].as_array() else {
        return false;
    };
    let ids: Vec<&str> = nodes.iter().filter_map(|n| n["id"].as_str()).collect();
    ids == ["n1", "n2", "n3"]
        && nodes.iter().all(|n| {
            n["public_url"] == format!("http://{}.test:8080", n["id"].as_str().unwrap_or(""))
        })
        && nodes[0]["spaces"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == space))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_find_each_other_through_redis_and_outlive_it() {
    let mut redis = Redis::start(&temp_dir("cluster-redis")).expect("redis-server");
    let url = redis.url();
    let nodes: Vec<ServerProc> = (1..=3)
        .map(|i| {
            ServerProc::start(
                &format!("cluster-n{i}"),
                &[
                    "--redis",
                    &url,
                    "--node-id",
                    &format!("n{i}"),
                    "--public-url",
                    &format!("http://n{i}.test:8080"),
                    "--jwt-secret",
                    SECRET,
                ],
            )
        })
        .collect();
    let (space, _) = create_space(&nodes[0].base, "clustered").await;

    for n in &nodes {
        let listed = eventually(HANG, async || {
            let (s, _, v) = cluster(&n.base).await;
            s == 200 && all_three(&v, &space)
        })
        .await;
        assert!(
            listed,
            "{} lists the three nodes: {:?}",
            n.base,
            cluster(&n.base).await
        );
    }
    let (_, _, v) = cluster(&nodes[1].base).await;
    assert_eq!(v["node"], "n2", "a node says which one it is");

    // The listing is the operator's.
    let r = reqwest::get(format!("{}/api/cluster", nodes[0].base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Redis gone: the listing says to come back, the nodes and their spaces stay up.
    redis.kill();
    let refused = eventually(HANG, async || {
        let (s, retry, _) = cluster(&nodes[2].base).await;
        s == 503 && retry.is_some()
    })
    .await;
    assert!(
        refused,
        "503 with Retry-After while Redis is away: {:?}",
        cluster(&nodes[2].base).await
    );
    for n in &nodes {
        let (s, v) = api("GET", &format!("{}/healthz", n.base), None, None).await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = api(
        "GET",
        &format!("{}/api/spaces/{space}", nodes[0].base),
        None,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("live")), "{v}");

    // Redis back (empty: no persistence here): the nodes register again by themselves.
    redis.restart().expect("redis-server again");
    let healed = eventually(HANG, async || {
        let (s, _, v) = cluster(&nodes[0].base).await;
        s == 200 && all_three(&v, &space)
    })
    .await;
    assert!(
        healed,
        "the cluster heals: {:?}",
        cluster(&nodes[0].base).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_has_no_cluster_and_half_a_cluster_config_does_not_start() {
    let alone = ServerProc::start("cluster-alone", &[]);
    let (s, _, v) = cluster(&alone.base).await;
    assert_eq!(s, 404, "{v}");
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis",
            "redis://127.0.0.1:1/0",
        ])
        .args(["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET])
        .output()
        .expect("run tribune serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--node-id"), "{err}");
}
