//! Simulated event-stream (SSE) subscribers: each joins the space for a listener token
//! (`POST /api/spaces/{id}/join`), opens `GET /api/spaces/{id}/events` (token in `Authorization`) over raw TCP from
//! its own source address and counts the events, checking that their ids follow one by one.
//!
//! [`SseScanner`] is sans-IO and keeps a few words of state: it never holds a frame.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::net::{self, Dechunk};
use crate::plan::EventsTarget;
use crate::tally::{Outcome, Subscribers, Up, kind};
use crate::worker::Ctx;

/// Counts SSE frames and checks their ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseScanner {
    /// Bytes in the current line.
    line_len: u32,
    /// The current line is a comment (`:` first).
    comment: bool,
    id: IdField,
    /// The current frame has a field other than a comment.
    fields: bool,
    frame_id: Option<u64>,
    last_id: Option<u64>,
    /// Frames with fields (events), comments-only frames not counted.
    pub events: u64,
    /// Ids skipped: an id more than one past the previous.
    pub missing_ids: u64,
    /// Ids at or below the previous one.
    pub reordered: u64,
}

/// Where the current line is in matching `id:` and its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum IdField {
    /// This many bytes of `id:` matched.
    #[default]
    Start,
    Prefix(u8),
    /// In the value: the number so far, whether a digit was seen.
    Value {
        id: u64,
        digits: bool,
    },
    /// Not an id line (or not a number).
    Other,
}

const ID: &[u8; 3] = b"id:";

impl SseScanner {
    /// Feeds decoded body bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' => {}
                b'\n' if self.line_len == 0 => self.frame_done(),
                b'\n' => {
                    if !self.comment {
                        self.fields = true;
                    }
                    if let IdField::Value { id, digits: true } = self.id {
                        self.frame_id = Some(id);
                    }
                    self.line_len = 0;
                    self.comment = false;
                    self.id = IdField::Start;
                }
                _ => {
                    if self.line_len == 0 && b == b':' {
                        self.comment = true;
                    }
                    self.line_len = self.line_len.saturating_add(1);
                    self.id = match self.id {
                        IdField::Start | IdField::Prefix(_) => {
                            let i = match self.id {
                                IdField::Prefix(i) => i as usize,
                                _ => 0,
                            };
                            match (b == ID[i], i + 1 == ID.len()) {
                                (true, true) => IdField::Value {
                                    id: 0,
                                    digits: false,
                                },
                                (true, false) => IdField::Prefix(i as u8 + 1),
                                (false, _) => IdField::Other,
                            }
                        }
                        IdField::Value { id, digits } => match b {
                            b' ' if !digits && id == 0 => IdField::Value { id, digits },
                            b'0'..=b'9' => match id
                                .checked_mul(10)
                                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                            {
                                Some(id) => IdField::Value { id, digits: true },
                                None => IdField::Other,
                            },
                            _ => IdField::Other,
                        },
                        IdField::Other => IdField::Other,
                    };
                }
            }
        }
    }

    fn frame_done(&mut self) {
        if self.fields {
            self.events += 1;
            if let Some(id) = self.frame_id {
                match self.last_id {
                    Some(last) if id > last.saturating_add(1) => self.missing_ids += id - last - 1,
                    Some(last) if id <= last => self.reordered += 1,
                    _ => {}
                }
                self.last_id = Some(self.last_id.map_or(id, |l| l.max(id)));
            }
        }
        self.fields = false;
        self.frame_id = None;
    }
}

/// Subscribes as subscriber `e` until the run ends: its counts, and its errors.
pub async fn run(ctx: &Ctx, e: usize, target: &EventsTarget) -> (Subscribers, Outcome) {
    let mut out = Outcome::default();
    let mut tally = Subscribers {
        target: 1,
        ..Subscribers::default()
    };
    let k = ctx.plan.listeners + e; // its own source address, after the listeners'
    let token = match join(ctx, k, target).await {
        Ok(t) => t,
        Err(kind) => {
            out.error(kind, &ctx.live);
            return (tally, out);
        }
    };
    let path = format!("/api/spaces/{}/events", target.space);
    let host = target.addr.to_string();
    let request = net::get_request_bearer(&host, &path, &token);
    let mut sse = SseScanner::default();
    let ended = stream(ctx, k, target, &request, &mut sse, &mut tally).await;
    tally.events += sse.events;
    tally.missing_ids += sse.missing_ids;
    if sse.missing_ids + sse.reordered > 0 {
        tally.gapped += 1;
        ctx.live.gapped.fetch_add(1, Relaxed);
    }
    match ended {
        None => tally.held += u64::from(sse.events > 0),
        Some(k) => out.error(k, &ctx.live),
    }
    (tally, out)
}

async fn join(ctx: &Ctx, k: usize, target: &EventsTarget) -> Result<String, String> {
    let url = format!("{}/api/spaces/{}/join", target.base, target.space);
    let timeout = ctx.plan.join_timeout();
    let resp = ctx
        .http(k)
        .post(&url)
        .timeout(timeout)
        .json(&json!({ "name": format!("load-{k}") }))
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                kind::TIMEOUT
            } else if e.is_connect() {
                kind::CONNECT
            } else {
                kind::IO
            }
            .to_owned()
        })?;
    if !resp.status().is_success() {
        return Err(kind::http(resp.status().as_u16()));
    }
    let v: serde_json::Value = resp.json().await.map_err(|_| kind::PROTOCOL.to_owned())?;
    v["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| kind::PROTOCOL.to_owned())
}

/// Reads the event stream until the run ends (`None`) or it fails (the error kind).
async fn stream(
    ctx: &Ctx,
    k: usize,
    target: &EventsTarget,
    request: &[u8],
    sse: &mut SseScanner,
    tally: &mut Subscribers,
) -> Option<String> {
    stream_inner(ctx, k, target, request, sse, tally)
        .await
        .err()
}

async fn stream_inner(
    ctx: &Ctx,
    k: usize,
    target: &EventsTarget,
    request: &[u8],
    sse: &mut SseScanner,
    tally: &mut Subscribers,
) -> Result<(), String> {
    let by = (Instant::now() + ctx.plan.join_timeout()).min(ctx.end);
    let io = |e: std::io::Error| kind::io(&e).to_owned();
    let mut s = tokio::time::timeout_at(by, net::connect_from(ctx.source(k), target.addr))
        .await
        .map_err(|_| kind::TIMEOUT.to_owned())?
        .map_err(io)?;
    s.write_all(request).await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout_at(by, net::read_head(&mut s, &mut buf))
        .await
        .map_err(|_| kind::TIMEOUT.to_owned())?
        .map_err(|e| kind::head(&e).to_owned())?;
    if head.status != 200 {
        return Err(kind::http(head.status));
    }
    let mut chunks = head.chunked.then(Dechunk::default);
    let mut feed = |bytes: &[u8], sse: &mut SseScanner| -> Result<(), String> {
        match &mut chunks {
            None => sse.push(bytes),
            Some(d) => match d.feed(bytes, |b| sse.push(b)) {
                Ok(false) => {}
                Ok(true) => return Err(kind::CLOSED.to_owned()),
                Err(_) => return Err(kind::PROTOCOL.to_owned()),
            },
        }
        Ok(())
    };
    feed(&buf[head.len..], sse)?;
    drop(buf);
    let mut subscribed: Option<Up> = None;
    loop {
        if subscribed.is_none() && sse.events > 0 {
            subscribed = Some(Up::new(&ctx.live.subscribed));
            tally.subscribed += 1;
        }
        tokio::select! {
            r = s.readable() => {
                r.map_err(io)?;
                if let Some(fed) = net::read_with(&s, |b| feed(b, sse)).map_err(io)? {
                    fed?;
                }
            }
            () = tokio::time::sleep_until(ctx.end) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str, split: usize) -> SseScanner {
        let mut s = SseScanner::default();
        for piece in text.as_bytes().chunks(split.max(1)) {
            s.push(piece);
        }
        s
    }

    #[test]
    fn counts_events_and_missing_ids_in_any_chunking() {
        let text = "id: 7\nevent: snapshot\ndata: {}\n\n: keep-alive\n\nid: 8\nevent: state\ndata: x\n\n\
                    event: levels\ndata: []\n\nid:11\r\nevent: muted\r\ndata: y\r\n\r\nid: 10\ndata: z\n\n";
        for split in 1..text.len() {
            let s = scan(text, split);
            assert_eq!(s.events, 5, "split {split}");
            assert_eq!(s.missing_ids, 2, "ids 9 and 10 skipped (split {split})");
            assert_eq!(s.reordered, 1, "10 after 11 (split {split})");
        }
    }

    #[test]
    fn junk_ids_are_ignored() {
        let s = scan(
            "id: x1\ndata: a\n\nidentity: 5\ndata: b\n\nid: 99999999999999999999999\n\n",
            3,
        );
        assert_eq!((s.events, s.missing_ids, s.reordered), (3, 0, 0));
    }
}
