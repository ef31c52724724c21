//! Slow request heads: `--slowloris N` connections from [`addr::ATTACKERS`] addresses, opened
//! over the flood's first second, each sending the start of a live.opus request and then one
//! byte every [`DRIP`], never finishing the head. The report says how many the server closed
//! (or answered), and how many were still open when the flood stopped.

use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Ctx, addr};
use crate::net;

/// The attackers' range: 127.201.0.x.
const NET: u8 = 201;
/// Time between two bytes of a head.
pub const DRIP: Duration = Duration::from_secs(3);
/// The connections are opened evenly over this time.
const OPEN_OVER: Duration = Duration::from_secs(1);

/// The slow heads' figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Connections asked for.
    pub target: u64,
    /// Connections made.
    pub opened: u64,
    /// Connections that could not be made.
    pub connect_failed: u64,
    /// Closed or reset by the server before the flood stopped.
    pub closed_by_server: u64,
    /// Of those, the ones that got an answer (any bytes) first, e.g. a 408.
    pub answered: u64,
    /// Still open when the flood stopped.
    pub open_at_end: u64,
    /// Bytes dripped, all connections together.
    pub bytes_sent: u64,
    /// Seconds from opening to the server's close, the longest (`null` if none closed).
    pub longest_held_s: Option<f64>,
}

enum End {
    ConnectFailed,
    Closed {
        answered: bool,
        held: Duration,
        sent: u64,
    },
    Open {
        sent: u64,
    },
}

/// Opens `n` slow connections and holds them until the flood stops.
pub async fn run(ctx: Ctx, n: usize) -> Report {
    let mut set = JoinSet::new();
    for i in 0..n {
        let at = ctx.start + OPEN_OVER.mul_f64(i as f64 / n.max(1) as f64);
        let ctx = ctx.clone();
        set.spawn(async move {
            tokio::time::sleep_until(at.min(ctx.stop)).await;
            one(&ctx, addr::attacker(NET, i)).await
        });
    }
    let mut r = Report {
        target: n as u64,
        ..Report::default()
    };
    let mut longest: Option<Duration> = None;
    while let Some(done) = set.join_next().await {
        match done {
            Ok(End::ConnectFailed) | Err(_) => r.connect_failed += 1,
            Ok(End::Closed {
                answered,
                held,
                sent,
            }) => {
                r.opened += 1;
                r.closed_by_server += 1;
                r.answered += u64::from(answered);
                r.bytes_sent += sent;
                longest = longest.max(Some(held));
            }
            Ok(End::Open { sent }) => {
                r.opened += 1;
                r.open_at_end += 1;
                r.bytes_sent += sent;
            }
        }
    }
    r.longest_held_s = longest.map(|d| d.as_secs_f64());
    r
}

/// One slow connection from `source`, until the server closes it or the flood stops.
async fn one(ctx: &Ctx, source: std::net::Ipv4Addr) -> End {
    if Instant::now() >= ctx.stop {
        return End::ConnectFailed;
    }
    let connect = net::connect_from(source.into(), ctx.addr);
    let mut stream = match tokio::time::timeout_at(ctx.stop, connect).await {
        Ok(Ok(s)) => s,
        _ => return End::ConnectFailed,
    };
    let opened = Instant::now();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tribune-load-slow\r\nX-Slow: ",
        ctx.live_path(),
        ctx.host
    );
    let mut sent = 0u64;
    let mut answered = false;
    let closed = |answered, sent| End::Closed {
        answered,
        held: opened.elapsed(),
        sent,
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return closed(false, sent);
    }
    sent += head.len() as u64;
    let mut next = Instant::now() + DRIP;
    loop {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(ctx.stop) => return End::Open { sent },
            r = stream.readable() => {
                if r.is_err() {
                    return closed(answered, sent);
                }
                match net::read_with(&stream, |b| b.len()) {
                    Ok(Some(_)) => answered = true,
                    Ok(None) => {}
                    Err(_) => return closed(answered, sent),
                }
            }
            () = tokio::time::sleep_until(next) => {
                if stream.write_all(b"a").await.is_err() {
                    return closed(answered, sent);
                }
                sent += 1;
                next += DRIP;
            }
        }
    }
}
