//! The junk-request flood: `--flood-junk R` requests a second from [`addr::ATTACKERS`]
//! addresses, each a new connection carrying one of [`Kind`]: random bytes, a 64 KiB header
//! line, an invalid method, a bogus path, garbage JSON to `/join`, or a huge `Content-Length`
//! with no body. Fire and forget with at most [`MAX_IN_FLIGHT`] in progress; each answer is
//! counted by status class, or by how the connection ended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::reply::{self, Failure};
use super::{Ctx, Rng, addr, paced};
use crate::net;
use crate::tally::kind;

/// The attackers' range: 127.200.0.x.
const NET: u8 = 200;
/// Junk requests in progress at most; past it one is not sent and is counted as `skipped`.
const MAX_IN_FLIGHT: usize = 1024;
/// How long a junk connection waits for an answer before it gives up (and counts `timeout`).
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// The oversized header line (far past any server's head limit).
const LONG_LINE: usize = 64 * 1024;

/// What a junk request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Up to 4 KiB of random bytes.
    Random,
    /// A header line of [`LONG_LINE`] bytes.
    LongHeader,
    /// A method no server knows.
    BadMethod,
    /// A path that names nothing (and tries to climb out).
    BogusPath,
    /// `POST /api/spaces/{id}/join` with a body that is not JSON.
    GarbageJson,
    /// A `Content-Length` of a gigabyte and no body.
    HugeLength,
}

impl Kind {
    /// Every kind, sent in turn.
    pub const ALL: [Kind; 6] = [
        Kind::Random,
        Kind::LongHeader,
        Kind::BadMethod,
        Kind::BogusPath,
        Kind::GarbageJson,
        Kind::HugeLength,
    ];

    /// The report's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Random => "random_bytes",
            Kind::LongHeader => "long_header",
            Kind::BadMethod => "bad_method",
            Kind::BogusPath => "bogus_path",
            Kind::GarbageJson => "garbage_json",
            Kind::HugeLength => "huge_content_length",
        }
    }

    /// The bytes sent.
    pub fn payload(self, ctx: &Ctx, rng: &mut Rng) -> Vec<u8> {
        let host = &ctx.host;
        let space = &ctx.space;
        match self {
            Kind::Random => {
                let mut b = vec![0; 1 + rng.below(4096)];
                rng.fill(&mut b);
                b
            }
            Kind::LongHeader => {
                let mut b =
                    format!("GET /spaces/{space}/live.opus HTTP/1.1\r\nHost: {host}\r\nX-Junk: ")
                        .into_bytes();
                b.resize(b.len() + LONG_LINE, b'a');
                b.extend_from_slice(b"\r\n\r\n");
                b
            }
            Kind::BadMethod => format!(
                "BREW{} /spaces/{space}/live.opus HTTP/1.1\r\nHost: {host}\r\n\r\n",
                rng.below(1000)
            )
            .into_bytes(),
            Kind::BogusPath => format!(
                "GET /spaces/{:x}/../../../etc/passwd%00?x={} HTTP/1.1\r\nHost: {host}\r\n\r\n",
                rng.next_u64(),
                rng.next_u64()
            )
            .into_bytes(),
            Kind::GarbageJson => {
                let body = format!("{{\"name\": [[[{:x}", rng.next_u64());
                format!(
                    "POST /api/spaces/{space}/join HTTP/1.1\r\nHost: {host}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            Kind::HugeLength => format!(
                "POST /api/spaces/{space}/join HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
            )
            .into_bytes(),
        }
    }
}

/// The junk flood's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Requests per second asked for.
    pub rate: f64,
    /// Junk connections made (or tried).
    pub sent: u64,
    /// Not sent: [`MAX_IN_FLIGHT`] were in progress.
    pub skipped: u64,
    /// How they ended, all kinds together: `2xx` … `5xx` by the answer's status class, else
    /// `timeout` (no answer in 5 s), `closed`, `reset`, `connect_error`, …
    pub outcomes: BTreeMap<String, u64>,
    /// The same per kind of junk.
    pub by_kind: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Sends `rate` junk requests a second until the flood stops; reports when the last has ended.
pub async fn run(ctx: Ctx, rate: f64) -> Report {
    let mut r = Report {
        rate,
        ..Report::default()
    };
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut set = JoinSet::new();
    let mut rng = Rng::new(0x6a75_6e6b);
    let mut i = 0u64;
    while let Some(at) = paced(ctx.start, ctx.stop, rate, i) {
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            Some(Ok((k, o))) = set.join_next(), if !set.is_empty() => {
                tally(&mut r, k, o);
                continue;
            }
        }
        let kind = Kind::ALL[i as usize % Kind::ALL.len()];
        let source = addr::attacker(NET, i as usize);
        i += 1;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            r.skipped += 1;
            continue;
        };
        r.sent += 1;
        let payload = kind.payload(&ctx, &mut rng);
        let server = ctx.addr;
        set.spawn(async move {
            let outcome = one(source, server, &payload).await;
            drop(permit);
            (kind, outcome)
        });
    }
    while let Some(done) = set.join_next().await {
        if let Ok((k, o)) = done {
            tally(&mut r, k, o);
        }
    }
    r
}

fn tally(r: &mut Report, k: Kind, outcome: String) {
    *r.outcomes.entry(outcome.clone()).or_default() += 1;
    *r.by_kind
        .entry(k.name().to_owned())
        .or_default()
        .entry(outcome)
        .or_default() += 1;
}

/// Sends `payload` on a new connection from `source` and sees what comes back.
async fn one(source: std::net::Ipv4Addr, server: std::net::SocketAddr, payload: &[u8]) -> String {
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut stream =
        match tokio::time::timeout_at(deadline, net::connect_from(source.into(), server)).await {
            Err(_) => return kind::TIMEOUT.to_owned(),
            Ok(Err(e)) => return kind::io(&e).to_owned(),
            Ok(Ok(s)) => s,
        };
    // A server may answer and close before taking all of a long request: the answer, if any,
    // is still read below.
    let _ = tokio::time::timeout_at(deadline, stream.write_all(payload)).await;
    let mut buf = Vec::with_capacity(1024);
    match reply::head(&mut stream, &mut buf, deadline).await {
        Ok(h) => format!("{}xx", h.status / 100),
        Err(Failure::Timeout) => kind::TIMEOUT.to_owned(),
        Err(Failure::Kind(k)) => k.to_owned(),
    }
}
