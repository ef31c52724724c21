//! One simulated Ogg listener: raw TCP from its own source address, a minimal HTTP/1.1 GET, and
//! the body (de-chunked if need be) through the [`Scanner`] as it arrives.
//!
//! Lean on purpose, so that one process holds tens of thousands: no read buffer of its own (reads
//! go through [`net::read_with`]'s buffer, one per runtime thread), no page buffer,
//! one timer that is reset once per stall period rather than once per read.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::net::{self, Dechunk};
use crate::ogg::Scanner;
use crate::plan::HttpTarget;
use crate::tally::{Outcome, Up, kind};
use crate::worker::Ctx;

/// Wait after a 503 without a usable `Retry-After`, seconds.
const DEFAULT_RETRY_AFTER: u64 = 2;

/// How one attempt ended.
enum Attempt {
    /// The run ended (held if it had joined).
    Done,
    /// A 503 with this Retry-After.
    Refused(u64),
    /// Any other failure (already counted).
    Failed,
}

/// Listens as listener `k` until the run ends.
pub async fn run(ctx: &Ctx, k: usize, target: &HttpTarget) -> Outcome {
    let mut out = Outcome::default();
    let first_start = Instant::now();
    let request = net::get_request_to(&target.host, &target.path);
    loop {
        match attempt(ctx, k, target, &request, first_start, &mut out).await {
            Attempt::Refused(after) if ctx.plan.retry => {
                let at = Instant::now() + Duration::from_secs(after);
                if at >= ctx.end {
                    break;
                }
                tokio::time::sleep_until(at).await;
            }
            Attempt::Done | Attempt::Refused(_) | Attempt::Failed => break,
        }
    }
    out
}

async fn attempt(
    ctx: &Ctx,
    k: usize,
    target: &HttpTarget,
    request: &[u8],
    first_start: Instant,
    out: &mut Outcome,
) -> Attempt {
    let live = &ctx.live;
    let joining = Up::new(&live.joining);
    let join_by = (Instant::now() + ctx.plan.join_timeout()).min(ctx.end);
    let source = ctx.source(k);
    let connected = tokio::time::timeout_at(join_by, net::connect_from(source, target.addr)).await;
    let mut stream = match connected {
        Err(_) => return fail(ctx, out, kind::TIMEOUT),
        Ok(Err(e)) => return fail(ctx, out, kind::io(&e)),
        Ok(Ok(s)) => s,
    };
    out.requests += 1;
    if let Err(e) = stream.write_all(request).await {
        return fail(ctx, out, kind::io(&e));
    }
    let mut buf = Vec::with_capacity(1024);
    let head = match tokio::time::timeout_at(join_by, net::read_head(&mut stream, &mut buf)).await {
        Err(_) => return fail(ctx, out, kind::TIMEOUT),
        Ok(Err(e)) => return fail(ctx, out, kind::head(&e)),
        Ok(Ok(h)) => h,
    };
    if head.status != 200 {
        out.error(kind::http(head.status), live);
        return if head.status == 503 {
            Attempt::Refused(head.retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
        } else {
            Attempt::Failed
        };
    }
    let mut body = Body {
        chunked: head.chunked.then(Dechunk::default),
        scanner: Scanner::new(),
        first_start,
    };
    let rest = buf.split_off(head.len);
    drop(buf);
    let mut joining = Some(joining);
    let mut streaming: Option<Up> = None;
    let mut last_byte = Instant::now();
    let mut fed = body.feed(&rest, Instant::now());
    let stall = ctx.plan.join_timeout();
    let mut wake = join_by;
    let timer = tokio::time::sleep_until(wake);
    tokio::pin!(timer);
    let ended = loop {
        if let Err(k) = fed {
            break Some(k);
        }
        let stats = body.scanner.stats();
        if streaming.is_none()
            && let Some(lat) = stats.first_audio
        {
            joining = None;
            streaming = Some(Up::new(&live.connected));
            live.joined.fetch_add(1, Relaxed);
            out.latency = Some(lat);
            out.joined_at = Some(ctx.since_start(first_start + lat));
            wake = (last_byte + stall).min(ctx.end);
            timer.as_mut().reset(wake);
        }
        if !out.gapped && stats.gaps() > 0 {
            out.gapped = true;
            live.gapped.fetch_add(1, Relaxed);
        }
        tokio::select! {
            biased;
            r = stream.readable() => {
                if let Err(e) = r {
                    break Some(kind::io(&e));
                }
                let now = Instant::now();
                match read(&stream, &mut body, now) {
                    Read::Bytes(n) => {
                        live.bytes.fetch_add(n as u64, Relaxed);
                        last_byte = now;
                        fed = Ok(());
                    }
                    Read::WouldBlock => fed = Ok(()),
                    Read::Err(k) => fed = Err(k),
                }
            }
            () = &mut timer => {
                let now = Instant::now();
                if now >= ctx.end {
                    break None;
                }
                if streaming.is_none() {
                    break Some(kind::TIMEOUT);
                }
                if now >= last_byte + stall {
                    break Some(kind::STALLED);
                }
                wake = (last_byte + stall).min(ctx.end);
                timer.as_mut().reset(wake);
            }
        }
    };
    drop(joining);
    let stats = body.scanner.stats();
    out.bytes += stats.bytes;
    out.pages += stats.pages;
    match ended {
        None => {
            out.held = streaming.is_some();
            if streaming.is_none() {
                // The run ended before any audio came.
                out.error(kind::TIMEOUT, live);
            }
            Attempt::Done
        }
        Some(k) => {
            out.error(k, live);
            Attempt::Failed
        }
    }
}

fn fail(ctx: &Ctx, out: &mut Outcome, k: &'static str) -> Attempt {
    out.error(k, &ctx.live);
    Attempt::Failed
}

/// The response body's decoding state.
struct Body {
    chunked: Option<Dechunk>,
    scanner: Scanner,
    first_start: Instant,
}

impl Body {
    fn feed(&mut self, bytes: &[u8], now: Instant) -> Result<(), &'static str> {
        let at = now - self.first_start;
        match &mut self.chunked {
            None => {
                self.scanner.push(bytes, at);
                Ok(())
            }
            Some(d) => {
                let scanner = &mut self.scanner;
                match d.feed(bytes, |data| scanner.push(data, at)) {
                    Ok(false) => Ok(()),
                    Ok(true) => Err(kind::CLOSED),
                    Err(_) => Err(kind::PROTOCOL),
                }
            }
        }
    }
}

enum Read {
    Bytes(usize),
    WouldBlock,
    Err(&'static str),
}

/// One non-blocking read, fed to `body` at once.
fn read(stream: &TcpStream, body: &mut Body, now: Instant) -> Read {
    match net::read_with(stream, |b| (b.len(), body.feed(b, now))) {
        Ok(Some((n, Ok(())))) => Read::Bytes(n),
        Ok(Some((_, Err(k)))) => Read::Err(k),
        Ok(None) => Read::WouldBlock,
        Err(e) => Read::Err(kind::io(&e)),
    }
}
