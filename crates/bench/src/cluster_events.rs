//! `cluster-events`: how long an event takes from a space's owner to a subscriber on another
//! node of a cluster, against one on the owner itself.
//!
//! One `redis-server` and two nodes on loopback; a space runs on node 1. Two event streams are
//! held with the host's token: one on node 1 (served by the owner's hub) and one on node 2
//! (served by node 2's mirror of the owner's log in Redis). A listener then raises and lowers its
//! hand through node 1, `--events` times, one at a time; each change is an event (`hand_raised`,
//! `hand_lowered`) the owner publishes at once. For each, the time from sending the request to
//! its frame arriving on each stream is noted, on this process's one monotonic clock. The
//! difference between the two is what the cluster adds: the owner's write to Redis, node 2's
//! blocking read, and its fan-out.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::harness::Server;
use crate::report::{f, json};

/// Arguments of `cluster-events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// Hand changes to time.
    #[arg(long, default_value_t = 300)]
    events: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Delivery times of one stream, milliseconds.
#[derive(Debug, Serialize)]
pub struct Delivery {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub count: usize,
}

fn delivery(mut us: Vec<u64>) -> Delivery {
    us.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * us.len() as f64).ceil() as usize;
        us.get(rank.clamp(1, us.len().max(1)) - 1)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Delivery {
        p50_ms: at(50.0),
        p90_ms: at(90.0),
        p99_ms: at(99.0),
        max_ms: us.last().copied().unwrap_or(0) as f64 / 1000.0,
        count: us.len(),
    }
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Request sent → frame on the owner's own stream.
    pub on_owner: Delivery,
    /// Request sent → frame on another node's stream (through Redis).
    pub on_other_node: Delivery,
}

/// Frames of one event stream as `(arrival, event name)`, hand events only.
async fn watch(url: String, token: String, tx: mpsc::UnboundedSender<(Instant, String)>) {
    let Ok(resp) = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
    else {
        return;
    };
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(name) = block.lines().find_map(|l| l.strip_prefix("event: "))
                && name.starts_with("hand_")
                && tx.send((now, name.to_owned())).is_err()
            {
                return;
            }
        }
    }
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tribune-bench-redis-{}", std::process::id()));
    let redis = tribune_load::redis::Redis::start(&dir)?;
    let mut nodes = Vec::new();
    for i in 1..=2 {
        let port = crate::varnish::free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let extra: Vec<String> = [
            "--listen",
            &listen,
            "--redis",
            &redis.url(),
            "--node-id",
            &format!("n{i}"),
            "--public-url",
            &format!("http://{listen}"),
            "--jwt-secret",
            "bench-cluster-jwt-secret-0123456789",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        nodes.push(Server::start(&args.server_bin, &extra)?);
    }
    let http = reqwest::Client::new();
    // Both nodes in the directory before placing.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = http
            .get(format!("{}/api/cluster", nodes[0].base))
            .bearer_auth(&nodes[0].key)
            .send()
            .await?
            .json()
            .await
            .unwrap_or_default();
        if v["nodes"].as_array().is_some_and(|n| n.len() == 2) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the two nodes did not find each other: {v}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v: serde_json::Value = http
        .post(format!("{}/api/spaces", nodes[0].base))
        .bearer_auth(&nodes[0].key)
        .json(&json!({"title": "cluster events", "node": "n1"}))
        .send()
        .await?
        .json()
        .await?;
    let id = v["id"].as_str().context("space id")?.to_owned();
    let host = v["host_token"].as_str().context("host token")?.to_owned();
    let t: serde_json::Value = http
        .post(format!("{}/api/spaces/{id}/tokens", nodes[0].base))
        .bearer_auth(&host)
        .json(&json!({"role": "listener", "name": "Hand"}))
        .send()
        .await?
        .json()
        .await?;
    let hand = t["token"].as_str().context("listener token")?.to_owned();
    let (tx1, mut on_owner) = mpsc::unbounded_channel();
    let (tx2, mut on_other) = mpsc::unbounded_channel();
    let w1 = tokio::spawn(watch(
        format!("{}/api/spaces/{id}/events", nodes[0].base),
        host.clone(),
        tx1,
    ));
    let w2 = tokio::spawn(watch(
        format!("{}/api/spaces/{id}/events", nodes[1].base),
        host.clone(),
        tx2,
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut owner_us, mut other_us) = (Vec::new(), Vec::new());
    for i in 0..args.events {
        let action = if i % 2 == 0 {
            "raise-hand"
        } else {
            "lower-hand"
        };
        let t0 = Instant::now();
        let r = http
            .post(format!("{}/api/spaces/{id}/stage/{action}", nodes[0].base))
            .bearer_auth(&hand)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{action}: {}", r.status());
        }
        for (rx, out) in [
            (&mut on_owner, &mut owner_us),
            (&mut on_other, &mut other_us),
        ] {
            let (at, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .context("an event did not arrive within 10 s")?
                .context("an event stream ended")?;
            out.push(at.saturating_duration_since(t0).as_micros() as u64);
        }
    }
    w1.abort();
    w2.abort();
    let report = Report {
        on_owner: delivery(owner_us),
        on_other_node: delivery(other_us),
    };
    println!(
        "cluster-events: {} events; request → frame on the owner p50 {} ms, p99 {} ms; on another node p50 {} ms, p99 {} ms (max {} ms)",
        report.on_owner.count,
        f(report.on_owner.p50_ms, 2),
        f(report.on_owner.p99_ms, 2),
        f(report.on_other_node.p50_ms, 2),
        f(report.on_other_node.p99_ms, 2),
        f(report.on_other_node.max_ms, 2),
    );
    json(args.json.as_deref(), &report)?;
    drop(nodes);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
