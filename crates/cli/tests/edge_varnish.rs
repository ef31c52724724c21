//! A real Varnish edge (`deploy/varnish/edge.vcl`, Debian's Varnish 7.1) in front of a `tribune
//! serve` origin: the same 500 simulated LL-HLS listeners for 30 s and the same checks as the
//! nginx edge (`edge.rs`): no gap, no invalid playlist, each part and segment fetched from the
//! origin at most three times. What reached the origin is Varnish's own backend log
//! (`varnishncsa -b`). The never-cached paths are checked too: the API, the Ogg stream and the
//! event stream reach the origin on every request.
//!
//! Needs `varnishd` and `varnishncsa` (`scripts/packages.sh test` installs Debian's `varnish`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::crowd::*;
use common::*;

const VARNISHD: &str = "/usr/sbin/varnishd";

/// varnishd in the foreground with the edge VCL, and varnishncsa logging its backend requests.
struct Varnish {
    daemon: Child,
    ncsa: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Varnish {
    fn start(origin_host: &str, origin_port: u16) -> Varnish {
        assert!(
            Path::new(VARNISHD).exists(),
            "{VARNISHD} missing: run scripts/packages.sh test (Debian's varnish)"
        );
        let dir = temp_dir("varnish");
        let vcl = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/varnish/edge.vcl"),
        )
        .expect("deploy/varnish/edge.vcl")
        .replace("@ORIGIN_HOST@", origin_host)
        .replace("@ORIGIN_PORT@", &origin_port.to_string());
        assert!(!vcl.contains("@ORIGIN"), "a token left unsubstituted");
        let vcl_path = dir.join("edge.vcl");
        std::fs::write(&vcl_path, vcl).expect("write edge.vcl");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let daemon = Command::new(VARNISHD)
            .args(["-F", "-a", &format!("127.0.0.1:{port}"), "-f"])
            .arg(&vcl_path)
            .arg("-n")
            .arg(dir.join("n"))
            .args(["-s", "malloc,128m"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("varnishd");
        Varnish {
            daemon,
            ncsa: None,
            dir,
            port,
        }
    }

    /// Starts logging backend requests (`URL?query` per line) once the shared log exists.
    async fn log_backend(&mut self) {
        let ok = eventually(Duration::from_secs(15), async || {
            reqwest::get(format!("http://127.0.0.1:{}/healthz", self.port))
                .await
                .is_ok()
        })
        .await;
        assert!(ok, "varnishd answers on port {}", self.port);
        let child = Command::new("varnishncsa")
            .args(["-b", "-F", "%U%q"])
            .arg("-n")
            .arg(self.dir.join("n"))
            .arg("-w")
            .arg(self.dir.join("backend.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("varnishncsa (Debian's varnish)");
        self.ncsa = Some(child);
        // Logging from now on: a marker request must show up in the backend log.
        let marker = format!("http://127.0.0.1:{}/healthz?marker", self.port);
        let logged = eventually(Duration::from_secs(15), async || {
            let _ = reqwest::get(&marker).await;
            self.backend_log().contains("/healthz?marker")
        })
        .await;
        assert!(logged, "varnishncsa logs backend requests");
    }

    fn backend_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("backend.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut n) = self.ncsa.take() {
            // SAFETY: signalling our own child by pid; varnishncsa flushes its file on SIGINT.
            unsafe { libc::kill(n.id() as i32, libc::SIGINT) };
            let _ = n.wait();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Backend requests per request URI.
fn origin_fetches(log: &str) -> BTreeMap<String, u64> {
    let mut per_uri = BTreeMap::new();
    for uri in log.lines().map(str::trim).filter(|l| !l.is_empty()) {
        *per_uri.entry(uri.to_owned()).or_default() += 1;
    }
    per_uri
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_listeners_behind_varnish() {
    let (server, id, mut speaker) = origin_with_speaker("varnish-origin").await;
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("origin port");
    let mut varnish = Varnish::start("127.0.0.1", port);
    varnish.log_backend().await;
    let edge = format!("http://127.0.0.1:{}", varnish.port);
    let live = format!("{edge}/spaces/{id}/hls/live.m3u8");
    wait_edge(&live).await;

    // Never cached: the API, the Ogg stream and the event stream reach the origin each time.
    let c = reqwest::Client::new();
    for _ in 0..3 {
        let r = c
            .get(format!("{edge}/api/spaces/{id}"))
            .send()
            .await
            .expect("GET space");
        assert_eq!(r.status(), 200);
        let mut ogg = c
            .get(format!("{edge}/spaces/{id}/live.opus"))
            .send()
            .await
            .expect("live.opus");
        assert_eq!(ogg.status(), 200);
        let first = tokio::time::timeout(Duration::from_secs(5), ogg.chunk())
            .await
            .expect("live.opus bytes in time")
            .expect("live.opus body");
        assert!(first.is_some_and(|b| b.starts_with(b"OggS")));
    }

    let reports = run_crowd(&live).await;
    // Let varnishncsa catch up with the log, then stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    varnish.stop();
    let _ = speaker.kill();
    let _ = speaker.wait();
    let log = varnish.backend_log();
    let fetches = origin_fetches(&log);
    let api = fetches
        .get(&format!("/api/spaces/{id}"))
        .copied()
        .unwrap_or(0);
    assert!(api >= 3, "each API request reached the origin ({api} of 3)");
    assert_crowd("varnish", &reports, &fetches);
    let _ = std::fs::remove_dir_all(&varnish.dir);
}
