//! Splitting a run over processes, when one process's open-file limit is not enough (or when
//! asked): the parent re-executes itself P times as workers, each with a spec file naming its
//! slice of the listeners and the common start instant (wall clock, so every process ramps on
//! the same schedule). A worker prints its counters as one JSON line a second on stdout (the
//! parent's progress display) and writes its [`Totals`] as JSON at the end; the parent merges.
//!
//! Children are killed if the parent gives up on them (dropped handles), and the spec and
//! result files live in a temporary directory removed at the end.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::plan::{Plan, Slice};
use crate::tally::{Live, Snapshot, Totals};
use crate::worker::{self, GRACE};

/// How to start this program again as a worker: the executable and the arguments before
/// `--worker SPEC` (the subcommand, for the `tribune` binary `["loadtest"]`).
#[derive(Debug, Clone)]
pub struct Exec {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before `--worker`.
    pub args: Vec<OsString>,
}

impl Exec {
    /// This executable with `args`.
    pub fn current(args: &[&str]) -> Result<Exec> {
        Ok(Exec {
            program: std::env::current_exe().context("finding this executable")?,
            args: args.iter().map(OsString::from).collect(),
        })
    }
}

/// What a worker process is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// The run.
    pub plan: Plan,
    /// Its share.
    pub slice: Slice,
    /// The run's start, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// Where to write its totals.
    pub out: PathBuf,
}

/// Now, in ms since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The monotonic instant of the wall-clock time `unix_ms`.
pub fn instant_of(unix_ms: u64) -> Instant {
    let now_ms = self::unix_ms();
    let now = Instant::now();
    if unix_ms >= now_ms {
        now + Duration::from_millis(unix_ms - now_ms)
    } else {
        now.checked_sub(Duration::from_millis(now_ms - unix_ms))
            .unwrap_or(now)
    }
}

/// A worker process's main: runs its slice, printing progress lines, and writes its totals.
pub async fn worker_main(spec_path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(spec_path)
        .with_context(|| format!("reading {}", spec_path.display()))?;
    let spec: Spec = serde_json::from_str(&text).context("parsing the worker spec")?;
    let start = instant_of(spec.start_unix_ms);
    let live = Arc::new(Live::default());
    let totals = worker::run(spec.plan, spec.slice, start, live, |snap| {
        let mut out = std::io::stdout().lock();
        if let Ok(line) = serde_json::to_string(&snap) {
            // A parent that stopped reading is not a reason to stop the run.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    })
    .await?;
    let json = serde_json::to_vec(&totals)?;
    std::fs::write(&spec.out, json).with_context(|| format!("writing {}", spec.out.display()))
}

/// Worker processes of one run.
pub struct Workers {
    children: Vec<Child>,
    outs: Vec<PathBuf>,
    dir: PathBuf,
    /// The latest counters of each worker.
    latest: Arc<Mutex<Vec<Snapshot>>>,
}

impl Workers {
    /// Starts `procs` workers of `plan` starting at `start_unix_ms`.
    pub fn start(exec: &Exec, plan: &Plan, procs: usize, start_unix_ms: u64) -> Result<Workers> {
        let dir = std::env::temp_dir().join(format!(
            "tribune-loadtest-{}-{}",
            std::process::id(),
            unix_ms()
        ));
        std::fs::create_dir_all(&dir).context("creating the workers' directory")?;
        let latest = Arc::new(Mutex::new(vec![Snapshot::default(); procs]));
        let mut workers = Workers {
            children: Vec::new(),
            outs: Vec::new(),
            dir,
            latest,
        };
        for index in 0..procs {
            let out = workers.dir.join(format!("totals-{index}.json"));
            let spec = Spec {
                plan: plan.clone(),
                slice: Slice { index, of: procs },
                start_unix_ms,
                out: out.clone(),
            };
            let spec_path = workers.dir.join(format!("spec-{index}.json"));
            std::fs::write(&spec_path, serde_json::to_vec(&spec)?)
                .context("writing a worker spec")?;
            let mut child = Command::new(&exec.program)
                .args(&exec.args)
                .arg("--worker")
                .arg(&spec_path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting worker {}", exec.program.display()))?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let latest = workers.latest.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(snap) = serde_json::from_str::<Snapshot>(&line)
                        && let Ok(mut l) = latest.lock()
                    {
                        l[index] = snap;
                    }
                }
            });
            workers.children.push(child);
            workers.outs.push(out);
        }
        Ok(workers)
    }

    /// The workers' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// The workers' counters summed.
    pub fn snapshot(&self, t: u64) -> Snapshot {
        let mut sum = Snapshot {
            t,
            ..Snapshot::default()
        };
        if let Ok(l) = self.latest.lock() {
            for s in l.iter() {
                sum.add(s);
            }
        }
        sum
    }

    /// Waits for every worker (at most until [`GRACE`] and a margin after `end`) and merges
    /// their totals.
    pub async fn finish(mut self, end: Instant) -> Result<Totals> {
        let deadline = end + GRACE + Duration::from_secs(10);
        for (i, child) in self.children.iter_mut().enumerate() {
            loop {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        bail!("worker {i} failed: {status}");
                    }
                    break;
                }
                if Instant::now() > deadline {
                    bail!("worker {i} did not finish in time");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut totals = Totals::default();
        for out in &self.outs {
            let text = std::fs::read(out).with_context(|| format!("reading {}", out.display()))?;
            totals.merge(serde_json::from_slice(&text).context("parsing a worker's totals")?);
        }
        Ok(totals)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_instants_convert() {
        let in_a_second = instant_of(unix_ms() + 1000);
        let d = in_a_second.saturating_duration_since(Instant::now());
        assert!(d > Duration::from_millis(500) && d <= Duration::from_millis(1000));
        assert!(instant_of(0) <= Instant::now());
    }
}
