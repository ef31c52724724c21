//! The waiting room in front of a full node (sans-IO: time and free places are arguments).
//!
//! When a node has its maximum of live.opus listeners, a newcomer is not just told "full": it
//! gets a numbered ticket, its position, and a jittered time to come back. Places that free up
//! go to tickets in the order they were given out:
//!
//! - `issued` counts the tickets given out, `cursor` the ones called so far;
//! - when places are free beyond those already promised, the next tickets are *called*: each is
//!   promised a place for [`CLAIM_WINDOW_S`] (long enough for its holder's `Retry-After`);
//! - a called ticket brought back in time takes its place; one not brought back loses it, and
//!   the place goes to the next ticket;
//! - a newcomer without a ticket gets in directly only when nobody is waiting and places are
//!   free beyond the promised ones, so it never jumps the queue.
//!
//! Tickets are `n.expiry.mac` (an HMAC over both with the server's secret), so a client cannot
//! make up a better number; a ticket not brought back before its expiry is simply forgotten. The
//! room's memory is O(promised places), never O(waiting crowd): those who wait hold only their
//! ticket.

use std::collections::VecDeque;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a called ticket keeps its place, seconds (above the longest `Retry-After`).
pub const CLAIM_WINDOW_S: u64 = 45;

/// The longest wait asked of anyone, seconds.
pub const MAX_RETRY_S: u64 = 30;

/// How long a ticket stays valid when not called yet, seconds: a holder must come back before
/// then (each answer gives out a fresh one with the same number).
pub const TICKET_TTL_S: u64 = 120;

/// What the room says to someone at the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Door {
    /// Come in (the caller then counts the listener in).
    Enter,
    /// Wait: `position` (1 = next), come back in `retry_after_s` with `ticket`.
    Wait {
        ticket: String,
        position: u64,
        retry_after_s: u64,
    },
}

/// The room.
pub struct WaitingRoom {
    key: Vec<u8>,
    issued: u64,
    cursor: u64,
    /// Called tickets not yet brought back: (number, deadline).
    called: VecDeque<(u64, u64)>,
    /// Entries over the last minute: how fast the queue moves.
    entered: crate::LastMinute,
}

type HmacSha256 = Hmac<Sha256>;

impl WaitingRoom {
    /// A room whose tickets are signed with `secret`.
    pub fn new(secret: &[u8]) -> WaitingRoom {
        WaitingRoom {
            key: secret.to_vec(),
            issued: 0,
            cursor: 0,
            called: VecDeque::new(),
            entered: Default::default(),
        }
    }

    /// Tickets given out and not called yet.
    pub fn waiting(&self) -> u64 {
        self.issued - self.cursor
    }

    /// Whether `ticket` is one of ours whose place is being held for it now (called, not yet
    /// used).
    pub fn is_called(&self, ticket: &str, now_s: u64) -> bool {
        self.verify(ticket, now_s)
            .is_some_and(|n| self.called.iter().any(|&(m, d)| m == n && d > now_s))
    }

    /// Someone at the door at `now_s`, with a ticket or not, while `free` places are open.
    /// `jitter` in 0..1 spreads the times given out.
    pub fn door(&mut self, now_s: u64, ticket: Option<&str>, free: u64, jitter: f64) -> Door {
        let door = self.open(now_s, ticket, free, jitter);
        if door == Door::Enter {
            self.entered.add(now_s);
        }
        door
    }

    fn open(&mut self, now_s: u64, ticket: Option<&str>, free: u64, jitter: f64) -> Door {
        self.call(now_s, free);
        let promised = self.called.len() as u64;
        match ticket.and_then(|t| self.verify(t, now_s)) {
            Some(n) if n < self.cursor => {
                if let Some(i) = self.called.iter().position(|&(m, _)| m == n) {
                    self.called.remove(i);
                    return Door::Enter;
                }
                // Called, but it came back too late: it may still take a place nobody holds.
                if free > promised && self.waiting() == 0 {
                    return Door::Enter;
                }
                let n = self.issue();
                self.wait(n, now_s, jitter)
            }
            // Still queued: same number, fresh expiry.
            Some(n) if n < self.issued => self.wait(n, now_s, jitter),
            _ => {
                if self.waiting() == 0 && free > promised {
                    return Door::Enter;
                }
                let n = self.issue();
                self.wait(n, now_s, jitter)
            }
        }
    }

    /// Calls the next tickets while places are free beyond those promised, and forgets calls
    /// that expired.
    fn call(&mut self, now_s: u64, free: u64) {
        while self.called.front().is_some_and(|&(_, d)| d <= now_s) {
            self.called.pop_front();
        }
        while (self.called.len() as u64) < free && self.cursor < self.issued {
            self.called.push_back((self.cursor, now_s + CLAIM_WINDOW_S));
            self.cursor += 1;
        }
    }

    fn issue(&mut self) -> u64 {
        self.issued += 1;
        self.issued - 1
    }

    fn wait(&mut self, n: u64, now_s: u64, jitter: f64) -> Door {
        let position = if n < self.cursor {
            1
        } else {
            n - self.cursor + 1
        };
        // At the rate people got in over the last minute (at least one every 10 s), plus jitter
        // so that those told together do not come back together.
        let per_s = (self.entered.sum(now_s) as f64 / 60.0).max(0.1);
        let base = (position as f64 / per_s).clamp(2.0, MAX_RETRY_S as f64 - 4.0);
        let retry_after_s = (base + 4.0 * jitter.clamp(0.0, 1.0)).round() as u64;
        Door::Wait {
            ticket: self.sign(n, now_s + TICKET_TTL_S),
            position,
            retry_after_s: retry_after_s.clamp(2, MAX_RETRY_S),
        }
    }

    fn mac(&self, n: u64, exp: u64) -> HmacSha256 {
        // new_from_slice accepts any key length.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(b"tribune waiting room\0");
        mac.update(&n.to_be_bytes());
        mac.update(&exp.to_be_bytes());
        mac
    }

    fn sign(&self, n: u64, exp: u64) -> String {
        let tag = self.mac(n, exp).finalize().into_bytes();
        format!("{n}.{exp}.{}", hex(&tag[..12]))
    }

    /// The ticket's number, if it is ours and not expired.
    fn verify(&self, ticket: &str, now_s: u64) -> Option<u64> {
        let mut parts = ticket.splitn(3, '.');
        let n: u64 = parts.next()?.parse().ok()?;
        let exp: u64 = parts.next()?.parse().ok()?;
        let tag = unhex(parts.next()?)?;
        if exp <= now_s || tag.len() != 12 {
            return None;
        }
        self.mac(n, exp).verify_truncated_left(&tag).ok()?;
        Some(n)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(d: Door) -> (String, u64, u64) {
        match d {
            Door::Wait {
                ticket,
                position,
                retry_after_s,
            } => (ticket, position, retry_after_s),
            Door::Enter => panic!("expected to wait"),
        }
    }

    #[test]
    fn enters_while_there_is_room() {
        let mut r = WaitingRoom::new(b"k");
        assert_eq!(r.door(100, None, 3, 0.5), Door::Enter);
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn queues_in_order_and_calls_the_first_ticket_first() {
        let mut r = WaitingRoom::new(b"k");
        let (t1, p1, _) = wait(r.door(100, None, 0, 0.0));
        let (t2, p2, _) = wait(r.door(100, None, 0, 0.0));
        assert_eq!((p1, p2), (1, 2));
        assert_eq!(r.waiting(), 2);
        // One place frees: a newcomer without a ticket does not jump the queue...
        let (_, p3, _) = wait(r.door(101, None, 1, 0.0));
        assert_eq!(p3, 2, "ticket 1 is called, ticket 2 is next, then this one");
        // ...the second ticket still waits, the first gets in.
        let (_, p2b, _) = wait(r.door(102, Some(&t2), 1, 0.0));
        assert_eq!(p2b, 1);
        assert_eq!(r.door(102, Some(&t1), 1, 0.0), Door::Enter);
        // The place is taken: the second stays first in line.
        let (_, p2c, _) = wait(r.door(103, Some(&t2), 0, 0.0));
        assert_eq!(p2c, 1);
    }

    #[test]
    fn only_a_called_ticket_is_called_and_only_once() {
        let mut r = WaitingRoom::new(b"k");
        let (t1, _, _) = wait(r.door(100, None, 0, 0.0));
        let (t2, _, _) = wait(r.door(100, None, 0, 0.0));
        assert!(!r.is_called(&t1, 100), "nothing free yet");
        // A place frees: the first is called (on anyone's visit), the second is not.
        let _ = r.door(101, Some(&t2), 1, 0.0);
        assert!(r.is_called(&t1, 101));
        assert!(!r.is_called(&t2, 101));
        assert!(!r.is_called("0.999.00", 101), "a forgery is never called");
        assert_eq!(r.door(101, Some(&t1), 1, 0.0), Door::Enter);
        assert!(!r.is_called(&t1, 102), "used once");
    }

    #[test]
    fn a_called_ticket_not_claimed_in_time_passes_its_place_on() {
        let mut r = WaitingRoom::new(b"k");
        let (_t1, _, _) = wait(r.door(100, None, 0, 0.0));
        let (t2, _, _) = wait(r.door(100, None, 0, 0.0));
        // A place frees; ticket 1 is called but never comes back.
        let (_, p, _) = wait(r.door(101, Some(&t2), 1, 0.0));
        assert_eq!(p, 1);
        let later = 101 + CLAIM_WINDOW_S;
        assert_eq!(r.door(later, Some(&t2), 1, 0.0), Door::Enter);
    }

    #[test]
    fn forged_or_expired_tickets_are_new_arrivals() {
        let mut r = WaitingRoom::new(b"k");
        let (_a, _, _) = wait(r.door(100, None, 0, 0.0));
        let (b, _, _) = wait(r.door(100, None, 0, 0.0));
        // Forge a better number with b's tag.
        let forged = format!("0.{}", b.split_once('.').unwrap().1);
        let (_, p, _) = wait(r.door(101, Some(&forged), 0, 0.0));
        assert_eq!(p, 3, "a forged ticket is treated as none");
        let other = WaitingRoom::new(b"other");
        let (_, p, _) = wait(r.door(101, Some(&other.sign(0, 999)), 0, 0.0));
        assert_eq!(p, 4);
        let (_, p, _) = wait(r.door(100 + TICKET_TTL_S + 1, Some(&b), 0, 0.0));
        assert_eq!(p, 5, "an expired ticket is treated as none");
        for junk in ["", "1", "1.2", "x.y.z", "1.2.zz", "1.99999999999.0011"] {
            assert!(matches!(r.door(101, Some(junk), 0, 0.0), Door::Wait { .. }));
        }
    }

    #[test]
    fn retry_after_is_bounded_and_grows_with_position() {
        let mut r = WaitingRoom::new(b"k");
        let mut last = 0;
        for i in 0..200 {
            let (_, p, s) = wait(r.door(100, None, 0, 0.0));
            assert_eq!(p, i + 1);
            assert!((2..=MAX_RETRY_S).contains(&s));
            assert!(s >= last);
            last = s;
        }
        assert_eq!(last, MAX_RETRY_S - 4, "capped (before jitter)");
    }

    proptest::proptest! {
        /// Whatever the arrivals and departures, nobody enters while places are promised to
        /// others beyond what is free, and memory stays bounded by the places.
        #[test]
        fn never_admits_more_than_free(ops in proptest::collection::vec((0u8..3, 0u64..4), 1..300)) {
            let mut r = WaitingRoom::new(b"k");
            let mut now = 1000;
            let mut inside: u64 = 0;
            let cap = 5u64;
            let mut tickets: Vec<String> = Vec::new();
            for (op, arg) in ops {
                now += arg;
                match op {
                    0 if inside > 0 => inside -= 1,
                    1 => {
                        let t = tickets.pop();
                        match r.door(now, t.as_deref(), cap - inside, 0.5) {
                            Door::Enter => inside += 1,
                            Door::Wait { ticket, .. } => tickets.insert(0, ticket),
                        }
                    }
                    _ => match r.door(now, None, cap - inside, 0.5) {
                        Door::Enter => inside += 1,
                        Door::Wait { ticket, .. } => tickets.push(ticket),
                    },
                }
                proptest::prop_assert!(inside <= cap);
                proptest::prop_assert!(r.called.len() as u64 <= cap);
            }
        }
    }
}
