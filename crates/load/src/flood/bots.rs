//! The bot flood: `--flood-bots R` listeners a second from a botnet's many addresses
//! (127.128.0.1 onwards) that open live.opus once, never solve a proof of work nor come back
//! with a ticket, and hold whatever place they get until the flood stops. They are what a
//! listener cap and the shield are for: without the shield they fill the node's places and
//! real listeners end in the waiting room; with it they are refused for microseconds each.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::reply::{self, Answer, Failure};
use super::{Ctx, paced};
use crate::net;
use crate::tally::kind;

/// Bots at once at most; past it a bot is not started and counted as `skipped`.
const MAX_IN_FLIGHT: usize = 8192;

/// The bot flood's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Bots per second asked for.
    pub rate: f64,
    /// Bots started.
    pub started: u64,
    /// Not started: [`MAX_IN_FLIGHT`] were going.
    pub skipped: u64,
    /// Got the stream (a `200`) and held a place.
    pub held: u64,
    /// Refused, by the answer's `error` (or `http_NNN`).
    pub refused: BTreeMap<String, u64>,
    /// Failed otherwise (`timeout`, `reset`, …).
    pub failed: BTreeMap<String, u64>,
}

/// Bot `i`'s address: 127.128.0.1 onwards, never a .0 or .255.
fn bot(i: usize) -> Ipv4Addr {
    let n = (i % (64 * 256 * 254)) as u32;
    let (hi, lo) = (n / 254, n % 254 + 1);
    Ipv4Addr::from_bits((127 << 24) | (((128 << 8) + hi) << 8) | lo)
}

enum Ending {
    Held,
    Refused(String),
    Failed(String),
}

/// Starts `rate` bots a second until the flood stops; each holds its place until then.
pub async fn run(ctx: Ctx, rate: f64) -> Report {
    let mut r = Report {
        rate,
        ..Report::default()
    };
    let mut set = JoinSet::new();
    let mut endings = Vec::new();
    let mut i = 0u64;
    while let Some(at) = paced(ctx.start, ctx.stop, rate, i) {
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            Some(Ok(e)) = set.join_next(), if !set.is_empty() => {
                endings.push(e);
                continue;
            }
        }
        if set.len() >= MAX_IN_FLIGHT {
            r.skipped += 1;
        } else {
            let ctx = ctx.clone();
            set.spawn(async move { one(&ctx, bot(i as usize)).await });
            r.started += 1;
        }
        i += 1;
    }
    let by = ctx.end.max(Instant::now()) + ctx.join_timeout;
    while let Ok(Some(e)) = tokio::time::timeout_at(by, set.join_next()).await {
        if let Ok(e) = e {
            endings.push(e);
        }
    }
    set.abort_all();
    for e in endings {
        match e {
            Ending::Held => r.held += 1,
            Ending::Refused(k) => *r.refused.entry(k).or_default() += 1,
            Ending::Failed(k) => *r.failed.entry(k).or_default() += 1,
        }
    }
    r
}

async fn one(ctx: &Ctx, source: Ipv4Addr) -> Ending {
    let deadline = Instant::now() + ctx.join_timeout;
    let connect = net::connect_from(source.into(), ctx.addr);
    let mut stream = match tokio::time::timeout_at(deadline, connect).await {
        Err(_) => return Ending::Failed(kind::TIMEOUT.into()),
        Ok(Err(e)) => return Ending::Failed(kind::io(&e).into()),
        Ok(Ok(s)) => s,
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tribune-load-bot\r\n\r\n",
        ctx.live_path(),
        ctx.host
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return Ending::Failed(kind::RESET.into());
    }
    let mut buf = Vec::with_capacity(1024);
    let head = match reply::head(&mut stream, &mut buf, deadline).await {
        Ok(h) => h,
        Err(Failure::Timeout) => return Ending::Failed(kind::TIMEOUT.into()),
        Err(Failure::Kind(k)) => return Ending::Failed(k.into()),
    };
    if head.status == 200 {
        // Hold the place, reading and dropping the audio, until the flood stops.
        let mut sink = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(ctx.stop, stream.read(&mut sink)).await {
                Err(_) => return Ending::Held,
                Ok(Ok(0)) | Ok(Err(_)) => return Ending::Failed(kind::CLOSED.into()),
                Ok(Ok(_)) => {}
            }
        }
    }
    let body = reply::body(&mut stream, &head, buf, deadline)
        .await
        .unwrap_or_default();
    let reason = match reply::classify(head.status, head.retry_after, &body) {
        Answer::Wait { reason, .. } | Answer::Pow { reason, .. } | Answer::Bare { reason } => {
            reason
        }
    };
    Ending::Refused(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_come_from_their_own_range() {
        assert_eq!(bot(0), Ipv4Addr::new(127, 128, 0, 1));
        assert_eq!(bot(253), Ipv4Addr::new(127, 128, 0, 254));
        assert_eq!(bot(254), Ipv4Addr::new(127, 128, 1, 1));
        assert!((0..100_000).all(|i| {
            let o = bot(i).octets();
            o[1] >= 128 && o[1] < 192 && o[3] != 0 && o[3] != 255
        }));
    }
}
