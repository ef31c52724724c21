//! Configurations are judged at start (issue 14): `serve` and `demo` refuse what would fail
//! later, naming the flags, and whatever is accepted really creates working spaces.

use std::process::{Command, Stdio};

use tribune_server::{Args, Server};

mod common;
use common::*;

/// Runs `tribune <argv>` on ephemeral ports to its end; returns its exit success and stderr.
fn run(name: &str, argv: &[&str]) -> (bool, String) {
    let dir = temp_dir(name);
    let out = Command::new(bin())
        .args(argv)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .expect("running tribune");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Before the fix these started: `serve` then panicked a worker on every space creation and
/// `demo` died of the panic. Now neither starts (so these runs end), and the message says why.
#[test]
fn hls_timings_that_cannot_work_stop_the_start() {
    for cmd in ["serve", "demo"] {
        let (ok, err) = run(
            "bad-hls",
            &[cmd, "--part-ms", "1000", "--segment-ms", "1000"],
        );
        assert!(!ok, "{cmd} refused to start");
        assert!(
            err.contains("--segment-ms 1000 must be at least 2000 with --part-ms 1000"),
            "{cmd}: {err}"
        );
        assert!(!err.contains("panicked"), "{cmd}: {err}");
    }
    let (ok, err) = run(
        "bad-hls-200",
        &["serve", "--part-ms", "200", "--segment-ms", "200"],
    );
    assert!(
        !ok && err.contains("--segment-ms 200 must be at least 400"),
        "{err}"
    );
}

#[test]
fn limits_and_short_keys_stop_the_start() {
    for (argv, says) in [
        (
            &["serve", "--token-ttl", "0"][..],
            "--token-ttl 0 is out of range",
        ),
        (
            &["serve", "--stage-limit", "0"],
            "--stage-limit 0 is out of range",
        ),
        (
            &["serve", "--max-listeners", "0"],
            "--max-listeners 0 is out of range",
        ),
        (
            &["serve", "--admin-key", "short"],
            "--admin-key is 5 bytes long",
        ),
        (
            &["demo", "--jwt-secret", "short"],
            "--jwt-secret is 5 bytes long",
        ),
    ] {
        let (ok, err) = run("bad-limit", argv);
        assert!(!ok && err.contains(says), "{argv:?}: {err}");
    }
}

/// The edges of every timing range the merge accepts, together, each make a server that
/// creates a live space with its HLS rendition, mixer, pager and room, which then ends cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_edge_timings_create_working_spaces() {
    let lows = [
        ("--page-ms", "20"),
        ("--burst-ms", "0"),
        ("--slow-listener-ms", "1000"),
        ("--token-ttl", "1"),
        ("--ice-timeout", "1"),
        ("--stage-limit", "1"),
        ("--max-listeners", "1"),
        ("--grace", "0"),
        ("--host-absence", "0"),
        ("--join-ttl", "10"),
        ("--presence-window", "1"),
        ("--part-ms", "200"),
        ("--segment-ms", "400"),
        ("--idle-timeout", "1"),
        ("--max-inflight", "8"),
        ("--max-body", "1024"),
        ("--max-header-bytes", "1024"),
    ];
    let highs = [
        ("--page-ms", "1000"),
        ("--burst-ms", "60000"),
        ("--slow-listener-ms", "600000"),
        ("--token-ttl", "31536000"),
        ("--ice-timeout", "3600"),
        ("--stage-limit", "100"),
        ("--max-listeners", "100000000"),
        ("--grace", "86400"),
        ("--host-absence", "86400"),
        ("--join-ttl", "86400"),
        ("--presence-window", "86400"),
        ("--part-ms", "1000"),
        ("--segment-ms", "10000"),
        ("--idle-timeout", "86400"),
        ("--max-inflight", "1000000"),
        ("--max-body", "67108864"),
        ("--max-header-bytes", "1048576"),
    ];
    let odd = [
        ("--part-ms", "1000"),
        ("--segment-ms", "2000"),
        ("--page-ms", "980"),
    ];
    for (i, set) in [&lows[..], &highs[..], &odd[..]].into_iter().enumerate() {
        let dir = temp_dir(&format!("edges-{i}"));
        let mut argv = vec!["serve", "--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0"];
        let data = dir.to_str().expect("utf-8 temp dir").to_owned();
        argv.extend(["--data-dir", data.as_str()]);
        for (flag, value) in set {
            argv.extend([*flag, *value]);
        }
        let args = <Args as clap::Parser>::try_parse_from(&argv).expect("flags parse");
        let cfg = args
            .resolve_with(&|_| None)
            .unwrap_or_else(|e| panic!("set {i} refused: {e}"));
        let server = Server::bind(cfg).await.expect("bind");
        let created = server
            .app
            .create_space(Some("edge"), "edge", "", "Host", None)
            .expect("space created");
        assert!(
            created.space.hls().is_some(),
            "set {i}: a live space has HLS"
        );
        created.space.end();
        let space = created.space.clone();
        tokio::task::spawn_blocking(move || space.join())
            .await
            .expect("space threads end");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
