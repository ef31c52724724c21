//! The Varnish edge of the tests: [`tribune_load::varnish::Varnish`] (shared with the benchmarks)
//! started in a fresh temp dir, with the checks a test wants: the daemon is there, it answers,
//! and `varnishncsa` is logging before the test goes on. Needs Debian's `varnish`
//! (`scripts/packages.sh test`).

use std::path::Path;
use std::time::Duration;

pub use tribune_load::varnish::{VARNISHD, Varnish};

use super::{eventually, temp_dir};

/// An edge in front of 127.0.0.1:`origin_port` with `deploy/varnish/edge.vcl` and `extra`
/// `varnishd` arguments, answering and logging its backend requests.
pub async fn start(origin_port: u16, extra: &[&str]) -> Varnish {
    super::require_file(VARNISHD, "varnish");
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut v = Varnish::start(
        Path::new(VARNISHD),
        &deploy,
        origin_port,
        &temp_dir("varnish"),
        extra,
    )
    .expect("varnishd");
    let ok = eventually(Duration::from_secs(15), async || {
        reqwest::get(format!("http://127.0.0.1:{}/healthz", v.port))
            .await
            .is_ok()
    })
    .await;
    assert!(ok, "varnishd answers on port {}", v.port);
    v.log_backend().expect("varnishncsa (Debian's varnish)");
    // Logging from now on: a marker request must show up in the backend log.
    let marker = format!("http://127.0.0.1:{}/healthz?marker", v.port);
    let logged = eventually(Duration::from_secs(15), async || {
        let _ = reqwest::get(&marker).await;
        v.backend_requests()
            .iter()
            .any(|(_, u)| u == "/healthz?marker")
    })
    .await;
    assert!(logged, "varnishncsa logs backend requests");
    v
}

/// A process's resident memory, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    tribune_load::procstat::sample(pid, tribune_load::procstat::clock_ticks_per_second())
        .expect("/proc of the process")
        .rss_kib
}
