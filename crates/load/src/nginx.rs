//! nginx as a child process for the benchmarks: a configuration written into a directory and
//! started there in the foreground (`daemon off`), its logs in that directory.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};

/// Writes `conf` (every `@TOKEN@` already substituted) to `dir/edge.conf` and starts `bin` on
/// it with `dir` as its prefix and error log.
pub fn spawn(bin: &Path, dir: &Path, conf: &str) -> Result<Child> {
    ensure!(
        !conf.contains('@'),
        "a token left unsubstituted in edge.conf"
    );
    let path = dir.join("edge.conf");
    std::fs::write(&path, conf)?;
    Command::new(bin)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// Stops nginx: `SIGTERM` (the master ends its workers: a `SIGKILL`ed master would leave them
/// serving), then `SIGKILL` after 5 s.
pub fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < end {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
