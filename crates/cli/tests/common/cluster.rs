//! Cluster nodes for the tests: `tribune serve` processes sharing one Redis (Debian's
//! `redis-server`, started on loopback by [`tribune_load::redis::Redis`]).

use std::time::Duration;

use super::*;
use tribune_load::redis::Redis;

/// The JWT secret every node of a test cluster shares.
pub const SECRET: &str = "cluster-test-jwt-secret";

/// A port free now on loopback (a node is told its public URL before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `count` nodes n1… on Redis at `url`, each with `extra` arguments too.
pub fn nodes(url: &str, name: &str, count: usize, extra: &[&str]) -> Vec<ServerProc> {
    (1..=count)
        .map(|i| {
            let listen = format!("127.0.0.1:{}", free_port());
            let public = format!("http://{listen}");
            let id = format!("n{i}");
            let mut args = vec![
                "--listen",
                &listen,
                "--redis",
                url,
                "--jwt-secret",
                SECRET,
                "--public-url",
                &public,
                "--node-id",
                &id,
            ];
            args.extend(extra);
            let p = ServerProc::start(&format!("{name}-n{i}"), &args);
            assert_eq!(p.base, public, "listening where it said");
            p
        })
        .collect()
}

/// Redis and `count` nodes n1… (with `extra` arguments) that know each other, and a space titled
/// `title`, created through node `via` (0-based) and run by node `owner` (its id and host token).
pub async fn cluster_with_space(
    name: &str,
    count: usize,
    extra: &[&str],
    (via, owner): (usize, &str),
    title: &str,
) -> (Redis, Vec<ServerProc>, String, String) {
    let redis = Redis::start(&temp_dir(&format!("{name}-redis"))).expect("redis-server");
    let nodes = nodes(&redis.url(), name, count, extra);
    let base = nodes[via].base.clone();
    let known = eventually(Duration::from_secs(30), async || {
        let r = reqwest::Client::new()
            .get(format!("{base}/api/cluster"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await;
        match r {
            Ok(r) => r
                .json::<Value>()
                .await
                .is_ok_and(|v| v["nodes"].as_array().is_some_and(|n| n.len() == count)),
            Err(_) => false,
        }
    })
    .await;
    assert!(known, "the {count} nodes know each other");
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces"),
        Some(ADMIN_KEY),
        Some(json!({"title": title, "node": owner})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let host = v["host_token"].as_str().expect("host token").to_owned();
    (redis, nodes, id, host)
}

/// Redis and two nodes that know each other, with a space created through n2 and run by n1.
pub async fn two_nodes_one_space(
    name: &str,
    extra: &[&str],
) -> (Redis, Vec<ServerProc>, String, String) {
    cluster_with_space(name, 2, extra, (1, "n1"), name).await
}
