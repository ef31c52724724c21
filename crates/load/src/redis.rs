//! A Redis for the tests and the benchmarks: Debian's `redis-server` on an ephemeral loopback
//! port, no persistence, its files in a directory of its own; killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::harness::Guard;
use crate::varnish::free_port;

/// Where Debian's `redis-server` puts the daemon.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Longest `redis-server` may take to open its port.
const START_WITHIN: Duration = Duration::from_secs(20);

/// A running Redis.
pub struct Redis {
    daemon: Option<Guard>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts one with its files under `dir` (created).
    pub fn start(dir: &Path) -> Result<Redis> {
        ensure!(
            Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is not installed: Debian's redis-server (`scripts/packages.sh test`)"
        );
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let mut r = Redis {
            daemon: None,
            port,
            dir: dir.to_owned(),
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.daemon = Some(Guard::new(child));
        let deadline = Instant::now() + START_WITHIN;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not open port {} in time", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Its URL, database 0.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it (SIGKILL): what a crash looks like to its clients.
    pub fn kill(&mut self) {
        self.daemon = None;
    }

    /// Starts it again on the same port (after [`Redis::kill`]).
    pub fn restart(&mut self) -> Result<()> {
        self.daemon = None;
        self.spawn()
    }
}
