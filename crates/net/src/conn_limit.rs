//! Connection caps on the audience listeners (`--listen`, `--tls-listen`), checked at the accept
//! step before anything else is allocated for the connection:
//! - per client address (`--max-conns-per-ip`): one address cannot hold more than its share of
//!   sockets; peers in `--trusted-proxy` are not capped (an edge carries many listeners);
//! - in total ([`audience_cap`]): the audience never takes the last file descriptors, so the
//!   control listener, WHIP sessions, recordings and the database always have some.
//!
//! A connection that is let in holds a [`ConnGuard`] for as long as it lives (in the hyper
//! connection task, or in the fan-out entry of a lean live.opus listener); dropping the guard gives
//! the slot back. The per-address counts sit in a few mutex-guarded maps, sharded by a keyed hash
//! of the address; an address whose count falls to zero is removed, so memory follows the
//! connections open now, never the addresses seen.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use tribune_admission::{Reason, Refusal};
use tribune_metrics::Metrics;

/// Shards of the per-address table: enough that accept loops and closing connections on
/// different threads rarely meet on one lock.
const SHARDS: usize = 32;

/// A shard whose table holds fewer than a quarter of its capacity (and more than this) is shrunk,
/// so a burst of distinct addresses does not keep its memory after it has gone.
const SHRINK_ABOVE: usize = 256;

/// Most connections the audience listeners may hold at once with an open-file limit of
/// File descriptors kept out of the listeners' reach: control requests, event streams, HLS,
/// recordings, the database and WHIP sessions.
pub const FD_RESERVE: u64 = 1024;

/// `nofile_soft`: all but half of [`FD_RESERVE`], and never more than half of a
/// small limit (a node started with 400 descriptors keeps 200 for itself).
pub fn audience_cap(nofile_soft: u64) -> usize {
    let reserve = (FD_RESERVE / 2).min(nofile_soft / 2);
    usize::try_from(nofile_soft.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// [`audience_cap`] of this process's current soft open-file limit.
pub fn default_audience_cap() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    audience_cap(soft)
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its address already holds `--max-conns-per-ip` connections.
    PerAddress,
    /// The audience listeners hold [`audience_cap`] connections.
    Full,
}

/// The caps and the counts of one server's audience listeners.
pub struct ConnLimits {
    per_ip: u32,
    max_total: usize,
    total: AtomicUsize,
    trusted: Vec<IpAddr>,
    hasher: std::hash::RandomState,
    metrics: Arc<Metrics>,
    shards: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
}

/// One admitted connection's slot; dropping it gives the slot back.
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    /// The address counted, or `None` for a peer that is not capped per address.
    ip: Option<IpAddr>,
}

impl ConnLimits {
    /// At most `per_ip` connections per address (0: no per-address cap) and `max_total` in all;
    /// peers in `trusted` only count in the total (`tribune_audience_connections` in `metrics`).
    pub fn new(
        per_ip: u32,
        max_total: usize,
        trusted: &[IpAddr],
        metrics: Arc<Metrics>,
    ) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            per_ip,
            max_total,
            total: AtomicUsize::new(0),
            trusted: trusted.iter().map(|ip| ip.to_canonical()).collect(),
            hasher: std::hash::RandomState::new(),
            metrics,
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        })
    }

    /// Take a slot for a connection from `peer`, or say why not.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnGuard, Refused> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        self.metrics
            .audience_connections
            .fetch_add(1, Ordering::Relaxed);
        let canonical = peer.to_canonical();
        if self.per_ip == 0 || self.trusted.contains(&canonical) {
            return Ok(ConnGuard {
                limits: self.clone(),
                ip: None,
            });
        }
        // IPv6 clients count by their /64 (see `admission::address_key`).
        let ip = tribune_admission::address_key(canonical);
        let mut shard = self.shard(ip).lock();
        let n = shard.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            drop(shard);
            self.metrics
                .audience_connections
                .fetch_sub(1, Ordering::Relaxed);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::PerAddress);
        }
        *n += 1;
        Ok(ConnGuard {
            limits: self.clone(),
            ip: Some(ip),
        })
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// The cap on all audience connections.
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Connections counted for `ip` now.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        let ip = tribune_admission::address_key(ip);
        self.shard(ip).lock().get(&ip).copied().unwrap_or(0)
    }

    /// Addresses in the per-address table (all with at least one connection).
    pub fn addresses(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        &self.shards[(self.hasher.hash_one(ip) % SHARDS as u64) as usize]
    }

    fn release(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            let mut shard = self.shard(ip).lock();
            if let Some(n) = shard.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    shard.remove(&ip);
                    if shard.capacity() > SHRINK_ABOVE && shard.len() < shard.capacity() / 4 {
                        let keep = shard.len() * 2;
                        shard.shrink_to(keep);
                    }
                }
            }
        }
        self.metrics
            .audience_connections
            .fetch_sub(1, Ordering::Relaxed);
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.limits.release(self.ip);
    }
}

impl std::fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnGuard").field("ip", &self.ip).finish()
    }
}

/// `Retry-After` of a canned answer ([`Canned`]), seconds.
pub const RETRY_AFTER_S: u64 = 5;

/// Longest a canned answer may take, written and closed.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// Refusals over an address's cap being written at once; past it, a connection gets what one
/// nonblocking write takes, then is closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 1024;

/// Refusals of a full audience port being written at once: each holds a descriptor for up to
/// [`REFUSAL_TIME`] while descriptors are what is short, so far fewer.
const MAX_FULL_REFUSALS_IN_FLIGHT: usize = 64;

/// A canned answer to a plain-HTTP connection refused before its request is read: made once,
/// written without reading the request, then the connection is closed. A client never gets a
/// bare close or reset it could take for a dead server: it learns when to come back.
#[derive(Clone)]
pub struct Canned {
    bytes: Bytes,
    permits: Arc<Semaphore>,
}

impl Canned {
    /// `429 too_many_connections` with `Retry-After`: the connection's address is over its cap.
    pub fn too_many() -> Canned {
        Canned::new(
            Reason::TooManyConnections,
            "too many connections from your address; retry later",
            MAX_REFUSALS_IN_FLIGHT,
        )
    }

    /// `503 overloaded` with `Retry-After`: the audience port holds all the connections it may
    /// (or the process is out of descriptors).
    pub fn full() -> Canned {
        Canned::new(
            Reason::Overloaded,
            "this server holds all the connections it can; retry later",
            MAX_FULL_REFUSALS_IN_FLIGHT,
        )
    }

    /// Renders the answer (the usual refusal body, see [`tribune_admission::refusal`]).
    fn new(reason: Reason, message: &str, in_flight: usize) -> Canned {
        let (status, fields, body) = Refusal::new(reason, message)
            .retry_after(RETRY_AFTER_S)
            .header(header::CONNECTION, "close")
            .into_parts();
        let mut headers = HeaderMap::new();
        for (k, v) in fields {
            headers.append(k, v);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let body = body.to_string().into_bytes();
        // No `date`: the bytes are made once, and a stale date is worse than none.
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        out.extend_from_slice(&crate::response::fields(&headers));
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(&body);
        Canned {
            bytes: Bytes::from(out),
            permits: Arc::new(Semaphore::new(in_flight)),
        }
    }

    /// The bytes written.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Answer `tcp` and close it, within [`REFUSAL_TIME`]; never waits.
    pub fn refuse(&self, tcp: TcpStream) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let _ = tcp.try_write(&self.bytes);
            return;
        };
        let bytes = self.bytes.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut tcp = tcp;
            let _ = tokio::time::timeout(REFUSAL_TIME, async {
                tcp.write_all(&bytes).await?;
                tcp.shutdown().await?;
                // Read what the client sent until it closes, so that closing sends a FIN, not a
                // reset that could destroy the answer before the client reads it.
                let mut sink = [0u8; 512];
                while tcp.read(&mut sink).await? > 0 {}
                std::io::Result::Ok(())
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_gets_its_share_and_no_more() {
        let l = ConnLimits::new(2, 100, &[], Arc::default());
        let a = l.admit(ip("10.0.0.1")).unwrap();
        let _b = l.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(l.admit(ip("10.0.0.1")).unwrap_err(), Refused::PerAddress);
        // The mapped form is the same client.
        assert_eq!(
            l.admit(ip("::ffff:10.0.0.1")).unwrap_err(),
            Refused::PerAddress
        );
        let _c = l.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(l.open(), 3);
        drop(a);
        assert_eq!(l.open_from(ip("10.0.0.1")), 1);
        let _d = l.admit(ip("10.0.0.1")).unwrap();
    }

    #[test]
    fn the_table_forgets_addresses_with_no_connection() {
        let l = ConnLimits::new(4, 1 << 20, &[], Arc::default());
        let guards: Vec<_> = (0..5000u32)
            .map(|i| l.admit(IpAddr::from(i.to_be_bytes())).unwrap())
            .collect();
        assert_eq!(l.addresses(), 5000);
        drop(guards);
        assert_eq!(l.addresses(), 0);
        assert_eq!(l.open(), 0);
        let capacity: usize = l.shards.iter().map(|s| s.lock().capacity()).sum();
        assert!(capacity <= SHARDS * SHRINK_ABOVE, "{capacity}");
    }

    #[test]
    fn trusted_proxies_only_count_in_the_total() {
        let l = ConnLimits::new(1, 3, &[ip("10.9.9.9")], Arc::default());
        let g: Vec<_> = (0..3).map(|_| l.admit(ip("10.9.9.9")).unwrap()).collect();
        assert_eq!(l.addresses(), 0);
        assert_eq!(l.admit(ip("10.0.0.1")).unwrap_err(), Refused::Full);
        drop(g);
        assert_eq!(l.open(), 0);
    }

    #[test]
    fn the_total_is_capped_and_a_refusal_takes_no_slot() {
        let l = ConnLimits::new(0, 2, &[], Arc::default());
        let _a = l.admit(ip("10.0.0.1")).unwrap();
        let _b = l.admit(ip("10.0.0.1")).unwrap();
        for _ in 0..10 {
            assert_eq!(l.admit(ip("10.0.0.3")).unwrap_err(), Refused::Full);
        }
        assert_eq!(l.open(), 2);
    }

    #[test]
    fn the_canned_answer_is_a_429_that_says_when() {
        let t = Canned::too_many();
        let text = std::str::from_utf8(t.bytes()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nretry-after: 5\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(text.ends_with("}"), "{text}");
        assert!(text.contains("\"too_many_connections\""), "{text}");
    }

    #[test]
    fn a_full_port_answers_503_overloaded_that_says_when() {
        let t = Canned::full();
        let text = std::str::from_utf8(t.bytes()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nretry-after: 5\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(text.contains("\"overloaded\""), "{text}");
    }

    #[test]
    fn the_cap_keeps_a_reserve() {
        assert_eq!(audience_cap(1 << 20), (1 << 20) - 512);
        assert_eq!(audience_cap(4096), 4096 - 512);
        assert_eq!(audience_cap(400), 200);
        assert_eq!(audience_cap(0), 1);
    }
}
