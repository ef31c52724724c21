//! What a run does, resolved once by the parent and handed to every worker process as JSON:
//! the targets (addresses, paths, playlist URL), the schedule (listener `k` starts connecting at
//! `k / ramp` seconds), and which listeners are whose.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::config::Mix;

/// An HTTP/1.1 resource reached over raw TCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTarget {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Path and query.
    pub path: String,
}

impl HttpTarget {
    /// Resolves an `http://` URL to a loopback address.
    pub async fn resolve(url: &str) -> Result<HttpTarget> {
        let u = Url::parse(url).with_context(|| format!("bad URL {url:?}"))?;
        ensure!(u.scheme() == "http", "{url}: only http:// is supported");
        let host = u.host_str().with_context(|| format!("{url}: no host"))?;
        let port = u.port_or_known_default().unwrap_or(80);
        let addr = loopback(host, port).await?;
        let mut path = u.path().to_owned();
        if let Some(q) = u.query() {
            path = format!("{path}?{q}");
        }
        Ok(HttpTarget {
            addr,
            host: match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            },
            path,
        })
    }
}

/// The first address of `host`, which must be on loopback: connections leave from 127.0.0.0/8
/// addresses, and a load test never goes past this machine.
pub async fn loopback(host: &str, port: u16) -> Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback() && a.is_ipv4()) {
        Some(a) => Ok(*a),
        None => bail!(
            "{host} is not an IPv4 loopback address ({addrs:?}): loadtest stays on 127.0.0.0/8"
        ),
    }
}

/// A space's event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsTarget {
    /// `http://HOST:PORT` of the server (joins go there).
    pub base: String,
    /// The server's address.
    pub addr: SocketAddr,
    /// The space id.
    pub space: String,
}

/// Everything a worker needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The Ogg stream, if any listener uses it.
    pub ogg: Option<HttpTarget>,
    /// The HLS media playlist, if any listener uses it.
    pub hls: Option<String>,
    /// The event stream, if there are subscribers.
    pub events: Option<EventsTarget>,
    /// Listeners in all.
    pub listeners: usize,
    /// Who listens over what.
    pub mix: Mix,
    /// Joins per second.
    pub ramp: f64,
    /// Seconds from the first join to the end of the run.
    pub run_seconds: f64,
    /// Seconds a listener may take to get audio (and may then go without).
    pub join_timeout: f64,
    /// Retry after a 503.
    pub retry: bool,
    /// Event-stream subscribers in all.
    pub subscribers: usize,
    /// Source addresses to spread over.
    pub sources: usize,
    /// HLS listeners poll segments instead of LL-HLS.
    pub hls_poll: bool,
}

impl Plan {
    /// When listener (or subscriber) `k` starts, after the run's start.
    pub fn join_at(&self, k: usize) -> Duration {
        Duration::from_secs_f64(k as f64 / self.ramp)
    }

    /// The run's length.
    pub fn run_length(&self) -> Duration {
        Duration::from_secs_f64(self.run_seconds)
    }

    /// The join timeout.
    pub fn join_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.join_timeout)
    }
}

/// The length of a run: the ramp and the hold, at most `max_seconds`.
pub fn run_seconds(listeners: usize, ramp: f64, hold: f64, max_seconds: f64) -> f64 {
    (listeners as f64 / ramp + hold).min(max_seconds)
}

/// One worker's share: listeners and subscribers `k` with `k % of == index`, so every worker
/// ramps at `ramp / of` and together they pace at `ramp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    /// This worker, `0..of`.
    pub index: usize,
    /// Workers in all.
    pub of: usize,
}

impl Slice {
    /// The only worker.
    pub const ALL: Slice = Slice { index: 0, of: 1 };

    /// The indices below `n` that are this worker's.
    pub fn indices(self, n: usize) -> impl Iterator<Item = usize> {
        (self.index..n).step_by(self.of.max(1))
    }
}

/// File descriptors one process needs: a connection per Ogg listener and subscriber, about
/// three per LL-HLS listener (a part and a blocking reload in flight, one idle in the pool),
/// and a reserve for the rest.
pub fn fds_needed(ogg: usize, hls: usize, subscribers: usize) -> u64 {
    const RESERVE: u64 = 256;
    ogg as u64 + 3 * hls as u64 + subscribers as u64 + RESERVE
}

/// Processes needed so that each one's share fits `nofile` descriptors.
pub fn procs_needed(fds: u64, nofile: u64) -> usize {
    fds.div_ceil(nofile.max(1)).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_out_every_index_once() {
        let mut seen = vec![0; 103];
        for index in 0..4 {
            for k in (Slice { index, of: 4 }).indices(103) {
                seen[k] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        assert_eq!(Slice::ALL.indices(5).count(), 5);
    }

    #[test]
    fn run_length_and_process_count() {
        assert_eq!(run_seconds(5000, 1000.0, 30.0, 600.0), 35.0);
        assert_eq!(run_seconds(5000, 1000.0, 30.0, 20.0), 20.0);
        assert_eq!(procs_needed(fds_needed(18_000, 0, 0), 20_000), 1);
        assert_eq!(procs_needed(fds_needed(30_000, 0, 0), 20_000), 2);
        assert_eq!(procs_needed(fds_needed(0, 10_000, 0), 20_000), 2);
    }

    #[tokio::test]
    async fn targets_must_be_on_loopback() {
        let t = HttpTarget::resolve("http://127.0.0.1:8000/stream.opus?x=1")
            .await
            .unwrap();
        assert_eq!(t.addr, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:8000", "/stream.opus?x=1")
        );
        assert!(HttpTarget::resolve("http://192.0.2.1/x").await.is_err());
        assert!(HttpTarget::resolve("https://127.0.0.1/x").await.is_err());
    }
}
