//! Proof of work for tribune's shield: turns a challenge into a ticket.
//!
//! While a node's shield is on, a new listener (`POST /api/spaces/{id}/join` without a token,
//! `GET /spaces/{id}/live.opus`) is refused with `403 proof_of_work_required` and a
//! `challenge` object; `GET /api/spaces/{id}/challenge` gives the same one. The rule:
//!
//! > find a NONCE of 1 to 32 characters of `[A-Za-z0-9_-]` such that
//! > `SHA-256(CHALLENGE ":" NONCE)` — over the ASCII bytes — starts with `bits` zero bits
//! > (most significant bit of the first byte first), and send `CHALLENGE:NONCE` as `pow=` in
//! > the query or as the `Tribune-Pow` header.
//!
//! A ticket is accepted once, for its space, within 60 to 120 s of its challenge. The
//! challenge is the same for every client of a space for a minute, so [`solve`] counts from a
//! random number (two clients counting from 0 would find the same ticket).
//!
//! It costs about 2^`bits` hashes on average (a geometric distribution: the median is 0.69×,
//! one in ten needs 2.3×); `tribune-bench pow` measures it.

use std::hash::BuildHasher;

use sha2::{Digest, Sha256};

/// Solves `challenge` for `bits` leading zero bits, counting from a random nonce, and returns
/// the whole `pow` value (`CHALLENGE:NONCE`, NONCE in decimal).
///
/// CPU-bound (a few hundred milliseconds at a server's default difficulty): from async code,
/// call it inside `tokio::task::spawn_blocking`. `bits` above 64 would never finish in practice.
pub fn solve(challenge: &str, bits: u32) -> String {
    // A random start without a random number crate: std's per-process random hash keys.
    let start =
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    solve_from(challenge, bits, start >> 1)
}

/// [`solve`] counting from `start` (deterministic: for tests and benchmarks).
pub fn solve_from(challenge: &str, bits: u32, start: u64) -> String {
    let mut prefix = Sha256::new();
    prefix.update(challenge.as_bytes());
    prefix.update(b":");
    let mut digits = [0u8; 20];
    let mut n = start;
    loop {
        let d = decimal(n, &mut digits);
        let mut h = prefix.clone();
        h.update(d);
        if leading_zero_bits(&h.finalize()) >= bits {
            let mut t = String::with_capacity(challenge.len() + 1 + d.len());
            t.push_str(challenge);
            t.push(':');
            t.push_str(std::str::from_utf8(d).unwrap_or_default());
            return t;
        }
        n = n.wrapping_add(1);
    }
}

/// Whether `ticket` (`CHALLENGE:NONCE`) has `bits` leading zero bits. The server also checks
/// the challenge's signature, space and window; this only checks the work.
pub fn is_solved(ticket: &str, bits: u32) -> bool {
    leading_zero_bits(&Sha256::digest(ticket.as_bytes())) >= bits
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

/// `n` in decimal, in the tail of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "1.room.1700000000.8.00112233445566778899aabbccddeeff";

    #[test]
    fn solves_with_a_decimal_nonce() {
        let t = solve_from(C, 8, 0);
        let nonce = t.strip_prefix(&format!("{C}:")).unwrap();
        assert!(nonce.bytes().all(|b| b.is_ascii_digit()));
        assert!(is_solved(&t, 8));
        // The first solution from 0: no smaller nonce solves it.
        let n: u64 = nonce.parse().unwrap();
        assert!((0..n).all(|k| !is_solved(&format!("{C}:{k}"), 8)));
    }

    #[test]
    fn random_starts_differ() {
        assert_ne!(solve(C, 4), solve(C, 4));
    }

    #[test]
    fn decimals() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(1907, &mut b), b"1907");
        assert_eq!(decimal(u64::MAX, &mut b), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn zero_bits() {
        // SHA-256("abc") = ba7816bf...
        assert_eq!(leading_zero_bits(&Sha256::digest(b"abc")), 0);
        assert_eq!(leading_zero_bits(&[0, 0x10]), 11);
    }
}
