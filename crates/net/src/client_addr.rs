//! The client's address behind reverse proxies: the TCP peer, unless the peer is a proxy we
//! trust (`--trusted-proxy`), in which case `X-Forwarded-For` says who the client is.
//!
//! Used where the address matters: address bans of anonymous listeners. Only the proxies'
//! own additions to the header are believed: each trusted proxy appends the address it got the
//! request from, so walking the list from the right, the first address that is not a trusted
//! proxy is the one that connected to our outermost proxy. Everything left of it was written
//! by the client and could be anything.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// The request header reverse proxies append the client's address to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The address to attribute a request to.
///
/// When `peer` is in `trusted`, the client is the rightmost `X-Forwarded-For` entry that is not
/// itself trusted (several header lines count as one list, in order). The peer is the answer
/// when it is not trusted, when the header is absent, when every entry is a trusted proxy, and
/// when the walk meets an entry that is not an IP address (a junk header must not let anyone
/// choose the address we ban). Entries may carry a port (`192.0.2.1:4711`, `[2001:db8::1]:80`).
/// IPv4-mapped IPv6 addresses count as IPv4, on both sides.
pub fn client_ip(trusted: &[IpAddr], peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.to_canonical() == ip);
    if !is_trusted(peer_ip) {
        return peer_ip;
    }
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(list) = value.to_str() else {
            return peer_ip;
        };
        for entry in list.rsplit(',') {
            match parse_entry(entry) {
                Some(ip) if is_trusted(ip) => continue,
                Some(ip) => return ip,
                None => return peer_ip,
            }
        }
    }
    peer_ip
}

/// One `X-Forwarded-For` entry: `IP`, `IPv4:PORT`, `[IPv6]` or `[IPv6]:PORT`, spaces around.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = match entry.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match entry.parse::<SocketAddr>() {
            Ok(sa) => sa.ip(),
            Err(_) => entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))?
                .parse()
                .ok()?,
        },
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    const PEER: &str = "127.0.0.1:5000";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn with_xff(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn client(trusted: &[&str], values: &[&[u8]]) -> IpAddr {
        let trusted: Vec<IpAddr> = trusted.iter().map(|s| ip(s)).collect();
        client_ip(&trusted, PEER.parse().unwrap(), &with_xff(values))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(client(&[], &[b"198.51.100.7"]), ip("127.0.0.1"));
        assert_eq!(client(&["10.0.0.1"], &[b"198.51.100.7"]), ip("127.0.0.1"));
    }

    #[test]
    fn a_trusted_peer_forwards_the_rightmost_untrusted_address() {
        let t = ["127.0.0.1", "10.0.0.2"];
        assert_eq!(client(&t, &[b"198.51.100.7"]), ip("198.51.100.7"));
        // A client-supplied entry on the left is ignored; proxies on the right are skipped.
        assert_eq!(
            client(&t, &[b"203.0.113.9, 198.51.100.7, 10.0.0.2"]),
            ip("198.51.100.7")
        );
        // Several header lines are one list.
        assert_eq!(
            client(&t, &[b"203.0.113.9", b"198.51.100.7", b"10.0.0.2"]),
            ip("198.51.100.7")
        );
        assert_eq!(client(&t, &[b" 2001:db8::5 "]), ip("2001:db8::5"));
        assert_eq!(client(&t, &[b"[2001:db8::5]:443"]), ip("2001:db8::5"));
        assert_eq!(client(&t, &[b"[2001:db8::5]"]), ip("2001:db8::5"));
        assert_eq!(client(&t, &[b"198.51.100.7:4711"]), ip("198.51.100.7"));
        assert_eq!(client(&t, &[b"::ffff:198.51.100.7"]), ip("198.51.100.7"));
    }

    #[test]
    fn no_header_or_only_proxies_fall_back_to_the_peer() {
        let t = ["127.0.0.1", "10.0.0.2"];
        assert_eq!(client(&t, &[]), ip("127.0.0.1"));
        assert_eq!(client(&t, &[b"10.0.0.2, 127.0.0.1"]), ip("127.0.0.1"));
    }

    #[test]
    fn junk_falls_back_to_the_peer() {
        let t = ["127.0.0.1"];
        for junk in [
            &b""[..],
            b"unknown",
            b"198.51.100.7,",
            b"198.51.100.7, , 127.0.0.1",
            b"not an ip",
            b"198.51.100.7 10.0.0.1",
            b"[198.51.100.7",
            b"300.1.1.1",
            b"\xff\xfe",
        ] {
            let text = String::from_utf8_lossy(junk);
            assert_eq!(client(&t, &[junk]), ip("127.0.0.1"), "{text:?}");
        }
        // Junk left of a good entry is never reached.
        assert_eq!(client(&t, &[b"junk, 198.51.100.7"]), ip("198.51.100.7"));
    }

    #[test]
    fn an_ipv4_mapped_peer_is_matched_against_ipv4_proxies() {
        let trusted = [ip("127.0.0.1")];
        let peer: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let got = client_ip(&trusted, peer, &with_xff(&[b"198.51.100.7"]));
        assert_eq!(got, ip("198.51.100.7"));
    }

    proptest! {
        /// Whatever bytes the header holds, the answer is the peer or an address the header
        /// names, and never a trusted proxy unless it is the peer.
        #[test]
        fn any_header_yields_the_peer_or_an_untrusted_forwarded_address(
            values in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        Just(b','), Just(b' '), Just(b'.'), Just(b':'), Just(b'['), Just(b']'),
                        b'0'..=b'9', b'a'..=b'f', 0x21u8..=0x7e,
                    ],
                    0..40,
                ),
                0..4,
            ),
            trust_peer in any::<bool>(),
        ) {
            let trusted: Vec<IpAddr> = if trust_peer {
                vec![ip("127.0.0.1"), ip("10.0.0.1")]
            } else {
                vec![ip("10.0.0.1")]
            };
            let mut headers = HeaderMap::new();
            for v in &values {
                headers.append(X_FORWARDED_FOR, HeaderValue::from_bytes(v).unwrap());
            }
            let got = client_ip(&trusted, PEER.parse().unwrap(), &headers);
            if got != ip("127.0.0.1") {
                prop_assert!(trust_peer, "an untrusted peer is always the client");
                prop_assert!(!trusted.contains(&got));
                let named = values
                    .iter()
                    .flat_map(|v| std::str::from_utf8(v).ok())
                    .flat_map(|s| s.split(','))
                    .any(|e| parse_entry(e) == Some(got));
                prop_assert!(named, "{got} is in the header");
            }
        }

        /// Appending trusted proxies on the right never changes the answer.
        #[test]
        fn trusted_hops_on_the_right_are_skipped(a in any::<[u8; 4]>(), hops in 0usize..5) {
            let client_addr = IpAddr::from(a);
            prop_assume!(client_addr != ip("127.0.0.1") && client_addr != ip("10.0.0.1"));
            let trusted = [ip("127.0.0.1"), ip("10.0.0.1")];
            let mut list = format!("203.0.113.1, {client_addr}");
            for _ in 0..hops {
                list.push_str(", 10.0.0.1");
            }
            let got = client_ip(
                &trusted,
                PEER.parse().unwrap(),
                &with_xff(&[list.as_bytes()]),
            );
            prop_assert_eq!(got, client_addr);
        }
    }
}
