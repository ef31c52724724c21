//! Loopback client connections and just enough HTTP/1.1 to drive a server by the thousand.
//!
//! One source address has about 28 k ephemeral ports, and closed connections linger in TIME_WAIT,
//! so connection `i` binds to its own address in 127.0.0.0/8 (the whole block is loopback on
//! Linux) before it connects: `n` source addresses give `n` times the ports.
//!
//! The response side is sans-IO where it matters: [`parse_head`] reads a response head from bytes,
//! [`Dechunk`] undoes `Transfer-Encoding: chunked` as bytes arrive, with a few bytes of state.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Source addresses used by default, 127.0.0.2 ..= 127.0.0.251.
pub const SOURCE_ADDRS: usize = 250;
/// Most source addresses one run may spread over: 127.0.0.2 up to 127.255.255.254, less a margin.
pub const MAX_SOURCE_ADDRS: usize = 16_000_000;
/// Largest response head we accept.
const MAX_HEAD: usize = 16 * 1024;
/// Longest chunk-size line (digits and extensions) we accept.
const MAX_CHUNK_LINE: u16 = 1024;

/// The source address of connection `i` among the default [`SOURCE_ADDRS`].
pub fn source_addr(i: usize) -> Ipv4Addr {
    source_addr_of(i, SOURCE_ADDRS)
}

/// The source address of connection `i` when spreading over `sources` addresses: 127.0.0.2 on,
/// counting through the whole of 127.0.0.0/8 (`sources` is clamped to 1..=[`MAX_SOURCE_ADDRS`]).
pub fn source_addr_of(i: usize, sources: usize) -> Ipv4Addr {
    let n = sources.clamp(1, MAX_SOURCE_ADDRS);
    let offset = 2 + (i % n) as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) | offset)
}

/// Connects to `server` from the source address of connection `i`.
pub async fn connect(i: usize, server: SocketAddr) -> std::io::Result<TcpStream> {
    connect_from(source_addr(i).into(), server).await
}

/// Connects to `server` from `source` (port chosen by the kernel), with Nagle off.
pub async fn connect_from(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

thread_local! {
    /// One read buffer per runtime thread, shared by every connection it drives.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SCRATCH_LEN]);
}
/// Bytes taken from a socket per read.
const SCRATCH_LEN: usize = 64 * 1024;

/// One non-blocking read into this thread's scratch buffer, handed to `f` at once: thousands of
/// mostly idle connections then need no buffer of their own. `Ok(None)`: nothing was ready;
/// end of stream is an `UnexpectedEof` error.
pub fn read_with<R>(stream: &TcpStream, f: impl FnOnce(&[u8]) -> R) -> std::io::Result<Option<R>> {
    SCRATCH.with_borrow_mut(|buf| match stream.try_read(buf) {
        Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(n) => Ok(Some(f(&buf[..n]))),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    })
}

/// A minimal keep-alive GET request.
pub fn get_request(path: &str) -> Vec<u8> {
    get_request_to("127.0.0.1", path)
}

/// A minimal keep-alive GET request with the given `Host`.
pub fn get_request_to(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tribune-load\r\n\r\n").into_bytes()
}

/// A minimal keep-alive GET request with the given `Host` and `Authorization: Bearer token`
/// (how a client that can send headers opens an event stream).
pub fn get_request_bearer(host: &str, path: &str, token: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tribune-load\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
    .into_bytes()
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Retry-After` in seconds, if given as a number.
    pub retry_after: Option<u64>,
    /// Length of the head including the blank line.
    pub len: usize,
}

/// Parses a response head from the start of `buf`; `None` if it is not complete yet.
///
/// Status lines of HTTP/1.1, HTTP/1.0 (Icecast) and the old `ICY 200 OK` are accepted.
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
    let status = ["HTTP/1.1 ", "HTTP/1.0 ", "ICY "]
        .iter()
        .find_map(|p| status_line.strip_prefix(p))
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(':')).collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let content_length = header("content-length")
        .map(|v| v.parse().context("bad Content-Length"))
        .transpose()?;
    let chunked = headers.iter().any(|(name, v)| {
        name.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
    });
    Ok(Some(Head {
        status,
        content_length,
        chunked,
        retry_after: header("retry-after").and_then(|v| v.parse().ok()),
        len: end + 4,
    }))
}

/// Why no response head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The connection failed.
    Io(std::io::Error),
    /// The peer closed the connection first.
    Closed,
    /// Not an HTTP response head.
    Malformed(String),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Io(e) => write!(f, "reading the response head: {e}"),
            HeadError::Closed => f.write_str("connection closed before the response head"),
            HeadError::Malformed(m) => write!(f, "malformed response head: {m}"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Reads until `buf` holds a complete response head. Bytes after the head stay in `buf`.
pub async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::result::Result<Head, HeadError> {
    loop {
        match parse_head(buf) {
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(e) => return Err(HeadError::Malformed(format!("{e:#}"))),
        }
        if stream.read_buf(buf).await.map_err(HeadError::Io)? == 0 {
            return Err(HeadError::Closed);
        }
    }
}

/// A malformed chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk size that is not hexadecimal, or too large.
    BadSize,
    /// A chunk-size line longer than we accept.
    LongLine,
    /// The CRLF after a chunk's data is missing.
    NoCrlf,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "bad chunk size",
            ChunkError::LongLine => "chunk size line too long",
            ChunkError::NoCrlf => "no CRLF after a chunk",
        })
    }
}

impl std::error::Error for ChunkError {}

/// An incremental decoder of `Transfer-Encoding: chunked`: a few bytes of state, no buffer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dechunk {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex digits of a size line: the value so far, and whether a digit was seen.
    #[default]
    Size,
    Digits {
        size: usize,
    },
    /// After the digits: extensions or the CR, up to the LF; `len` counts the line.
    SizeRest {
        size: usize,
        len: u16,
    },
    /// This many data bytes to go.
    Data(usize),
    /// Expecting the CR, then the LF, after the data.
    DataCr,
    DataLf,
    /// The last chunk was read (trailers are not read).
    Done,
}

impl Dechunk {
    /// Hands the data bytes of `input` to `out` (as slices of `input`); returns true once the
    /// last (empty) chunk has been read.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> std::result::Result<bool, ChunkError> {
        use ChunkState::*;
        while let Some((&b, rest)) = input.split_first() {
            match self.state {
                Size | Digits { .. } => {
                    let size = match self.state {
                        Digits { size } => size,
                        _ => 0,
                    };
                    match (b as char).to_digit(16) {
                        Some(d) => {
                            let size = size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(d as usize))
                                .ok_or(ChunkError::BadSize)?;
                            self.state = Digits { size };
                        }
                        None if matches!(self.state, Digits { .. }) => {
                            self.state = SizeRest { size, len: 0 };
                            continue; // look at this byte again
                        }
                        None => return Err(ChunkError::BadSize),
                    }
                    input = rest;
                }
                SizeRest { size, len } => {
                    input = rest;
                    if b == b'\n' {
                        self.state = if size == 0 { Done } else { Data(size) };
                    } else if len >= MAX_CHUNK_LINE {
                        return Err(ChunkError::LongLine);
                    } else {
                        self.state = SizeRest { size, len: len + 1 };
                    }
                }
                Data(left) => {
                    let n = left.min(input.len());
                    out(&input[..n]);
                    input = &input[n..];
                    self.state = if n == left { DataCr } else { Data(left - n) };
                }
                DataCr | DataLf => {
                    let want = if self.state == DataCr { b'\r' } else { b'\n' };
                    if b != want {
                        return Err(ChunkError::NoCrlf);
                    }
                    input = rest;
                    self.state = if self.state == DataCr { DataLf } else { Size };
                }
                Done => return Ok(true),
            }
        }
        Ok(self.state == Done)
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
        assert_eq!(head.retry_after, None);
        assert_eq!(&r[head.len..], b"{\"status\":\"ok\"}");
    }

    #[test]
    fn sees_chunked_bodies_and_retry_after() {
        let r = b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\nRetry-After: 4\r\n\r\n";
        let head = parse_head(r).unwrap().unwrap();
        assert!(head.chunked);
        assert_eq!((head.status, head.retry_after), (503, Some(4)));
    }

    #[test]
    fn icecast_status_lines() {
        assert_eq!(
            parse_head(b"HTTP/1.0 200 OK\r\n\r\n")
                .unwrap()
                .unwrap()
                .status,
            200
        );
        assert_eq!(
            parse_head(b"ICY 200 OK\r\n\r\n").unwrap().unwrap().status,
            200
        );
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
        assert_eq!(source_addr_of(300, 1000), Ipv4Addr::new(127, 0, 1, 46));
        assert_eq!(source_addr_of(7, 0), Ipv4Addr::new(127, 0, 0, 2));
        let last = source_addr_of(MAX_SOURCE_ADDRS - 1, usize::MAX);
        assert!(last.is_loopback() && last != Ipv4Addr::new(127, 255, 255, 255));
    }

    fn dechunk_all(d: &mut Dechunk, input: &[u8], out: &mut Vec<u8>) -> Result<bool, ChunkError> {
        d.feed(input, |b| out.extend_from_slice(b))
    }

    #[test]
    fn dechunks_across_reads() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Dechunk::default();
            let mut out = Vec::new();
            let done_a = dechunk_all(&mut d, &wire[..split], &mut out).unwrap();
            let done_b = dechunk_all(&mut d, &wire[split..], &mut out).unwrap();
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(done_b);
            assert!(!done_a || split >= wire.len() - 4, "split at {split}");
        }
    }

    #[test]
    fn bad_chunks_are_errors() {
        let mut out = Vec::new();
        assert_eq!(
            dechunk_all(&mut Dechunk::default(), b"zz\r\n", &mut out),
            Err(ChunkError::BadSize)
        );
        assert_eq!(
            dechunk_all(&mut Dechunk::default(), b"2\r\nabXY", &mut out),
            Err(ChunkError::NoCrlf)
        );
        let huge = b"ffffffffffffffffffffffff\r\n";
        assert_eq!(
            dechunk_all(&mut Dechunk::default(), huge, &mut out),
            Err(ChunkError::BadSize)
        );
        let long = [b"1;".as_slice(), &[b'x'; 2000]].concat();
        assert_eq!(
            dechunk_all(&mut Dechunk::default(), &long, &mut out),
            Err(ChunkError::LongLine)
        );
    }
}
