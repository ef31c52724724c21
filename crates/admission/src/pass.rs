//! What a joining listener brings to the door: a waiting-room ticket and a proof of work.

/// What a joining listener brings: a waiting-room ticket (`ticket=` in the query or a
/// `Tribune-Ticket` header) and a proof of work (`pow=` or `Tribune-Pow`). Values are short and
/// URL-safe (`[A-Za-z0-9._:~-]`, at most [`MAX_PASS`] bytes); anything else is ignored, so a
/// bad value is answered as a missing one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    pub ticket: Option<String>,
    pub pow: Option<String>,
    /// `Tribune-Node` (header only): another node of the cluster relaying the stream proves
    /// it is one with the cluster's node credential; the server checks it.
    pub node: Option<String>,
}

/// Longest ticket or proof of work looked at.
pub const MAX_PASS: usize = 256;

impl Pass {
    /// From a query string (without `?`) and a header lookup; the query wins.
    pub fn parse<'a>(query: Option<&'a str>, header: impl Fn(&str) -> Option<&'a str>) -> Pass {
        let from_query = |key: &str| {
            query?
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        };
        let pick = |key: &str, name: &str| {
            from_query(key)
                .or_else(|| header(name))
                .map(str::trim)
                .filter(|v| valid(v))
                .map(str::to_owned)
        };
        Pass {
            ticket: pick("ticket", "tribune-ticket"),
            pow: pick("pow", "tribune-pow"),
            node: header("tribune-node")
                .map(str::trim)
                .filter(|v| valid(v))
                .map(str::to_owned),
        }
    }

    /// From a request's query and headers.
    pub fn from_request(query: Option<&str>, headers: &http::HeaderMap) -> Pass {
        Pass::parse(query, |name| {
            headers.get(name).and_then(|v| v.to_str().ok())
        })
    }
}

fn valid(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_PASS
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_~-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_from_query_and_headers() {
        let none = |_: &str| None;
        let p = Pass::parse(Some("a=1&ticket=12.34.XyZ_-&pow=abc:99"), none);
        assert_eq!(p.ticket.as_deref(), Some("12.34.XyZ_-"));
        assert_eq!(p.pow.as_deref(), Some("abc:99"));
        let h = |n: &str| (n == "tribune-ticket").then_some(" 5.6.q ");
        assert_eq!(Pass::parse(None, h).ticket.as_deref(), Some("5.6.q"));
        // Unsafe or oversized values are ignored.
        assert_eq!(Pass::parse(Some("ticket=a%20b"), none), Pass::default());
        let long = format!("ticket={}", "a".repeat(MAX_PASS + 1));
        assert_eq!(Pass::parse(Some(&long), none), Pass::default());
        assert_eq!(Pass::parse(Some("ticket"), none), Pass::default());
    }

    proptest::proptest! {
        #[test]
        fn pass_parse_never_panics(q in ".{0,300}", h in ".{0,300}") {
            let p = Pass::parse(Some(&q), |_| Some(h.as_str()));
            for v in [p.ticket, p.pow].into_iter().flatten() {
                proptest::prop_assert!(valid(&v));
            }
        }
    }
}
