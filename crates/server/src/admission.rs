//! Admission of listeners to this node: the listener cap and what it turned away.
//!
//! A node serves at most `max_listeners` live.opus listeners (the open-file limit minus a reserve
//! for control traffic, so the audience can never take the descriptors the host and speakers
//! need). Past the cap a new listener gets `503` with a jittered `Retry-After` and a `Link` to the
//! space's HLS playlist (which edges and CDNs serve). Each space counts whom it turned away in
//! the last minute, so its host sees the room is under load.

use std::time::{SystemTime, UNIX_EPOCH};

/// Events in the last 60 seconds, in one-second buckets (sans-IO: time is an argument).
#[derive(Debug)]
pub struct LastMinute {
    buckets: [u32; 60],
    /// The second the newest bucket stands for.
    at: u64,
}

impl Default for LastMinute {
    fn default() -> Self {
        LastMinute {
            buckets: [0; 60],
            at: 0,
        }
    }
}

impl LastMinute {
    /// Counts one event at `now_s` (Unix seconds).
    pub fn add(&mut self, now_s: u64) {
        self.add_n(now_s, 1);
    }

    /// Counts `n` events at `now_s`.
    pub fn add_n(&mut self, now_s: u64, n: u64) {
        self.advance(now_s);
        let i = (now_s % 60) as usize;
        self.buckets[i] = self.buckets[i].saturating_add(n.min(u32::MAX as u64) as u32);
    }

    /// Events in the 60 seconds up to `now_s`.
    pub fn sum(&mut self, now_s: u64) -> u64 {
        self.advance(now_s);
        self.buckets.iter().map(|&b| b as u64).sum()
    }

    fn advance(&mut self, now_s: u64) {
        if now_s <= self.at {
            return;
        }
        let gap = (now_s - self.at).min(60);
        for k in 1..=gap {
            self.buckets[((self.at + k) % 60) as usize] = 0;
        }
        self.at = now_s;
    }
}

/// What a joining listener brings: a waiting-room ticket (`ticket=` in the query or a
/// `Tribune-Ticket` header) and a proof of work (`pow=` or `Tribune-Pow`). Values are short and
/// URL-safe (`[A-Za-z0-9._:~-]`, at most [`MAX_PASS`] bytes); anything else is ignored, so a
/// bad value is answered as a missing one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    pub ticket: Option<String>,
    pub pow: Option<String>,
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
        }
    }

    /// From an axum request's query and headers.
    pub fn from_request(query: Option<&str>, headers: &axum::http::HeaderMap) -> Pass {
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

/// The key per-address limits count a client under: its IPv4 address, or for IPv6 its /64
/// (one subscriber's network: a client picks any of its 2^64 addresses at will, so counting
/// whole addresses would count nothing).
pub fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Unix seconds now.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds a refused listener should wait: 2 to 6, at random, so that a crowd turned away
/// together does not come back together.
pub fn retry_after_s() -> u64 {
    2 + rand::random::<u64>() % 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_minute_only() {
        let mut m = LastMinute::default();
        m.add(1000);
        m.add(1000);
        m.add(1030);
        assert_eq!(m.sum(1030), 3);
        assert_eq!(m.sum(1059), 3);
        assert_eq!(m.sum(1060), 1, "the two at 1000 are a minute old");
        assert_eq!(m.sum(1090), 0);
        m.add(5000);
        assert_eq!(m.sum(5000), 1, "a long gap clears every bucket");
        // A clock that steps back does not lose or double-count.
        m.add(4990);
        assert_eq!(m.sum(5000), 2);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(address_key(v4), v4);
        let mapped: std::net::IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
    }

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

    #[test]
    fn retry_after_is_jittered_within_bounds() {
        let seen: std::collections::BTreeSet<u64> = (0..500).map(|_| retry_after_s()).collect();
        assert!(seen.iter().all(|s| (2..=6).contains(s)));
        assert!(seen.len() > 1);
    }
}
