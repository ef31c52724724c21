//! A Varnish edge for the benchmarks and the tests: `varnishd` in the foreground with
//! `deploy/varnish/edge.vcl` in front of an origin on loopback, optionally `varnishncsa` logging
//! each backend request as `UNIX-SECONDS URL?query`, and the cache process's pid (the one that
//! serves, to measure). Both are killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::harness::Guard;

/// Where Debian's `varnish` puts the daemon.
pub const VARNISHD: &str = "/usr/sbin/varnishd";

/// A running edge.
pub struct Varnish {
    /// The manager process (killing it stops the cache process too).
    pub daemon: Guard,
    ncsa: Option<Guard>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

/// A free port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Varnish {
    /// Starts `varnishd` with `deploy_dir/varnish/edge.vcl` towards 127.0.0.1:`origin_port`,
    /// working in `dir`, with `extra` arguments.
    pub fn start(
        varnishd: &Path,
        deploy_dir: &Path,
        origin_port: u16,
        dir: &Path,
        extra: &[&str],
    ) -> Result<Varnish> {
        let port = free_port()?;
        let vcl = std::fs::read_to_string(deploy_dir.join("varnish/edge.vcl"))
            .context("deploy/varnish/edge.vcl (run from the repository root, or --deploy-dir)")?
            .replace("@ORIGIN_HOST@", "127.0.0.1")
            .replace("@ORIGIN_PORT@", &origin_port.to_string());
        let path = dir.join("edge.vcl");
        std::fs::write(&path, vcl)?;
        let child = Command::new(varnishd)
            .args(["-F", "-a", &format!("127.0.0.1:{port}"), "-f"])
            .arg(&path)
            .arg("-n")
            .arg(dir.join("n"))
            .args(["-s", "malloc,256m"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", varnishd.display()))?;
        Ok(Varnish {
            daemon: Guard::new(child),
            ncsa: None,
            port,
            dir: dir.to_owned(),
        })
    }

    /// Starts logging backend requests to `backend.log` (call once varnishd answers).
    pub fn log_backend(&mut self) -> Result<()> {
        let child = Command::new("varnishncsa")
            .args(["-b", "-F", "%{%s}t %U%q"])
            .arg("-n")
            .arg(self.dir.join("n"))
            .arg("-w")
            .arg(self.dir.join("backend.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting varnishncsa (Debian's varnish)")?;
        self.ncsa = Some(Guard::new(child));
        Ok(())
    }

    /// The backend requests logged so far, as `(unix seconds, URL?query)`.
    pub fn backend_requests(&self) -> Vec<(u64, String)> {
        std::fs::read_to_string(self.dir.join("backend.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (t, uri) = l.trim().split_once(' ')?;
                Some((t.parse().ok()?, uri.to_owned()))
            })
            .collect()
    }

    /// Its working directory (the VCL, the shared log, `backend.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache process: the manager's child.
    pub fn worker_pid(&self) -> Option<u32> {
        let parent = self.daemon.id();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
    }
}
