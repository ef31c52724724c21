//! A private network namespace for tests whose peers ignore loopback (libnice, aioice): the
//! test re-runs itself inside `unshare -n` (as root; `unshare -rn` otherwise), where a veth
//! pair links [`SERVER_IP`] and [`CLIENT_IP`]. Nothing leaves that namespace, and it goes away
//! with the test process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set (to the test's name) in the re-run inside the namespace.
const INSIDE: &str = "TRIBUNE_TEST_NETNS";

/// tribune's UDP address and ICE candidate inside the namespace.
pub const SERVER_IP: &str = "10.77.0.1";
/// The publisher's end of the veth pair.
pub const CLIENT_IP: &str = "10.77.0.2";

/// The most a re-run may take (every step inside has its own, smaller bound).
const RERUN_LIMIT: Duration = Duration::from_secs(300);

/// The path of `tool` on `PATH`, or a failure naming the package that provides it.
pub fn require(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed: this test needs Debian's {package} (scripts/packages.sh)"
        )
    })
}

/// In the outer run: re-run the test `name` in a private network namespace, wait for it and
/// fail if it failed; returns `false` (the caller returns). In the re-run: bring up the
/// namespace's links and return `true` (the caller runs the scenario).
pub fn enter(name: &str) -> bool {
    if std::env::var(INSIDE).as_deref() == Ok(name) {
        setup_links();
        return true;
    }
    let unshare = require("unshare", "util-linux");
    require("ip", "iproute2");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let log = std::env::temp_dir().join(format!("tribune-netns-{name}-{}.log", std::process::id()));
    let out = std::fs::File::create(&log).expect("log file");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(unshare)
        .arg(if root { "-n" } else { "-rn" })
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, name)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("run unshare");
    let end = Instant::now() + RERUN_LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    match status {
        Some(s) if s.success() && text.contains("1 passed") => false,
        Some(s) => panic!("{name} in its network namespace: {s}\n{}", tail(&text)),
        None => panic!(
            "{name} in its network namespace ran over {RERUN_LIMIT:?}\n{}",
            tail(&text)
        ),
    }
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(12_000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}

fn ip(args: &str) {
    let ok = Command::new("ip")
        .args(args.split(' '))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args}");
}

fn setup_links() {
    ip("link set lo up");
    ip("link add tveth0 type veth peer name tveth1");
    ip(&format!("addr add {SERVER_IP}/24 dev tveth0"));
    ip(&format!("addr add {CLIENT_IP}/24 dev tveth1"));
    ip("link set tveth0 up");
    ip("link set tveth1 up");
}

/// The interop helpers' directory (`tests/interop/` at the workspace root).
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}
