//! Shield mode: under attack, a new listener must bring a proof-of-work ticket.
//!
//! While the shield is on, a *new* listener — an anonymous `POST /api/spaces/{id}/join`
//! without a token, or a `GET /spaces/{id}/live.opus` — is let in only with a ticket that cost
//! its client a few hundred milliseconds of CPU and costs the server under a microsecond to
//! check. Listeners already in are untouched: open streams keep flowing, and renewing a
//! join token with a valid token needs no ticket. HLS is deliberately not gated: it is shared,
//! cacheable bytes served by edges and HTTP caches, so a flood of it lands on the caches, not
//! on per-listener work at the origin.
//!
//! # The protocol (implementable in any language)
//!
//! 1. Get a challenge: `GET /api/spaces/{id}/challenge` answers
//!    `{"challenge": "1.SPACE.WINDOW.BITS.MAC", "bits": BITS, "expires_s": S, "shield": bool}`
//!    (cacheable for 5 s, the same for every client of a space in a 60-second window). A
//!    refusal `403 proof_of_work_required` carries the same object as its `challenge` field.
//! 2. Solve it: find a NONCE of 1 to 32 characters of `[A-Za-z0-9_-]` such that
//!    `SHA-256(CHALLENGE ":" NONCE)` — the ASCII bytes of the ticket — starts with `BITS` zero
//!    bits (most significant bit of the first byte first). Start from a random NONCE (e.g. a
//!    random 64-bit number, counting up in decimal): the challenge is shared, and two clients
//!    counting from 0 would find the same ticket, which is accepted once.
//! 3. Send `CHALLENGE:NONCE` as the `pow` query parameter or the `Tribune-Pow` header, within
//!    `expires_s` seconds (a ticket is valid in its window and the next, 60 to 120 s).
//!
//! The answers: `proof_of_work_required` (none sent), `proof_of_work_invalid` (malformed, for
//! another space, expired, not signed by this server, or not solved) and
//! `proof_of_work_reused` (accepted once already) — all `403` with a fresh `challenge` — and
//! `503 overloaded` with `Retry-After` if the window's replay memory is full (see
//! [`replay::MAX_PER_WINDOW`]). The ticket format is in [`ticket`].
//!
//! # When it is on
//!
//! `--shield on|off` forces it; `auto` (the default) turns it on when this node counts more
//! than `--shield-joins-per-s` join attempts in one second (admitted or not, see
//! [`Shield::note_join`]) and off after [`switch::CALM_S`] seconds without such a second. The
//! operator changes the mode at runtime with `POST /api/admin/shield`.
//!
//! # Cost
//!
//! [`Shield::check`] with the shield off is a few relaxed atomic loads (5 ns). With it on:
//! parsing without allocation, one HMAC-SHA256 (keyed once at start), one SHA-256 of at most
//! 256 bytes, and one insert under one of 16 shard locks: about 0.4 µs for an accepted
//! ticket, 0.9 µs for a refused one (its answer carries a freshly minted challenge), as
//! measured by `tribune-bench pow`. Nothing here reads the clock: time is an argument.

pub mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use serde::Serialize;
use serde_json::json;

use crate::config::{self, ShieldMode};
use crate::refusal::{Reason, Refusal};
use tribune_metrics::Metrics;

use tribune_admission::pow::replay::{Replay, Seen};
use tribune_admission::pow::switch::{Change, Switch};
use tribune_admission::pow::ticket::{self, Invalid, Signer, WINDOW_S};

/// The default difficulty (`--shield-bits`): about 2 million hashes on average. Measured with
/// `tribune-bench pow` on the 2-core development machine (SHA-NI), a native client solves it in
/// about 0.2 s on average, the web app in Chromium (a Worker) in about 0.6 s. Each bit doubles
/// that; the server's check stays about a microsecond whatever the difficulty.
pub const DEFAULT_BITS: u32 = 21;

/// A challenge as clients receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Challenge {
    /// `1.SPACE.WINDOW.BITS.MAC`: append `:NONCE` to make a ticket.
    pub challenge: String,
    /// Leading zero bits the ticket's SHA-256 needs.
    pub bits: u32,
    /// Seconds from now the ticket stays accepted (60 to 120; up to 5 less when the answer
    /// came from a cache).
    pub expires_s: u64,
}

/// The node's shield.
pub struct Shield {
    bits: u32,
    signer: Signer,
    /// The operator's choice: [`ShieldMode`] as `u8` (changed at runtime).
    mode: AtomicU8,
    switch: Switch,
    replay: Replay,
    metrics: Arc<Metrics>,
}

fn mode_to_u8(m: ShieldMode) -> u8 {
    match m {
        ShieldMode::Auto => 0,
        ShieldMode::On => 1,
        ShieldMode::Off => 2,
    }
}

fn mode_from_u8(m: u8) -> ShieldMode {
    match m {
        1 => ShieldMode::On,
        2 => ShieldMode::Off,
        _ => ShieldMode::Auto,
    }
}

impl Shield {
    /// A shield configured by `cfg`, signing its challenges with `secret`.
    pub fn new(cfg: &config::Shield, secret: &[u8]) -> Shield {
        let s = Shield {
            bits: cfg.bits,
            signer: Signer::new(secret),
            mode: AtomicU8::new(mode_to_u8(cfg.mode)),
            switch: Switch::new(cfg.joins_per_s),
            replay: Replay::default(),
            metrics: Arc::default(),
        };
        s.publish();
        s
    }

    /// Keeps `tribune_shield_on` in `metrics` (the node's own) rather than in a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Shield {
        self.metrics = metrics;
        self.publish();
        self
    }

    fn publish(&self) {
        self.metrics
            .shield_on
            .store(i64::from(self.is_on()), Relaxed);
    }

    fn changed(&self, c: Change) {
        if c != Change::None {
            tracing::warn!(
                on = c == Change::On,
                mode = ?self.mode(),
                "shield switched {}",
                if c == Change::On { "on" } else { "off" }
            );
            self.publish();
        }
    }

    /// A join attempt (admitted or not) at `now_s`: feeds the automatic switch.
    pub fn note_join(&self, now_s: u64) {
        self.changed(self.switch.join(now_s));
    }

    /// Whether new listeners must bring proof of work now.
    pub fn is_on(&self) -> bool {
        match self.mode() {
            ShieldMode::On => true,
            ShieldMode::Off => false,
            ShieldMode::Auto => self.switch.is_on(),
        }
    }

    /// The operator's mode.
    pub fn mode(&self) -> ShieldMode {
        mode_from_u8(self.mode.load(Relaxed))
    }

    /// Changes the mode at runtime (the operator's override, or back to `auto`).
    pub fn set_mode(&self, mode: ShieldMode) {
        let before = self.is_on();
        self.mode.store(mode_to_u8(mode), Relaxed);
        tracing::warn!(?mode, on = self.is_on(), "shield mode set by the operator");
        if before != self.is_on() {
            self.publish();
        }
    }

    /// Leading zero bits a ticket needs.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Joins counted in second `now_s` so far (for the operator's status).
    pub fn joins_in(&self, now_s: u64) -> u64 {
        self.switch.joins_in(now_s)
    }

    /// Lets an automatic shield go off after a calm minute even when nobody joins.
    pub fn settle(&self, now_s: u64) {
        self.changed(self.switch.settle(now_s));
    }

    /// The challenge of `space` at `now_s`.
    pub fn challenge(&self, space: &str, now_s: u64) -> Challenge {
        Challenge {
            challenge: self.signer.challenge(space, now_s, self.bits),
            bits: self.bits,
            expires_s: ticket::window_of(now_s) + 2 * WINDOW_S - now_s,
        }
    }

    /// Checks a new listener's proof of work for space `space` (`Ok` while the shield is off).
    /// The caller counts the refusal (`metrics.refused(r.reason, Class::Join)`) and answers it.
    pub fn check(&self, space: &str, pow: Option<&str>, now_s: u64) -> Result<(), Refusal> {
        self.settle(now_s);
        if !self.is_on() {
            return Ok(());
        }
        let Some(pow) = pow else {
            return Err(self.refuse(
                Reason::ProofOfWorkRequired,
                "the shield is on: solve the challenge and send the ticket as pow= or \
                 Tribune-Pow",
                space,
                now_s,
            ));
        };
        let solved = match self.signer.verify(pow, space, self.bits, now_s) {
            Ok(s) => s,
            Err(e) => {
                let msg = match e {
                    Invalid::Expired => format!("{e}: solve the new one"),
                    _ => e.to_string(),
                };
                return Err(self.refuse(Reason::ProofOfWorkInvalid, msg, space, now_s));
            }
        };
        match self
            .replay
            .present(solved.window, solved.key, ticket::window_of(now_s))
        {
            Seen::Fresh => Ok(()),
            Seen::Reused => Err(self.refuse(
                Reason::ProofOfWorkReused,
                "this ticket was used already: solve the challenge again (from a random nonce)",
                space,
                now_s,
            )),
            Seen::Full => {
                let wait = (ticket::window_of(now_s) + WINDOW_S - now_s).max(1);
                Err(Refusal::new(
                    Reason::Overloaded,
                    format!("too many new listeners this minute: retry in {wait} s"),
                )
                .retry_after(wait))
            }
        }
    }

    fn refuse(&self, reason: Reason, msg: impl Into<String>, space: &str, now_s: u64) -> Refusal {
        let c = self.challenge(space, now_s);
        Refusal::new(reason, msg).field(
            "challenge",
            json!({"challenge": c.challenge, "bits": c.bits, "expires_s": c.expires_s}),
        )
    }

    /// Tickets remembered against reuse.
    pub fn remembered(&self) -> usize {
        self.replay.remembered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn shield(mode: ShieldMode) -> Shield {
        Shield::new(
            &config::Shield {
                mode,
                bits: 8,
                joins_per_s: 10,
            },
            b"secret",
        )
    }

    fn solve(s: &Shield, space: &str, now_s: u64, start: u64) -> String {
        ticket::solve(&s.challenge(space, now_s).challenge, s.bits(), start)
    }

    fn reason(r: Result<(), Refusal>) -> Option<Reason> {
        r.err().map(|r| r.reason)
    }

    #[test]
    fn off_lets_everyone_in() {
        let s = shield(ShieldMode::Off);
        assert!(s.check("a", None, NOW).is_ok());
        assert!(s.check("a", Some("garbage"), NOW).is_ok());
    }

    #[test]
    fn on_asks_checks_and_remembers() {
        let s = shield(ShieldMode::On);
        let r = s.check("a", None, NOW).unwrap_err();
        assert_eq!(r.reason, Reason::ProofOfWorkRequired);
        let c = &r.fields["challenge"];
        assert_eq!(c["bits"], 8);
        let t = ticket::solve(c["challenge"].as_str().unwrap(), 8, 0);
        assert!(s.check("a", Some(&t), NOW + 1).is_ok());
        assert_eq!(
            reason(s.check("a", Some(&t), NOW + 2)),
            Some(Reason::ProofOfWorkReused)
        );
        assert_eq!(
            reason(s.check("b", Some(&t), NOW + 2)),
            Some(Reason::ProofOfWorkInvalid)
        );
        assert_eq!(
            reason(s.check("a", Some("x:1"), NOW)),
            Some(Reason::ProofOfWorkInvalid)
        );
        // Two clients of the same (cached) challenge, from different nonces.
        let u = solve(&s, "a", NOW, 1 << 40);
        assert!(s.check("a", Some(&u), NOW + WINDOW_S).is_ok());
        // Expired two windows later.
        let v = solve(&s, "a", NOW, 1 << 50);
        assert_eq!(
            reason(s.check("a", Some(&v), NOW + 2 * WINDOW_S)),
            Some(Reason::ProofOfWorkInvalid)
        );
        assert_eq!(s.remembered(), 2);
    }

    #[test]
    fn auto_follows_the_join_rate_and_the_operator_overrides() {
        let s = shield(ShieldMode::Auto);
        assert!(!s.is_on());
        for _ in 0..11 {
            s.note_join(NOW);
        }
        assert!(s.is_on());
        assert_eq!(s.metrics.shield_on.load(Relaxed), 1);
        assert!(s.check("a", None, NOW).is_err());
        s.set_mode(ShieldMode::Off);
        assert!(s.check("a", None, NOW).is_ok());
        assert_eq!(s.metrics.shield_on.load(Relaxed), 0);
        s.set_mode(ShieldMode::Auto);
        assert!(s.is_on());
        // A calm minute later it is off again, even without joins.
        s.settle(NOW + tribune_admission::pow::switch::CALM_S);
        assert!(!s.is_on());
        assert_eq!(s.metrics.shield_on.load(Relaxed), 0);
        s.set_mode(ShieldMode::On);
        assert!(s.is_on());
        assert_eq!(s.metrics.shield_on.load(Relaxed), 1);
    }

    #[test]
    fn expiry_counts_down_within_the_window() {
        let s = shield(ShieldMode::On);
        let w = ticket::window_of(NOW);
        assert_eq!(s.challenge("a", w).expires_s, 2 * WINDOW_S);
        assert_eq!(s.challenge("a", w + WINDOW_S - 1).expires_s, WINDOW_S + 1);
        // The same challenge for the whole window: edges can cache it.
        assert_eq!(
            s.challenge("a", w).challenge,
            s.challenge("a", w + WINDOW_S - 1).challenge
        );
    }
}
