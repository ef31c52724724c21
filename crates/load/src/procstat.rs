//! What a process costs, read from `/proc`: CPU time (utime + stime), resident memory (VmRSS),
//! and the kernel's TCP buffer memory (system-wide, from `/proc/net/sockstat`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was read.
    pub at: Instant,
    /// User plus system CPU time of all its threads.
    pub cpu: Duration,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
pub fn sample(pid: u32, ticks_per_second: u64) -> Result<Sample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (did the process exit?)"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let ticks = cpu_ticks(&stat)?;
    Ok(Sample {
        at,
        cpu: Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64),
        rss_kib: status_kib(&status, "VmRSS")?,
    })
}

/// utime + stime in clock ticks, from the text of `/proc/PID/stat`.
fn cpu_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may contain spaces: count after its end.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .context("short stat")?
            .parse()
            .context("stat field is not a number")
    };
    Ok(field(14)? + field(15)?)
}

/// A "Name:   123 kB" line of `/proc/PID/status`, in KiB.
fn status_kib(status: &str, name: &str) -> Result<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .with_context(|| format!("{name} missing"))?;
    line.trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{name} is not a number"))
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`; 100 on every Linux we know).
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// Memory held by all TCP sockets of the machine (both ends of loopback connections), KiB.
pub fn tcp_mem_kib() -> Result<u64> {
    let text =
        std::fs::read_to_string("/proc/net/sockstat").context("reading /proc/net/sockstat")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .context("no TCP line in sockstat")?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mem" {
            let pages: u64 = words.next().context("sockstat mem")?.parse()?;
            // sockstat counts pages of 4 KiB.
            return Ok(pages * 4);
        }
    }
    bail!("no mem in {line:?}")
}

/// CPU time of the calling thread, nanosecond resolution (`/proc/thread-self/schedstat`).
pub fn thread_cpu() -> Result<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").context("schedstat")?;
    let ns: u64 = text
        .split_whitespace()
        .next()
        .context("empty schedstat")?
        .parse()
        .context("schedstat is not a number")?;
    Ok(Duration::from_nanos(ns))
}

/// A process watched over a window of time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Window {
    /// Length of the window.
    pub wall_seconds: f64,
    /// CPU time used in it.
    pub cpu_seconds: f64,
    /// CPU seconds per wall second.
    pub cores: f64,
    /// Mean of the RSS readings taken during the window, KiB.
    pub rss_kib_mean: f64,
    /// Largest RSS reading, KiB.
    pub rss_kib_max: u64,
}

/// Watches `pid` for `length`, reading its RSS every second; `during` runs once per reading (the
/// caller's own bookkeeping) so it shares the timeline.
pub async fn watch(pid: u32, length: Duration, mut during: impl FnMut()) -> Result<Window> {
    let tps = clock_ticks_per_second();
    let first = sample(pid, tps)?;
    let end = first.at + length;
    let mut rss = Vec::new();
    let last = loop {
        let next = (Instant::now() + Duration::from_secs(1)).min(end);
        tokio::time::sleep_until(next.into()).await;
        let s = sample(pid, tps)?;
        rss.push(s.rss_kib);
        during();
        if s.at >= end {
            break s;
        }
    };
    let wall = (last.at - first.at).as_secs_f64();
    let cpu = (last.cpu.saturating_sub(first.cpu)).as_secs_f64();
    Ok(Window {
        wall_seconds: wall,
        cpu_seconds: cpu,
        cores: cpu / wall,
        rss_kib_mean: rss.iter().sum::<u64>() as f64 / rss.len() as f64,
        rss_kib_max: rss.iter().copied().max().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
        // utime is "11", stime "12" (fields 14 and 15).
        assert_eq!(cpu_ticks(stat).unwrap(), 23);
    }

    #[test]
    fn parses_status_kib() {
        let status = "Name:\tx\nVmRSS:\t   1234 kB\nVmSwap:\t0 kB\n";
        assert_eq!(status_kib(status, "VmRSS").unwrap(), 1234);
    }

    #[test]
    fn reads_our_own_process() {
        let s = sample(std::process::id(), clock_ticks_per_second()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(thread_cpu().unwrap() > Duration::ZERO);
    }
}
