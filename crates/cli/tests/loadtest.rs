//! `tribune loadtest` against a real `tribune serve` on loopback: 500 Ogg listeners, 10 LL-HLS
//! listeners and 5 event-stream subscribers at 1,000 joins/s held for 10 s all join without a
//! gap, and the JSON report and the PNG chart say so; a server at its listener cap is counted as
//! refusing (503).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ADMIN_KEY, ServerProc, bin, temp_dir};
use serde_json::Value;

/// Longest a loadtest process may take here before the test gives up on it.
const LIMIT: Duration = Duration::from_secs(90);

/// Runs `tribune loadtest ARGS` to its end; returns its JSON report.
fn loadtest(args: &[&str], json: &Path) -> Value {
    let mut child = Command::new(bin())
        .arg("loadtest")
        .args(args)
        .arg("--json")
        .arg(json)
        .spawn()
        .expect("start tribune loadtest");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("tribune loadtest ran past {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "tribune loadtest: {status}");
    let text = std::fs::read_to_string(json).expect("the JSON report");
    serde_json::from_str(&text).expect("the report is JSON")
}

/// Width and height of a PNG, from its IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn listeners_join_and_hold_without_gaps() {
    let server = ServerProc::start("loadtest", &[]);
    let dir = temp_dir("loadtest-out");
    let (json, png) = (dir.join("run.json"), dir.join("run.png"));
    let pid = server.child.id().to_string();
    let png_arg = png.to_str().expect("utf-8 path");
    let r = loadtest(
        &[
            "--url",
            &server.base,
            "--create",
            "--admin-key",
            ADMIN_KEY,
            "--listeners",
            "510",
            "--mix",
            "ogg=98,hls=2",
            "--events",
            "5",
            "--ramp",
            "1000",
            "--hold",
            "10",
            "--server-pid",
            &pid,
            "--png",
            png_arg,
            "--png-size",
            "800x600",
        ],
        &json,
    );

    let l = &r["listeners"];
    assert_eq!(n(&l["target"]), 510);
    assert_eq!(n(&l["ogg"]["target"]), 500);
    assert_eq!(n(&l["hls"]["target"]), 10);
    assert_eq!(n(&l["joined"]), 510, "{r}");
    assert_eq!(n(&l["held"]), 510, "{r}");
    assert_eq!(n(&l["never_joined"]), 0);
    assert_eq!(n(&l["gapped"]), 0, "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");

    let lat = &r["join_latency_ms"];
    assert_eq!(n(&lat["count"]), 510);
    assert!(f(&lat["p50"]) > 0.0 && f(&lat["p50"]) <= f(&lat["p99"]));
    assert!(f(&lat["p99"]) <= f(&lat["max"]));
    assert!(f(&lat["max"]) < 10_000.0, "within the join timeout");

    let t = &r["throughput"];
    assert!(f(&t["bytes_per_s"]) > 0.0 && f(&t["pages_per_s"]) > 0.0);

    let s = &r["server"];
    assert_eq!(n(&s["pid"]).to_string(), pid);
    assert!(f(&s["cpu_cores_avg"]) > 0.0);
    assert!(f(&s["cpu_cores_max"]) >= f(&s["cpu_cores_avg"]));
    assert!(
        f(&s["cpu_cores_hold_avg"]) > 0.0,
        "seconds after the ramp were sampled"
    );
    assert!(n(&s["rss_kib_start"]) > 0 && n(&s["rss_kib_end"]) > 0);
    assert!(s["rss_kib_per_listener"].is_number());

    let e = &r["events"];
    assert_eq!(
        (n(&e["target"]), n(&e["subscribed"]), n(&e["held"])),
        (5, 5, 5)
    );
    assert_eq!((n(&e["missing_ids"]), n(&e["gapped"])), (0, 0));
    assert!(n(&e["events"]) >= 5, "a snapshot each at least");
    assert_eq!(
        (n(&r["speakers"]["target"]), n(&r["speakers"]["ok"])),
        (1, 1),
        "{r}"
    );

    // 0.51 s of ramp and 10 s of hold: a tick a second before the end.
    let timeline = r["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.len(), 10);
    for (i, tick) in timeline.iter().enumerate() {
        assert_eq!(n(&tick["t"]), i as u64 + 1);
        for k in [
            "connected",
            "joins",
            "join_p99_ms",
            "server_cpu",
            "server_rss_kib",
        ] {
            assert!(tick.get(k).is_some(), "{k} missing in {tick}");
        }
    }
    let joins: u64 = timeline.iter().map(|t| n(&t["joins"])).sum();
    assert_eq!(joins, 510);
    assert_eq!(n(&timeline[9]["connected"]), 510);
    assert_eq!(r["config"]["listeners"], 510);
    assert!(
        r["config"].get("admin_key").is_none(),
        "no secrets in the report"
    );

    let bytes = std::fs::read(&png).expect("the PNG");
    assert_eq!(png_size(&bytes), Some((800, 600)));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_full_server_is_counted_as_refusing() {
    let server = ServerProc::start("loadtest-full", &["--max-listeners", "20"]);
    let dir = temp_dir("loadtest-full-out");
    let json = dir.join("run.json");
    let r = loadtest(
        &[
            "--url",
            &server.base,
            "--create",
            "--admin-key",
            ADMIN_KEY,
            "--speakers",
            "0",
            "--listeners",
            "30",
            "--ramp",
            "1000",
            "--hold",
            "5",
        ],
        &json,
    );
    assert_eq!(n(&r["listeners"]["joined"]), 20, "{r}");
    assert_eq!(n(&r["listeners"]["never_joined"]), 10);
    assert_eq!(r["errors"]["http_503"], 10, "{r}");
    std::fs::remove_dir_all(&dir).ok();
}
