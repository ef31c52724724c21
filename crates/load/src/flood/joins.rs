//! The join flood: `--flood-joins R` new legitimate listeners a second, each from a fresh
//! source address, each opening live.opus once and following the server's instructions (wait
//! `Retry-After`, come back with the waiting-room ticket, bring a proof of work) at most
//! [`MAX_FOLLOW`] times, then stopping. Each ends in exactly one [`Outcome`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::reply::{self, Answer, Failure};
use super::{Ctx, addr, paced};
use crate::net::{self, Dechunk};
use crate::ogg::Scanner;
use crate::report::Latency;
use crate::tally::kind;

/// Instructions followed before giving up (as a patient person would, not a retry loop).
pub const MAX_FOLLOW: u32 = 3;
/// Longest `Retry-After` honoured, seconds: a longer one is an answer to give up on.
pub const MAX_WAIT_S: u64 = 10;
/// Hardest proof of work solved (2^24 hashes: seconds); a harder one is an answer to give up on.
const MAX_POW_BITS: u32 = 24;
/// Joiners in progress at most; past it a join is not started and is counted as `skipped`.
const MAX_IN_FLIGHT: usize = 4096;

/// How one join ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A first Ogg audio page arrived.
    Audio,
    /// An honest answer (wait N seconds, waiting room, proof of work) not yet turned into audio
    /// when the joiner gave up (followed enough, or the run ended).
    Waiting,
    /// Any other status, a reset, a close, an unparseable answer.
    BareError,
    /// No answer within the join timeout.
    Hang,
}

/// The join flood's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Joins per second asked for.
    pub rate: f64,
    /// Joiners started.
    pub started: u64,
    /// Not started: [`MAX_IN_FLIGHT`] joiners were in progress.
    pub skipped: u64,
    /// Ended with audio.
    pub audio: u64,
    /// Ended waiting, after an honest answer.
    pub waiting: u64,
    /// Ended with a bare error.
    pub bare_error: u64,
    /// Ended without an answer within the join timeout (or did not finish at all).
    pub hang: u64,
    /// (audio + waiting) / started, `null` without any.
    pub honest_share: Option<f64>,
    /// From the first connect to the first audio page, over the `audio` joins (waits included).
    pub audio_latency_ms: Latency,
    /// Instructions followed (retries).
    pub retries: u64,
    /// Proofs of work solved.
    pub pow_solved: u64,
    /// Every non-200 answer seen, by the contract's `error` (or `http_NNN`).
    pub answers: BTreeMap<String, u64>,
    /// What the bare errors and hangs were.
    pub failures: BTreeMap<String, u64>,
}

/// One joiner's story.
struct Story {
    outcome: Outcome,
    latency: Option<Duration>,
    answers: Vec<String>,
    failure: Option<String>,
    retries: u64,
    pow_solved: u64,
}

/// Starts `rate` joiners a second until the flood stops, and reports once every one has ended
/// (those still going a join timeout after the run's end are aborted and counted as hangs).
pub async fn run(ctx: Ctx, rate: f64) -> Report {
    let mut r = Report {
        rate,
        ..Report::default()
    };
    let mut set = JoinSet::new();
    let mut stories = Vec::new();
    let mut i = 0u64;
    while let Some(at) = paced(ctx.start, ctx.stop, rate, i) {
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            Some(Ok(s)) = set.join_next(), if !set.is_empty() => {
                stories.push(s);
                continue;
            }
        }
        if set.len() >= MAX_IN_FLIGHT {
            r.skipped += 1;
        } else {
            let ctx = ctx.clone();
            set.spawn(async move { one(&ctx, addr::joiner(i as usize)).await });
            r.started += 1;
        }
        i += 1;
    }
    let by = ctx.end.max(Instant::now()) + ctx.join_timeout;
    while let Ok(Some(s)) = tokio::time::timeout_at(by, set.join_next()).await {
        if let Ok(s) = s {
            stories.push(s);
        }
    }
    set.abort_all();
    let mut latencies = Vec::new();
    for s in &stories {
        match s.outcome {
            Outcome::Audio => r.audio += 1,
            Outcome::Waiting => r.waiting += 1,
            Outcome::BareError => r.bare_error += 1,
            Outcome::Hang => r.hang += 1,
        }
        if let Some(l) = s.latency {
            latencies.push(u32::try_from(l.as_micros()).unwrap_or(u32::MAX));
        }
        for a in &s.answers {
            *r.answers.entry(a.clone()).or_default() += 1;
        }
        if let Some(f) = &s.failure {
            *r.failures.entry(f.clone()).or_default() += 1;
        }
        r.retries += s.retries;
        r.pow_solved += s.pow_solved;
    }
    // Joiners that never reported (panicked or aborted) hung as far as anyone can tell.
    let lost = r.started - stories.len() as u64;
    r.hang += lost;
    if lost > 0 {
        *r.failures.entry("unfinished".into()).or_default() += lost;
    }
    r.honest_share = (r.started > 0).then(|| (r.audio + r.waiting) as f64 / r.started as f64);
    r.audio_latency_ms = Latency::of(latencies);
    r
}

/// One joiner from `source`.
async fn one(ctx: &Ctx, source: std::net::Ipv4Addr) -> Story {
    let first = Instant::now();
    let mut story = Story {
        outcome: Outcome::Hang,
        latency: None,
        answers: Vec::new(),
        failure: None,
        retries: 0,
        pow_solved: 0,
    };
    let mut ticket: Option<String> = None;
    let mut pow: Option<String> = None;
    for attempt in 0..=MAX_FOLLOW {
        let deadline = Instant::now() + ctx.join_timeout;
        let path = with_pass(&ctx.live_path(), ticket.as_deref(), pow.take().as_deref());
        let (outcome, failure) = match try_once(ctx, source, &path, deadline).await {
            Tried::Audio => {
                story.latency = Some(first.elapsed());
                (Outcome::Audio, None)
            }
            Tried::Failed(Failure::Timeout) => (Outcome::Hang, Some(kind::TIMEOUT.to_owned())),
            Tried::Failed(Failure::Kind(k)) => (Outcome::BareError, Some(k.to_owned())),
            Tried::Answer(Answer::Bare { reason }) => {
                story.answers.push(reason.clone());
                (Outcome::BareError, Some(reason))
            }
            Tried::Answer(Answer::Wait {
                reason,
                retry_after,
                ticket: t,
            }) => {
                story.answers.push(reason);
                let again = Instant::now() + Duration::from_secs(retry_after.min(MAX_WAIT_S));
                if attempt == MAX_FOLLOW || retry_after > MAX_WAIT_S || again >= ctx.end {
                    (Outcome::Waiting, None)
                } else {
                    if t.is_some() {
                        ticket = t;
                    }
                    story.retries += 1;
                    tokio::time::sleep_until(again).await;
                    continue;
                }
            }
            Tried::Answer(Answer::Pow { reason, challenge }) => {
                story.answers.push(reason);
                let solved = match &challenge {
                    Some(c) if attempt < MAX_FOLLOW => tokio::time::timeout_at(ctx.end, solve(c))
                        .await
                        .ok()
                        .flatten(),
                    _ => None,
                };
                match solved {
                    Some(p) if Instant::now() < ctx.end => {
                        story.pow_solved += 1;
                        story.retries += 1;
                        pow = Some(p);
                        continue;
                    }
                    _ => (Outcome::Waiting, None),
                }
            }
        };
        story.outcome = outcome;
        story.failure = failure;
        return story;
    }
    story
}

/// Solves the contract's `challenge` object (`{"challenge", "bits", …}`) with
/// [`tribune_client::pow::solve`], at most one solve per core at once (the joiners share the
/// machine with the server; a queue for the solver is part of a join's latency). `None` for a
/// challenge it cannot read or one harder than [`MAX_POW_BITS`].
async fn solve(challenge: &serde_json::Value) -> Option<String> {
    static SOLVERS: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    let text = challenge.get("challenge")?.as_str()?.to_owned();
    let bits = u32::try_from(challenge.get("bits")?.as_u64()?).ok()?;
    if bits > MAX_POW_BITS {
        return None;
    }
    let solvers = SOLVERS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Semaphore::new(cores))
    });
    let permit = solvers.clone().acquire_owned().await.ok()?;
    // The permit goes with the work: a solve outliving its joiner still holds its core.
    tokio::task::spawn_blocking(move || {
        let pow = tribune_client::pow::solve(&text, bits);
        drop(permit);
        pow
    })
    .await
    .ok()
}

/// `path` with the waiting-room ticket and proof of work as query parameters.
fn with_pass(path: &str, ticket: Option<&str>, pow: Option<&str>) -> String {
    let params: Vec<String> = [("ticket", ticket), ("pow", pow)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    if params.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

enum Tried {
    Audio,
    Answer(Answer),
    Failed(Failure),
}

/// One request for the live stream, by `deadline`.
async fn try_once(ctx: &Ctx, source: std::net::Ipv4Addr, path: &str, deadline: Instant) -> Tried {
    let connect = net::connect_from(source.into(), ctx.addr);
    let mut stream = match tokio::time::timeout_at(deadline, connect).await {
        Err(_) => return Tried::Failed(Failure::Timeout),
        Ok(Err(e)) => return Tried::Failed(Failure::Kind(kind::io(&e))),
        Ok(Ok(s)) => s,
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tribune-load-join\r\n\r\n",
        ctx.host
    );
    match tokio::time::timeout_at(deadline, stream.write_all(request.as_bytes())).await {
        Err(_) => return Tried::Failed(Failure::Timeout),
        Ok(Err(e)) => return Tried::Failed(Failure::Kind(kind::io(&e))),
        Ok(Ok(())) => {}
    }
    let mut buf = Vec::with_capacity(1024);
    let head = match reply::head(&mut stream, &mut buf, deadline).await {
        Ok(h) => h,
        Err(f) => return Tried::Failed(f),
    };
    if head.status == 200 {
        let rest = buf.split_off(head.len.min(buf.len()));
        return match first_audio(&mut stream, head.chunked, rest, deadline).await {
            Ok(()) => Tried::Audio,
            Err(f) => Tried::Failed(f),
        };
    }
    match reply::body(&mut stream, &head, buf, deadline).await {
        Ok(body) => Tried::Answer(reply::classify(head.status, head.retry_after, &body)),
        // The head was an answer: a body cut short still says what the status says.
        Err(_) => Tried::Answer(reply::classify(head.status, head.retry_after, &[])),
    }
}

/// Reads the stream until its first audio page starts, by `deadline`.
async fn first_audio(
    stream: &mut TcpStream,
    chunked: bool,
    rest: Vec<u8>,
    deadline: Instant,
) -> Result<(), Failure> {
    let mut scanner = Scanner::new();
    let mut dechunk = chunked.then(Dechunk::default);
    let mut feed = |bytes: &[u8], scanner: &mut Scanner| -> Result<(), Failure> {
        match &mut dechunk {
            None => scanner.push(bytes, Duration::ZERO),
            Some(d) => match d.feed(bytes, |b| scanner.push(b, Duration::ZERO)) {
                Ok(false) => {}
                Ok(true) => return Err(Failure::Kind(kind::CLOSED)),
                Err(_) => return Err(Failure::Kind(kind::PROTOCOL)),
            },
        }
        Ok(())
    };
    feed(&rest, &mut scanner)?;
    let mut chunk = [0u8; 4096];
    while scanner.stats().first_audio.is_none() {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(e)) => return Err(Failure::Kind(kind::io(&e))),
            Ok(Ok(0)) => return Err(Failure::Kind(kind::CLOSED)),
            Ok(Ok(n)) => feed(&chunk[..n], &mut scanner)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_go_in_the_query() {
        assert_eq!(with_pass("/s/live.opus", None, None), "/s/live.opus");
        assert_eq!(
            with_pass("/s/live.opus", Some("1.2.x"), Some("c:9")),
            "/s/live.opus?ticket=1.2.x&pow=c:9"
        );
        assert_eq!(
            with_pass("/s/live.opus", None, Some("c:9")),
            "/s/live.opus?pow=c:9"
        );
    }
}
