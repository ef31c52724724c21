//! Real `tribune` processes on loopback: a server on ephemeral ports with a temporary data dir,
//! speakers as `tribune speak` processes, and the API calls that set a space up. Used by
//! `tribune-bench` and by `tribune loadtest --spawn`.
//!
//! Every process is killed when its handle drops, and the data dir is removed, so a run that fails
//! half-way leaves nothing running.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Operator key given to a server started with [`Server::start`].
pub const OPERATOR_KEY: &str = "tribune-bench-operator-key";
/// Longest a setup step (a speaker connecting, a metric settling) may take before the run fails.
pub const SETUP_LIMIT: Duration = Duration::from_secs(30);

/// A `tribune serve` process.
pub struct Server {
    child: Child,
    bin: PathBuf,
    data_dir: PathBuf,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The HTTP listening address.
    pub http_addr: SocketAddr,
    /// The media (UDP) address.
    pub udp_addr: SocketAddr,
    /// Its operator key.
    pub key: String,
    http: reqwest::Client,
}

/// A space created for a benchmark.
pub struct Space {
    /// The space id.
    pub id: String,
    /// A host token of it.
    pub host_token: String,
}

/// A child process killed on drop (a `tribune speak`, an edge server of a benchmark).
pub struct Guard(Child);

impl Guard {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> Guard {
        Guard(child)
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tribune serve` options that turn off what limits one client address (and the shield, whose
/// automatic switch a benchmark's join burst would trip).
pub const PER_ADDRESS_LIMITS_OFF: [&str; 8] = [
    "--ip-rate",
    "0",
    "--join-rate",
    "0",
    "--max-conns-per-ip",
    "0",
    "--shield",
    "off",
];

impl Server {
    /// Starts `bin serve` on ephemeral loopback ports with `extra` arguments, and waits for its
    /// "listening" line. Its logs (warnings and up) go to `server.log` in the data dir.
    ///
    /// For capacity benchmarks: the per-address limits and the shield are off
    /// ([`PER_ADDRESS_LIMITS_OFF`], before `extra`, which may turn them back on), since their
    /// load comes from a handful of loopback addresses standing for many clients.
    pub fn start(bin: &Path, extra: &[String]) -> Result<Server> {
        let mut args: Vec<String> = PER_ADDRESS_LIMITS_OFF
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend_from_slice(extra);
        Self::start_with_key(bin, OPERATOR_KEY, &args)
    }

    /// [`Server::start`] with the operator key `key`.
    pub fn start_with_key(bin: &Path, key: &str, extra: &[String]) -> Result<Server> {
        let data_dir = std::env::temp_dir().join(format!(
            "tribune-bench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&data_dir).context("creating the data dir")?;
        let log = std::fs::File::create(data_dir.join("server.log")).context("server log")?;
        // `extra` may name the HTTP address itself (a cluster node told its public URL first).
        let listen: &[&str] = if extra.iter().any(|a| a == "--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(bin)
            .arg("serve")
            .args(listen)
            .args(["--udp", "127.0.0.1:0"])
            .args(["--admin-key", key, "--log", "warn"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = match lines.next() {
            Some(line) => line.context("reading the server's stdout")?,
            None => {
                let _ = child.wait();
                bail!(
                    "the server exited at start; see {}",
                    data_dir.join("server.log").display()
                );
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        // "tribune listening on http://127.0.0.1:PORT (media on udp …)"
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("no address in {first:?}"))?
            .to_owned();
        let http_addr = base
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("bad address in {first:?}"))?;
        let udp_addr = first
            .split_whitespace()
            .find_map(|w| w.trim_end_matches(')').parse().ok())
            .with_context(|| format!("no udp address in {first:?}"))?;
        Ok(Server {
            child,
            bin: bin.to_owned(),
            data_dir,
            base,
            http_addr,
            udp_addr,
            key: key.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn post(&self, path: &str, auth: &str, body: Value) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(auth)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {url}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON: {text}"))
    }

    /// Creates a live space.
    pub async fn create_space(&self, title: &str) -> Result<Space> {
        let v = self
            .post("/api/spaces", &self.key, json!({ "title": title }))
            .await?;
        let field = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .with_context(|| format!("{k} in {v}"))
        };
        Ok(Space {
            id: field("id")?,
            host_token: field("host_token")?,
        })
    }

    /// Joins `space` as an anonymous listener named `name`; returns the listener token.
    pub async fn join(&self, space: &Space, name: &str) -> Result<String> {
        let url = format!("{}/api/spaces/{}/join", self.base, space.id);
        let resp = self
            .http
            .post(&url)
            .json(&json!({ "name": name }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {url}: {status}: {text}");
        }
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON: {text}"))?;
        v["token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("token in {v}"))
    }

    /// A speaker token for `name` in `space`, minted with its host's token.
    async fn speaker_token(&self, space: &Space, name: &str) -> Result<String> {
        let path = format!("/api/spaces/{}/tokens", space.id);
        let v = self
            .post(
                &path,
                &space.host_token,
                json!({ "role": "speaker", "name": name }),
            )
            .await?;
        v["token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("token in {v}"))
    }

    /// Starts a `tribune speak` process sending a sine of `hz` to `space` for at most `seconds`.
    pub async fn speak(&self, space: &Space, name: &str, hz: u32, seconds: u64) -> Result<Guard> {
        let token = self.speaker_token(space, name).await?;
        let token = token.as_str();
        let log = std::fs::File::create(self.data_dir.join(format!("speak-{name}.log")))?;
        let child = Command::new(&self.bin)
            .args([
                "speak",
                "--whip",
                &format!("{}/api/spaces/{}/whip", self.base, space.id),
            ])
            .args(["--token", token, "--tone", &hz.to_string()])
            .args(["--seconds", &seconds.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting tribune speak")?;
        Ok(Guard(child))
    }

    /// Starts `tribune speak` for `space` with `extra` arguments (the source and duration), its
    /// stderr (the logs) piped to the caller.
    pub async fn speak_with(
        &self,
        space: &Space,
        name: &str,
        extra: &[String],
    ) -> Result<(Guard, std::process::ChildStderr)> {
        let token = self.speaker_token(space, name).await?;
        let token = token.as_str();
        let mut child = Command::new(&self.bin)
            .args([
                "speak",
                "--whip",
                &format!("{}/api/spaces/{}/whip", self.base, space.id),
            ])
            .args(["--token", token])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tribune speak")?;
        let stderr = child.stderr.take().context("speak stderr")?;
        Ok((Guard(child), stderr))
    }

    /// All metrics from `/metrics` (with the operator key, which the audience listener asks
    /// for), by name (samples without labels only).
    pub async fn metrics(&self) -> Result<Metrics> {
        let url = format!("{}/metrics", self.base);
        let text = self
            .http
            .get(&url)
            .bearer_auth(&self.key)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Metrics(text))
    }

    /// Waits until the metric `name` equals `value`, for at most [`SETUP_LIMIT`].
    pub async fn wait_metric(&self, name: &str, value: f64) -> Result<()> {
        let end = Instant::now() + SETUP_LIMIT;
        loop {
            if self.metrics().await?.get(name)? == value {
                return Ok(());
            }
            if Instant::now() > end {
                bail!("{name} did not reach {value} in {SETUP_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// One scrape of `/metrics` in the Prometheus text format.
pub struct Metrics(String);

impl Metrics {
    /// The value of the unlabelled sample `name`.
    pub fn get(&self, name: &str) -> Result<f64> {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .with_context(|| format!("metric {name} missing"))?
            .trim()
            .parse()
            .with_context(|| format!("metric {name} is not a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_match_exactly() {
        let m = Metrics("# HELP x\ntribune_ticks_total 5\ntribune_ticks 3\n".into());
        assert_eq!(m.get("tribune_ticks").unwrap(), 3.0);
        assert_eq!(m.get("tribune_ticks_total").unwrap(), 5.0);
        assert!(m.get("tribune_tick").is_err());
    }
}
