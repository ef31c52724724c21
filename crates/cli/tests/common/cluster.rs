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

/// Redis and two nodes that know each other; returns them with a space created through n2 and
/// run by n1 (its id and host token).
pub async fn two_nodes_one_space(
    name: &str,
    extra: &[&str],
) -> (Redis, Vec<ServerProc>, String, String) {
    let redis = Redis::start(&temp_dir(&format!("{name}-redis"))).expect("redis-server");
    let nodes = nodes(&redis.url(), name, 2, extra);
    let known = eventually(Duration::from_secs(30), async || {
        let r = reqwest::Client::new()
            .get(format!("{}/api/cluster", nodes[1].base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await;
        match r {
            Ok(r) => r
                .json::<Value>()
                .await
                .is_ok_and(|v| v["nodes"].as_array().is_some_and(|n| n.len() == 2)),
            Err(_) => false,
        }
    })
    .await;
    assert!(known, "the two nodes know each other");
    let (s, v) = api(
        "POST",
        &format!("{}/api/spaces", nodes[1].base),
        Some(ADMIN_KEY),
        Some(json!({"title": name, "node": "n1"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let host = v["host_token"].as_str().expect("host token").to_owned();
    (redis, nodes, id, host)
}
