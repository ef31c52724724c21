//! Challenges and tickets: minting (stateless, HMAC-signed) and checking (one HMAC, one SHA-256).
//!
//! ```text
//! CHALLENGE = "1" "." SPACE "." WINDOW "." BITS "." MAC
//! TICKET    = CHALLENGE ":" NONCE          (the `pow` value, at most 256 bytes)
//! ```
//!
//! - `SPACE`: the space id (`[A-Za-z0-9_-]{1,64}`);
//! - `WINDOW`: the Unix second the challenge's window starts at (a multiple of [`WINDOW_S`]),
//!   decimal without leading zeros;
//! - `BITS`: how many leading zero bits the ticket's SHA-256 needs, decimal;
//! - `MAC`: 32 lowercase hex digits, the first 16 bytes of HMAC-SHA256(server secret, space,
//!   window, bits): only the server mints challenges, and only it can check them;
//! - `NONCE`: 1 to [`MAX_NONCE`] characters of `[A-Za-z0-9_-]`, chosen by the client.
//!
//! A ticket is solved when SHA-256 of its ASCII bytes (the whole `CHALLENGE:NONCE` string)
//! starts with `BITS` zero bits, most significant bit of the first byte first. A ticket is
//! accepted while its window is the current one or the one before (so for 60 to 120 s).
//!
//! Everything here is pure: the time is an argument, nothing is remembered (the replay set
//! that makes a ticket single-use is [`super::replay`]).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Length of a challenge window, seconds. Every client of a space in a window gets the same
/// challenge (so an edge can cache it); a minute keeps the replay set of one window small while
/// leaving a slow phone ample time to solve.
pub const WINDOW_S: u64 = 60;

/// Longest nonce a client may choose: room for a random start and a counter.
pub const MAX_NONCE: usize = 32;

/// Longest ticket (the `pow` value's limit in [`crate::Pass`]).
pub const MAX_TICKET: usize = 256;

/// Bytes of the HMAC kept in a challenge: 128 bits cannot be guessed.
const MAC_BYTES: usize = 16;

/// The version prefix of this format.
const VERSION: &str = "1";

/// Domain separation: the server secret also signs tokens and waiting-room tickets.
const DOMAIN: &[u8] = b"tribune-shield-v1";

type HmacSha256 = Hmac<Sha256>;

/// The start of the window `now_s` falls in.
pub fn window_of(now_s: u64) -> u64 {
    now_s - now_s % WINDOW_S
}

/// Why a ticket is not accepted (all of them are `proof_of_work_invalid` to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the proof of work is not a ticket (CHALLENGE:NONCE)")]
    Malformed,
    #[error("the ticket is for another space")]
    OtherSpace,
    #[error("the ticket's challenge has expired")]
    Expired,
    #[error("the ticket's challenge is from the future")]
    Future,
    #[error("the ticket's challenge asks for another difficulty")]
    WrongBits,
    #[error("the ticket's challenge was not issued by this server")]
    BadSignature,
    #[error("the ticket does not solve its challenge")]
    Unsolved,
}

/// A ticket that solves a genuine, current challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solved {
    /// The window of its challenge.
    pub window: u64,
    /// 64 bits of its SHA-256 (past the zero bits): its identity in the replay set.
    pub key: u64,
}

/// The parts of a well-formed ticket, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    pub space: &'a str,
    pub window: u64,
    pub bits: u32,
    pub mac: [u8; MAC_BYTES],
    pub nonce: &'a str,
}

/// Splits a ticket into its parts; `None` unless it is exactly of the documented form
/// (canonical decimals, lowercase hex), so there is one spelling per ticket.
pub fn parse(ticket: &str) -> Option<Parts<'_>> {
    if ticket.len() > MAX_TICKET {
        return None;
    }
    let (challenge, nonce) = ticket.split_once(':')?;
    if nonce.is_empty()
        || nonce.len() > MAX_NONCE
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let mut it = challenge.split('.');
    let (version, space, window, bits, mac) =
        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || version != VERSION || !is_space_id(space) {
        return None;
    }
    let window = decimal(window)?;
    let bits = u32::try_from(decimal(bits)?).ok()?;
    Some(Parts {
        space,
        window,
        bits,
        mac: unhex(mac)?,
        nonce,
    })
}

fn is_space_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A canonical unsigned decimal (no sign, no leading zero), up to 20 digits.
fn decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

fn unhex(s: &str) -> Option<[u8; MAC_BYTES]> {
    let s = s.as_bytes();
    if s.len() != 2 * MAC_BYTES {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; MAC_BYTES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(s[2 * i])? << 4 | nibble(s[2 * i + 1])?;
    }
    Some(out)
}

/// Leading zero bits of a digest.
pub fn leading_zero_bits(d: &[u8]) -> u32 {
    let mut n = 0;
    for &b in d {
        if b != 0 {
            return n + b.leading_zeros();
        }
        n += 8;
    }
    n
}

/// Mints and checks challenges with the server's secret.
#[derive(Clone)]
pub struct Signer {
    /// Keyed once; cloned per use (saves hashing the key on every check).
    keyed: HmacSha256,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        // HMAC takes keys of any length: this cannot fail.
        let keyed = <HmacSha256 as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        Signer { keyed }
    }

    fn mac(&self, space: &str, window: u64, bits: u32) -> HmacSha256 {
        let mut m = self.keyed.clone();
        m.update(DOMAIN);
        m.update(&[0]);
        m.update(space.as_bytes());
        m.update(&[0]);
        m.update(&window.to_be_bytes());
        m.update(&bits.to_be_bytes());
        m
    }

    /// The challenge of `space` for the window `now_s` falls in.
    pub fn challenge(&self, space: &str, now_s: u64, bits: u32) -> String {
        let window = window_of(now_s);
        let tag = self.mac(space, window, bits).finalize().into_bytes();
        let mut s = format!("{VERSION}.{space}.{window}.{bits}.");
        for b in &tag[..MAC_BYTES] {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// Checks `ticket` for `space` at `now_s` with the configured difficulty `bits`: form,
    /// space, window, difficulty, signature (constant-time) and the proof of work itself.
    pub fn verify(
        &self,
        ticket: &str,
        space: &str,
        bits: u32,
        now_s: u64,
    ) -> Result<Solved, Invalid> {
        let p = parse(ticket).ok_or(Invalid::Malformed)?;
        if p.space != space {
            return Err(Invalid::OtherSpace);
        }
        let current = window_of(now_s);
        if p.window > current {
            return Err(Invalid::Future);
        }
        if p.window % WINDOW_S != 0 || current - p.window > WINDOW_S {
            return Err(Invalid::Expired);
        }
        if p.bits != bits {
            return Err(Invalid::WrongBits);
        }
        self.mac(space, p.window, p.bits)
            .verify_truncated_left(&p.mac)
            .map_err(|_| Invalid::BadSignature)?;
        let digest = Sha256::digest(ticket.as_bytes());
        if leading_zero_bits(&digest) < bits {
            return Err(Invalid::Unsolved);
        }
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[24..32]);
        Ok(Solved {
            window: p.window,
            key: u64::from_le_bytes(key),
        })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A reference solver (tests and benchmarks; clients use `tribune_client::pow`).
pub fn solve(challenge: &str, bits: u32, start: u64) -> String {
    (start..)
        .map(|n| format!("{challenge}:{n}"))
        .find(|t| leading_zero_bits(&Sha256::digest(t.as_bytes())) >= bits)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_050;

    fn signer() -> Signer {
        Signer::new(b"secret")
    }

    #[test]
    fn the_format_is_as_documented() {
        let c = signer().challenge("room_1", NOW, 8);
        let parts: Vec<&str> = c.split('.').collect();
        assert_eq!(parts[..4], ["1", "room_1", "1700000040", "8"]);
        assert_eq!(parts[4].len(), 32);
        assert!(parts[4].bytes().all(|b| HEX.contains(&b)));
        // Within the alphabet of a `pow` value.
        let t = solve(&c, 8, 0);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:~-".contains(&b))
        );
    }

    #[test]
    fn a_solved_ticket_verifies_in_its_window_and_the_next() {
        let s = signer();
        let t = solve(&s.challenge("a", NOW, 8), 8, 0);
        assert!(s.verify(&t, "a", 8, NOW).is_ok());
        assert!(s.verify(&t, "a", 8, NOW + WINDOW_S).is_ok());
        assert_eq!(
            s.verify(&t, "a", 8, NOW + 2 * WINDOW_S),
            Err(Invalid::Expired)
        );
        assert_eq!(s.verify(&t, "a", 8, NOW - WINDOW_S), Err(Invalid::Future));
    }

    #[test]
    fn bound_to_space_difficulty_and_secret() {
        let s = signer();
        let t = solve(&s.challenge("a", NOW, 8), 8, 0);
        assert_eq!(s.verify(&t, "b", 8, NOW), Err(Invalid::OtherSpace));
        assert_eq!(s.verify(&t, "a", 9, NOW), Err(Invalid::WrongBits));
        let other = Signer::new(b"another secret");
        assert_eq!(other.verify(&t, "a", 8, NOW), Err(Invalid::BadSignature));
        // A challenge edited to another space (or window) loses its signature.
        let forged = t.replacen(".a.", ".b.", 1);
        assert_eq!(s.verify(&forged, "b", 8, NOW), Err(Invalid::BadSignature));
    }

    #[test]
    fn unsolved_and_malformed_tickets_are_refused() {
        let s = signer();
        let c = s.challenge("a", NOW, 16);
        // Find a nonce that does not solve it (almost every one).
        let bad = (0..)
            .map(|n| format!("{c}:{n}"))
            .find(|t| leading_zero_bits(&Sha256::digest(t.as_bytes())) < 16)
            .unwrap();
        assert_eq!(s.verify(&bad, "a", 16, NOW), Err(Invalid::Unsolved));
        for m in [
            "",
            ":",
            "abc",
            &format!("{c}:"),
            &format!("{c}:1:2"),
            &format!("{c}:{}", "1".repeat(MAX_NONCE + 1)),
            &format!("{c}.x:1"),
            &c.replacen("1.", "2.", 1),
            &format!("{}:1", c.to_uppercase()),
            &format!("{}:1", c.replacen(".1700000040.", ".01700000040.", 1)),
            &format!("{}:1", c.replacen(".16.", ".+16.", 1)),
        ] {
            assert_eq!(s.verify(m, "a", 16, NOW), Err(Invalid::Malformed), "{m}");
        }
    }

    #[test]
    fn leading_zeros() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x80]), 16);
        assert_eq!(leading_zero_bits(&[0, 0x0f]), 12);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
    }

    proptest::proptest! {
        /// Any string: no panic, and only a ticket that really solves a genuine challenge of
        /// this space, window and difficulty is accepted.
        #[test]
        fn arbitrary_values_never_panic(v in "[A-Za-z0-9._:~-]{0,300}") {
            let s = signer();
            if let Ok(ok) = s.verify(&v, "a", 1, NOW) {
                let p = parse(&v).unwrap();
                proptest::prop_assert_eq!(p.space, "a");
                proptest::prop_assert_eq!(ok.window, window_of(NOW));
                proptest::prop_assert!(v.starts_with(&s.challenge("a", NOW, 1)));
            }
        }

        /// A genuine ticket with one byte changed in its challenge is never accepted; with one
        /// changed in its nonce only if the new one happens to solve the challenge too.
        #[test]
        fn only_exact_tickets_verify(i in 0usize..200, c in proptest::char::range('!', '~')) {
            let s = signer();
            let ch = s.challenge("a", NOW, 8);
            let t = solve(&ch, 8, 1000);
            let i = i % t.len();
            let mut m = t.clone().into_bytes();
            m[i] = c as u8;
            let m = String::from_utf8(m).unwrap();
            let r = s.verify(&m, "a", 8, NOW);
            if m == t {
                proptest::prop_assert!(r.is_ok());
            } else if i < ch.len() {
                proptest::prop_assert!(r.is_err(), "{m}");
            } else {
                let solves = parse(&m).is_some()
                    && leading_zero_bits(&Sha256::digest(m.as_bytes())) >= 8;
                proptest::prop_assert_eq!(r.is_ok(), solves, "{}", m);
            }
        }
    }
}
