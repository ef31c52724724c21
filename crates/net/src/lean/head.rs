//! Which path a request takes, from the first bytes of its connection (sans-IO).
//!
//! Only one request is taken off hyper: `GET /spaces/{id}/live.opus` over HTTP/1.x, without a
//! body, for an id a space can have. Everything else — other routes, `HEAD`, percent-encoded or
//! unusual paths, heads longer than [`MAX_HEAD`], anything `httparse` cannot read (garbage, or the
//! HTTP/2 preface) — goes to hyper as it came, so it is answered exactly as before.

/// Most bytes read before deciding. A player's request is 100–300 bytes and a browser's
/// 400–800; a longer head (large cookies) is simply not a lean one.
pub const MAX_HEAD: usize = 2048;

/// Most headers looked at; a head with more goes to hyper (which allows 100).
const MAX_HEADERS: usize = 32;

/// The decision about the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// More bytes are needed (the head is incomplete and within [`MAX_HEAD`]).
    Partial,
    /// Not for the lean path: replay the bytes to hyper.
    Other,
    /// A live.opus listener.
    Live(Live),
    /// A live.opus request followed by more bytes: the stream never ends, so a pipelined request
    /// could never be answered. Refused with 400.
    Pipelined { http10: bool },
}

/// A live.opus request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The space id from the path.
    pub id: String,
    /// The request was HTTP/1.0 (no chunked encoding then).
    pub http10: bool,
    /// The waiting-room ticket and proof of work it brought (query or headers).
    pub pass: tribune_admission::Pass,
    /// Its `X-Forwarded-For` header (for a client behind a trusted proxy).
    pub forwarded_for: Option<String>,
}

/// Classify `buf`, the bytes a connection has sent so far.
pub fn classify(buf: &[u8]) -> Verdict {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        // hyper answers garbage (400), too many headers, or speaks HTTP/2 prior knowledge.
        Err(_) => return Verdict::Other,
        Ok(httparse::Status::Partial) => {
            // Once the request line is in, anything but a live.opus GET goes at once.
            let line_done = req.version.is_some();
            if buf.len() >= MAX_HEAD
                || (line_done && !(req.method == Some("GET") && req.path.is_some_and(is_live)))
            {
                return Verdict::Other;
            }
            return Verdict::Partial;
        }
        Ok(httparse::Status::Complete(len)) => len,
    };
    let (Some("GET"), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Verdict::Other;
    };
    let Some(id) = live_id(path) else {
        return Verdict::Other;
    };
    if req.headers.iter().any(has_body) {
        return Verdict::Other;
    }
    let http10 = version == 0;
    if len < buf.len() {
        return Verdict::Pipelined { http10 };
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .rev()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let query = path.split_once('?').map(|(_, q)| q);
    Verdict::Live(Live {
        id: id.to_owned(),
        http10,
        pass: tribune_admission::Pass::parse(query, header),
        forwarded_for: header("x-forwarded-for").map(str::to_owned),
    })
}

fn is_live(path: &str) -> bool {
    live_id(path).is_some()
}

/// The id of `/spaces/{id}/live.opus` (query ignored), if it is one a space can have
/// (`[A-Za-z0-9_-]{1,64}`, as the server allows for a space).
fn live_id(target: &str) -> Option<&str> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let id = path.strip_prefix("/spaces/")?.strip_suffix("/live.opus")?;
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(id)
}

/// A request header announcing a body (which the lean path does not read).
fn has_body(h: &httparse::Header<'_>) -> bool {
    if h.name.eq_ignore_ascii_case("transfer-encoding") {
        return true;
    }
    h.name.eq_ignore_ascii_case("content-length") && h.value.trim_ascii() != b"0"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(id: &str, http10: bool) -> Verdict {
        Verdict::Live(Live {
            id: id.into(),
            http10,
            pass: Default::default(),
            forwarded_for: None,
        })
    }

    #[test]
    fn the_pass_comes_from_the_query_or_the_headers() {
        let Verdict::Live(l) = classify(
            b"GET /spaces/demo/live.opus?x=1&ticket=7.99.abc HTTP/1.1\r\nTribune-Pow: c:1\r\n\
              X-Forwarded-For: 10.0.0.1\r\n\r\n",
        ) else {
            panic!("not lean")
        };
        assert_eq!(l.pass.ticket.as_deref(), Some("7.99.abc"));
        assert_eq!(l.pass.pow.as_deref(), Some("c:1"));
        assert_eq!(l.forwarded_for.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn a_live_get_is_lean() {
        let v = classify(b"GET /spaces/demo/live.opus HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(v, live("demo", false));
        let v = classify(b"GET /spaces/a_b-9/live.opus?t=1 HTTP/1.0\r\n\r\n");
        assert_eq!(v, live("a_b-9", true));
        let v = classify(b"GET /spaces/x/live.opus HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(v, live("x", false));
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for req in [
            &b"HEAD /spaces/demo/live.opus HTTP/1.1\r\n\r\n"[..],
            b"POST /spaces/demo/live.opus HTTP/1.1\r\n\r\n",
            b"GET /spaces/demo HTTP/1.1\r\n\r\n",
            b"GET /spaces/demo/live.opus/ HTTP/1.1\r\n\r\n",
            b"GET /spaces//live.opus HTTP/1.1\r\n\r\n",
            b"GET /spaces/a/b/live.opus HTTP/1.1\r\n\r\n",
            b"GET /spaces/d%65mo/live.opus HTTP/1.1\r\n\r\n",
            b"GET http://x/spaces/demo/live.opus HTTP/1.1\r\n\r\n",
            b"GET /spaces/demo/live.opus HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /spaces/demo/live.opus HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GARBAGE\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(
                classify(req),
                Verdict::Other,
                "{}",
                String::from_utf8_lossy(req)
            );
        }
        let long_id = format!("GET /spaces/{}/live.opus HTTP/1.1\r\n\r\n", "a".repeat(65));
        assert_eq!(classify(long_id.as_bytes()), Verdict::Other);
    }

    #[test]
    fn other_routes_go_as_soon_as_their_request_line_is_in() {
        assert_eq!(
            classify(b"GET /api/spaces HTTP/1.1\r\nHost"),
            Verdict::Other
        );
        assert_eq!(classify(b"POST /api/spaces HTTP/1.1\r\n"), Verdict::Other);
        assert_eq!(
            classify(b"GET /spaces/x/live.opus HTTP/1.1\r\nHo"),
            Verdict::Partial
        );
        assert_eq!(classify(b"GET /api/spa"), Verdict::Partial);
        assert_eq!(classify(b""), Verdict::Partial);
    }

    #[test]
    fn a_head_split_anywhere_gives_the_same_verdict() {
        let req = b"GET /spaces/demo/live.opus HTTP/1.1\r\nHost: x\r\nUser-Agent: mpv\r\n\r\n";
        for cut in 0..req.len() {
            assert_eq!(classify(&req[..cut]), Verdict::Partial, "cut at {cut}");
        }
        assert_eq!(classify(req), live("demo", false));
    }

    #[test]
    fn long_heads_go_to_hyper() {
        let mut req = b"GET /spaces/demo/live.opus HTTP/1.1\r\nCookie: ".to_vec();
        req.resize(MAX_HEAD, b'a');
        assert_eq!(classify(&req), Verdict::Other);
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        let req = format!("GET /spaces/demo/live.opus HTTP/1.1\r\n{many}\r\n");
        assert_eq!(classify(req.as_bytes()), Verdict::Other);
    }

    #[test]
    fn pipelined_requests_are_refused() {
        let v = classify(b"GET /spaces/x/live.opus HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
        assert_eq!(v, Verdict::Pipelined { http10: false });
    }
}
