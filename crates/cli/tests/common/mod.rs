//! Shared harness for the end-to-end tests: real `tribune` processes on loopback.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod cluster;
pub mod crowd;
pub mod netns;
pub mod playlists;
pub mod varnish;

pub const ADMIN_KEY: &str = "test-operator-key";

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tribune")
}

/// A fresh temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tribune-e2e-{}-{}-{}",
        name,
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A `tribune serve` process on ephemeral loopback ports.
pub struct ServerProc {
    pub child: Child,
    pub base: String,
    /// `https://ADDR`, when started with `--tls-listen`.
    pub https: Option<String>,
    pub udp: std::net::SocketAddr,
    pub data_dir: PathBuf,
}

impl ServerProc {
    pub fn start(name: &str, extra: &[&str]) -> ServerProc {
        let data_dir = temp_dir(name);
        Self::start_in(data_dir, extra)
    }

    pub fn start_in(data_dir: PathBuf, extra: &[&str]) -> ServerProc {
        let udp = if extra.contains(&"--udp") {
            &[][..]
        } else {
            &["--udp", "127.0.0.1:0"][..]
        };
        let listen = if extra.contains(&"--listen") {
            &[][..]
        } else {
            &["--listen", "127.0.0.1:0"][..]
        };
        let mut child = Command::new(bin())
            .arg("serve")
            .args(listen)
            .args(udp)
            .args(["--admin-key", ADMIN_KEY, "--log", "info,str0m=warn"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tribune serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("server printed nothing")
            .expect("read stdout");
        // "tribune listening on http://127.0.0.1:PORT (media on udp …)"
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("address line")
            .to_owned();
        let udp = first
            .split_whitespace()
            .find_map(|w| w.trim_end_matches(')').parse().ok())
            .expect("udp address in the first line");
        // With TLS, the second line is "tribune listening on https://127.0.0.1:PORT".
        let https = extra.contains(&"--tls-listen").then(|| {
            let line = lines
                .next()
                .expect("server printed no HTTPS line")
                .expect("read stdout");
            line.strip_prefix("tribune listening on ")
                .filter(|a| a.starts_with("https://"))
                .unwrap_or_else(|| panic!("not the HTTPS line: {line:?}"))
                .to_owned()
        });
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServerProc {
            child,
            base,
            https,
            udp,
            data_dir,
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// JSON API helper.
pub async fn api(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let c = reqwest::Client::new();
    let mut r = c.request(method.parse().expect("method"), url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Create a space; returns (id, host token).
pub async fn create_space(base: &str, title: &str) -> (String, String) {
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces"),
        Some(ADMIN_KEY),
        Some(json!({"title": title})),
    )
    .await;
    assert_eq!(s, 201, "create space: {v}");
    (
        v["id"].as_str().expect("id").to_owned(),
        v["host_token"].as_str().expect("host_token").to_owned(),
    )
}

/// Mint a token of `role` for a new participant.
pub async fn mint(base: &str, space: &str, auth: &str, role: &str, name: &str) -> String {
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{space}/tokens"),
        Some(auth),
        Some(json!({"role": role, "name": name})),
    )
    .await;
    assert_eq!(s, 201, "mint: {v}");
    v["token"].as_str().expect("token").to_owned()
}

/// `tribune speak` as a process.
pub fn speak(whip: &str, token: &str, hz: u32, seconds: u32, record: &Path) -> Child {
    speak_from("127.0.0.1", whip, token, hz, seconds, record)
}

/// `tribune speak` as a process, its UDP socket (ICE candidate) bound to `bind`.
pub fn speak_from(
    bind: &str,
    whip: &str,
    token: &str,
    hz: u32,
    seconds: u32,
    record: &Path,
) -> Child {
    Command::new(bin())
        .args(["speak", "--bind", bind, "--whip", whip, "--token", token])
        .args(["--tone", &hz.to_string(), "--seconds", &seconds.to_string()])
        .arg("--record")
        .arg(record)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tribune speak")
}

/// `tribune listen` as a process; returns the child (its stdout is the JSON report).
pub fn listen(url: &str, seconds: u32, out: &Path) -> Child {
    Command::new(bin())
        .args(["listen", "--url", url, "--seconds", &seconds.to_string()])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tribune listen")
}

/// Wait for a child and parse its stdout as a JSON report.
pub fn report(child: Child) -> Value {
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON report: {text:?}"))
}

/// Wait for a child to exit successfully.
pub fn wait_ok(child: Child, what: &str) {
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Poll `f` every 100 ms until it is true or `limit` passes (a bound on a hang, not a timing
/// assertion). Returns whether it became true.
pub async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `/metrics` at `base` (an audience listener: with the operator key).
pub async fn scrape(base: &str) -> String {
    reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("metrics")
        .error_for_status()
        .expect("metrics status")
        .text()
        .await
        .expect("metrics body")
}

/// A metric's value from `/metrics`.
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = scrape(base).await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// ffprobe's duration of a media file, and whether ffmpeg decodes it without errors.
pub fn ffmpeg_check(path: &Path) -> (f64, bool, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed (README test command installs it)");
    let errors = String::from_utf8_lossy(&out.stderr).to_string();
    let clean = out.status.success() && errors.trim().is_empty();
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let d = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap_or(-1.0);
    (d, clean, errors)
}

/// Decode a media file to 48 kHz mono f32 samples with ffmpeg.
pub fn ffmpeg_decode(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg");
    out.stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Wait until the server reports `n` connected speakers (bounded by 20 s).
pub async fn wait_speakers(base: &str, n: u32) {
    assert!(
        eventually(Duration::from_secs(20), async || {
            metric(base, "tribune_speakers").await == f64::from(n)
        })
        .await,
        "{n} speakers connected"
    );
}

/// A `tribune listen` report of a clean, continuous stream.
pub fn assert_continuous(report: &Value) {
    assert_eq!(report["status"], 200, "{report}");
    for k in ["seq_gaps", "granule_gaps", "crc_errors", "decode_errors"] {
        assert_eq!(report[k], 0, "{k} in {report}");
    }
}

/// A space with one connected `tribune speak` publisher (a 440 Hz tone for `seconds`).
pub async fn space_with_speaker(server: &ServerProc, title: &str, seconds: u32) -> (String, Child) {
    let base = &server.base;
    let (id, host) = create_space(base, title).await;
    let tok = mint(base, &id, &host, "speaker", "A").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let child = speak(&whip, &tok, 440, seconds, &server.data_dir.join("a.wav"));
    wait_speakers(base, 1).await;
    (id, child)
}

/// Debian's nginx (`scripts/packages.sh test` installs it).
pub const NGINX: &str = "/usr/sbin/nginx";

/// Fails the test unless the tool at `path` is installed, naming the Debian `package` that
/// provides it: a test never passes by skipping what it needs. (Tools found on `PATH`:
/// [`netns::require`].)
pub fn require_file(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is not installed: this test needs Debian's {package} \
         (`scripts/packages.sh test` installs it)"
    );
}

/// nginx as a child process (`daemon off`, master and workers) from one of the templates in
/// `deploy/nginx/`, on an ephemeral loopback port; stopped on drop.
pub struct Nginx {
    child: Child,
    /// pid file, logs, temp files (and whatever the caller put there).
    pub prefix: PathBuf,
    /// The loopback port substituted for `@PORT@`.
    pub port: u16,
}

impl Nginx {
    /// Start `deploy/nginx/{template}` with `@PORT@` (`127.0.0.1:` and a free port), `@PREFIX@`
    /// (`prefix`), `@USER@` (root: as root the workers may write `prefix`; as anyone else nginx
    /// ignores `user`) and then each `(from, to)` of `replace` substituted.
    pub fn start(template: &str, prefix: PathBuf, replace: &[(&str, &str)]) -> Nginx {
        require_file(NGINX, "nginx");
        // An ephemeral port: bind 0, read it, release it for nginx.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("local addr")
            .port();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/nginx")
            .join(template);
        let mut conf =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (from, to) in replace {
            conf = conf.replace(from, to);
        }
        let conf = conf
            .replace("@USER@", "root")
            .replace("@PORT@", &format!("127.0.0.1:{port}"))
            .replace("@PREFIX@", prefix.to_str().expect("UTF-8 temp dir"));
        assert!(
            !conf.contains('@'),
            "a token left unsubstituted in {template}"
        );
        let conf_path = prefix.join(template);
        std::fs::write(&conf_path, conf).expect("write nginx conf");
        let child = Command::new(NGINX)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx is installed (scripts/packages.sh test)");
        Nginx {
            child,
            prefix,
            port,
        }
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("access.log")).unwrap_or_default()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }

    /// Graceful stop (the master flushes the log buffers and ends its workers), then SIGKILL.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; SIGTERM makes the master end its workers before it exits.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        std::thread::sleep(Duration::from_secs(1));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
