//! An Icecast 2.4 mount to measure next to tribune: `icecast2` on a loopback port, fed by ffmpeg
//! with a 440 Hz tone as Ogg/Opus at 32 kb/s, one Ogg page per `page_ms` (`-page_duration`), so
//! Icecast hands its listeners a page as often as tribune does at the same `--page-ms`.
//!
//! Icecast refuses to run as root: when started as root it is told to change to the `icecast2`
//! user of the Debian package (`changeowner`). Both processes are killed when the handle drops.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::harness::SETUP_LIMIT;

/// The mount listeners request.
pub const MOUNT: &str = "/stream.opus";
const SOURCE_PASSWORD: &str = "bench-source";

/// A running Icecast with its ffmpeg source.
pub struct Icecast {
    icecast: Child,
    ffmpeg: Option<Child>,
    dir: PathBuf,
    /// Its listening address.
    pub addr: SocketAddr,
}

impl Icecast {
    /// Starts `bin` (icecast2) and an ffmpeg source with `page_ms` pages, and waits until the
    /// mount is on air.
    pub async fn start(bin: &str, ffmpeg: &str, page_ms: u64) -> Result<Icecast> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("tribune-bench-icecast-{port}"));
        std::fs::create_dir_all(&dir).context("icecast dir")?;
        let owner = root_owner();
        if let Some(user) = &owner {
            let ok = Command::new("chown")
                .arg(user)
                .arg(&dir)
                .status()?
                .success();
            ensure_ok(ok, "chown of the icecast dir")?;
        }
        let conf = dir.join("icecast.xml");
        std::fs::write(&conf, config(port, &dir, owner.as_deref())).context("icecast.xml")?;
        let icecast = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut started = Icecast {
            icecast,
            ffmpeg: None,
            dir,
            addr,
        };
        started.wait_for(|status| status != 0).await?;
        let source = Command::new(ffmpeg)
            .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
            .arg("sine=frequency=440:sample_rate=48000")
            .args(["-ac", "1", "-c:a", "libopus", "-b:a", "32k", "-f", "ogg"])
            .args(["-page_duration", &(page_ms * 1000).to_string()])
            .args(["-flush_packets", "1", "-content_type", "application/ogg"])
            .arg(format!("icecast://source:{SOURCE_PASSWORD}@{addr}{MOUNT}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {ffmpeg}"))?;
        started.ffmpeg = Some(source);
        started.wait_for(|status| status == 200).await?;
        Ok(started)
    }

    /// The icecast2 process (what is measured).
    pub fn pid(&self) -> u32 {
        self.icecast.id()
    }

    /// Polls the mount until its status passes `done` (0: no answer).
    async fn wait_for(&self, done: impl Fn(u16) -> bool) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("http://{}{MOUNT}", self.addr);
        let end = Instant::now() + SETUP_LIMIT;
        while Instant::now() < end {
            let status = match client.get(&url).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            if done(status) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "Icecast at {url} did not come up; see {}",
            self.dir.display()
        )
    }
}

impl Drop for Icecast {
    fn drop(&mut self) {
        for child in self.ffmpeg.iter_mut().chain([&mut self.icecast]) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ensure_ok(ok: bool, what: &str) -> Result<()> {
    if !ok {
        bail!("{what} failed");
    }
    Ok(())
}

/// `user:group` for Icecast to change to when this runs as root: the package's `icecast2` user
/// and its group.
fn root_owner() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    if uid != "0" {
        return None;
    }
    let out = Command::new("id").args(["-gn", "icecast2"]).output().ok()?;
    let group = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !group.is_empty()).then(|| format!("icecast2:{group}"))
}

/// Icecast's defaults except what a benchmark needs: limits raised so that the listener count is
/// what is measured, logs in `dir`, loopback only. Burst-on-connect stays on (64 KiB).
fn config(port: u16, dir: &std::path::Path, owner: Option<&str>) -> String {
    let dir = dir.display();
    let security = match owner.and_then(|o| o.split_once(':')) {
        Some((user, group)) => format!(
            "<security><chroot>0</chroot><changeowner><user>{user}</user>\
             <group>{group}</group></changeowner></security>"
        ),
        None => "<security><chroot>0</chroot></security>".to_owned(),
    };
    format!(
        r#"<icecast>
  <location>loopback</location><admin>bench@localhost</admin>
  <limits>
    <clients>30000</clients><sources>2</sources><queue-size>524288</queue-size>
    <client-timeout>30</client-timeout><header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout><burst-on-connect>1</burst-on-connect>
    <burst-size>65535</burst-size>
  </limits>
  <authentication>
    <source-password>{SOURCE_PASSWORD}</source-password><relay-password>bench-relay</relay-password>
    <admin-user>admin</admin-user><admin-password>bench-admin</admin-password>
  </authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <fileserve>0</fileserve>
  <paths>
    <basedir>/usr/share/icecast2</basedir><logdir>{dir}</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>
    <pidfile>{dir}/icecast.pid</pidfile>
  </paths>
  <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog><loglevel>2</loglevel></logging>
  {security}
</icecast>
"#
    )
}
