//! Loopback client connections and just enough HTTP/1.1 to drive the server.
//!
//! One source address has about 28 k ephemeral ports, and closed connections linger in TIME_WAIT,
//! so connection `i` binds to its own address in 127.0.0.0/8 (the whole block is loopback on
//! Linux) before it connects: [`SOURCE_ADDRS`] addresses give that many times the ports.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Source addresses used, 127.0.0.2 ..= 127.0.0.251.
pub const SOURCE_ADDRS: usize = 250;
/// Largest response head we accept.
const MAX_HEAD: usize = 16 * 1024;

/// The source address of connection `i`.
pub fn source_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCE_ADDRS) as u8)
}

/// Connects to `server` from the source address of connection `i`.
pub async fn connect(i: usize, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source_addr(i).into(), 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A minimal keep-alive GET request.
pub fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: tribune-bench\r\n\r\n")
        .into_bytes()
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Length of the head including the blank line.
    pub len: usize,
}

/// Parses a response head from the start of `buf`; `None` if it is not complete yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(':')).collect();
    let content_length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse().context("bad Content-Length"))
        .transpose()?;
    let chunked = headers.iter().any(|(name, v)| {
        name.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
    });
    Ok(Some(Head {
        status,
        content_length,
        chunked,
        len: end + 4,
    }))
}

/// Reads until `buf` holds a complete response head. Bytes after the head stay in `buf`.
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head> {
    loop {
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
        }
        if stream.read_buf(buf).await? == 0 {
            bail!("connection closed before the response head");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head() {
        let r =
            b"HTTP/1.1 200 OK\r\ncontent-type: x\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
        let head = parse_head(r).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length, Some(15));
        assert!(!head.chunked);
        assert_eq!(&r[head.len..], b"{\"status\":\"ok\"}");
    }

    #[test]
    fn sees_chunked_bodies() {
        let r = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(r).unwrap().unwrap().chunked);
    }

    #[test]
    fn incomplete_head_is_none() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn sources_stay_in_loopback() {
        assert_eq!(source_addr(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_addr(249), Ipv4Addr::new(127, 0, 0, 251));
        assert_eq!(source_addr(250), Ipv4Addr::new(127, 0, 0, 2));
    }
}
