//! Reading the server's answer to one request under a deadline: the head, then a bounded body,
//! and what kind of answer it is by the refusal contract (crates/admission/src/refusal.rs).

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::net::{self, Dechunk, Head};
use crate::tally::kind;

/// Largest refusal body read; the contract's bodies are a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// How reading an answer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing (complete) by the deadline.
    Timeout,
    /// Another failure, by [`kind`] (`reset`, `closed`, `protocol`, …).
    Kind(&'static str),
}

/// Reads a response head into `buf` by `deadline` (bytes after it stay in `buf`).
pub async fn head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<Head, Failure> {
    match tokio::time::timeout_at(deadline, net::read_head(stream, buf)).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(Failure::Kind(kind::head(&e))),
        Ok(Ok(h)) => Ok(h),
    }
}

/// Reads the body of a non-streaming answer (after `head`, with `buf` holding what came after
/// it) by `deadline`, up to [`MAX_BODY`] bytes: by Content-Length, chunked, or to the close.
pub async fn body(
    stream: &mut TcpStream,
    head: &Head,
    mut buf: Vec<u8>,
    deadline: Instant,
) -> Result<Vec<u8>, Failure> {
    let rest = buf.split_off(head.len.min(buf.len()));
    let mut raw = rest;
    let mut out = Vec::new();
    let mut dechunk = head.chunked.then(Dechunk::default);
    let want = head.content_length.map(|n| n.min(MAX_BODY));
    let mut chunk = [0u8; 4096];
    loop {
        // Decode what we have.
        let done = match &mut dechunk {
            Some(d) => {
                let r = d.feed(&raw, |b| {
                    let room = MAX_BODY.saturating_sub(out.len());
                    out.extend_from_slice(&b[..b.len().min(room)]);
                });
                raw.clear();
                match r {
                    Ok(done) => done || out.len() >= MAX_BODY,
                    Err(_) => return Err(Failure::Kind(kind::PROTOCOL)),
                }
            }
            None => {
                let room = MAX_BODY.saturating_sub(out.len());
                out.extend_from_slice(&raw[..raw.len().min(room)]);
                raw.clear();
                want.is_some_and(|w| out.len() >= w) || out.len() >= MAX_BODY
            }
        };
        if done {
            if let Some(w) = want {
                out.truncate(w);
            }
            return Ok(out);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(e)) => return Err(Failure::Kind(kind::io(&e))),
            // The close ends a body without length; it cuts one with a length or chunks short.
            Ok(Ok(0)) if want.is_none() && dechunk.is_none() => return Ok(out),
            Ok(Ok(0)) => return Err(Failure::Kind(kind::CLOSED)),
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What an answer other than 200 means to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// "Come back in `retry_after` s" (a 503 or 429 with `Retry-After`, or a body saying so),
    /// with a waiting-room `ticket` if one was given.
    Wait {
        /// The contract's `error`, or `http_NNN` when the body has none.
        reason: String,
        /// Seconds.
        retry_after: u64,
        /// The waiting-room ticket.
        ticket: Option<String>,
    },
    /// A proof of work is asked for (`proof_of_work_required`, with its `challenge`), or the
    /// one sent was refused (`proof_of_work_invalid`, `proof_of_work_reused`).
    Pow {
        /// The contract's `error`.
        reason: String,
        /// The challenge object, if any.
        challenge: Option<Value>,
    },
    /// Anything else: a bare error.
    Bare {
        /// `http_NNN`, or `http_NNN_<error>` when the body names one.
        reason: String,
    },
}

/// Reads a refusal by the contract: `status`, its `Retry-After` header and its JSON body.
pub fn classify(status: u16, retry_after: Option<u64>, body: &[u8]) -> Answer {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| json.as_ref().and_then(|v| v.get(k));
    let error = field("error").and_then(Value::as_str).map(str::to_owned);
    let reason = error.clone().unwrap_or_else(|| kind::http(status));
    let retry = retry_after.or_else(|| field("retry_after_s").and_then(Value::as_u64));
    match (status, error.as_deref(), retry) {
        (
            403,
            Some("proof_of_work_required" | "proof_of_work_invalid" | "proof_of_work_reused"),
            _,
        ) => Answer::Pow {
            reason,
            challenge: field("challenge").cloned(),
        },
        (503 | 429, _, Some(s)) => Answer::Wait {
            reason,
            retry_after: s,
            ticket: field("ticket").and_then(Value::as_str).map(str::to_owned),
        },
        _ => Answer::Bare {
            reason: match error {
                Some(e) => format!("{}_{e}", kind::http(status)),
                None => kind::http(status),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_is_read() {
        let w = br#"{"error":"waiting_room","position":3,"ticket":"7.9.x","retry_after_s":4}"#;
        assert_eq!(
            classify(503, Some(5), w),
            Answer::Wait {
                reason: "waiting_room".into(),
                retry_after: 5,
                ticket: Some("7.9.x".into())
            }
        );
        // The body's figure when the header is missing.
        assert!(matches!(
            classify(503, None, w),
            Answer::Wait { retry_after: 4, .. }
        ));
        assert!(matches!(
            classify(429, Some(1), b"not json"),
            Answer::Wait { ref reason, retry_after: 1, ticket: None } if reason == "http_429"
        ));
        let pow = br#"{"error":"proof_of_work_required","challenge":{"bits":18}}"#;
        assert!(matches!(
            classify(403, None, pow),
            Answer::Pow {
                challenge: Some(_),
                ..
            }
        ));
        // No Retry-After anywhere: not an honest "wait".
        assert_eq!(
            classify(503, None, b""),
            Answer::Bare {
                reason: "http_503".into()
            }
        );
        assert_eq!(
            classify(404, None, br#"{"error":"not_found"}"#),
            Answer::Bare {
                reason: "http_404_not_found".into()
            }
        );
    }
}
