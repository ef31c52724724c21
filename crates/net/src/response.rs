//! HTTP/1 response heads written by hand, the way hyper writes them (sans-IO).
//!
//! The lean live.opus path answers without hyper, and must not be told apart from it: the status
//! line with the request's version (`HTTP/1.0` to a 1.0 client), the handler's headers in their
//! order with lower-case names, then the framing header hyper adds (`transfer-encoding: chunked`
//! or `content-length`), then `date`. `crates/server/tests/lean_listener.rs` compares the bytes.

use std::time::SystemTime;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

/// How the body that follows the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.1 chunks (an endless stream to a 1.1 client).
    Chunked,
    /// By the connection's end (an endless stream to a 1.0 client).
    Close,
    /// `content-length`.
    Length(usize),
}

/// The header lines of `headers` (`name: value\r\n` each, in the map's order): the part of a head
/// that is the same for every listener of a space, made once.
pub fn fields(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A whole response head: status line, `fields` (from [`fields`]), framing, `date`, blank line.
pub fn head(
    http10: bool,
    status: StatusCode,
    fields: &[u8],
    framing: Framing,
    date: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() + 128);
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(fields);
    match framing {
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Close => {}
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// A complete response with a body of known length.
pub fn whole(http10: bool, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Bytes {
    let mut out = head(
        http10,
        status,
        &fields(headers),
        Framing::Length(body.len()),
        &date(SystemTime::now()),
    );
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// `date` as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn date(now: SystemTime) -> String {
    httpdate::fmt_http_date(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn heads_read_as_hyper_writes_them() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg"));
        h.insert("icy-br", HeaderValue::from_static("32"));
        let date = date(UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(date, "Sun, 06 Nov 1994 08:49:37 GMT");
        let f = fields(&h);
        let ok = head(false, StatusCode::OK, &f, Framing::Chunked, &date);
        assert_eq!(
            String::from_utf8(ok).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: audio/ogg\r\nicy-br: 32\r\n\
             transfer-encoding: chunked\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        let ok10 = head(true, StatusCode::OK, &f, Framing::Close, &date);
        assert!(
            ok10.starts_with(b"HTTP/1.0 200 OK\r\ncontent-type: audio/ogg\r\nicy-br: 32\r\ndate: ")
        );
        let gone = head(false, StatusCode::GONE, b"", Framing::Length(12), &date);
        assert!(gone.starts_with(b"HTTP/1.1 410 Gone\r\ncontent-length: 12\r\ndate: "));
    }
}
