//! Lifecycle transitions, WHIP session presence, the grace deadline and host presence.

use super::Room;
use crate::{Effect, Event, Lifecycle, Outcome, Refusal};

impl Room {
    fn set_lifecycle(&mut self, lifecycle: Lifecycle, out: &mut Outcome) {
        self.lifecycle = lifecycle;
        out.event(Event::State { lifecycle });
        out.persist();
    }

    pub(super) fn start(&mut self, now_ms: u64, out: &mut Outcome) -> Result<(), Refusal> {
        if self.lifecycle != Lifecycle::Scheduled {
            return Err(Refusal::conflict("space is not scheduled"));
        }
        self.went_live(now_ms, out);
        Ok(())
    }

    pub(super) fn resume(&mut self, now_ms: u64, out: &mut Outcome) -> Result<(), Refusal> {
        if self.lifecycle != Lifecycle::Interrupted {
            return Err(Refusal::conflict("space is not interrupted"));
        }
        self.went_live(now_ms, out);
        Ok(())
    }

    /// The space goes live at `now_ms`. Going live with nobody on stage connected arms the grace
    /// deadline at once: a space nobody ever takes the stage in ends after `grace_ms`, as one
    /// whose last speaker left does.
    fn went_live(&mut self, now_ms: u64, out: &mut Outcome) {
        self.set_lifecycle(Lifecycle::Live, out);
        self.arm_grace_if_empty(now_ms);
    }

    pub(super) fn end(&mut self, out: &mut Outcome) {
        self.set_lifecycle(Lifecycle::Ended, out);
        self.sessions.clear();
        self.grace_deadline = None;
        self.roster_dirty = true;
        out.effect(Effect::CloseSessions { sub: "*".into() });
    }

    /// The space was live when the server stopped and its mixer is gone: live → interrupted
    /// (no effect in other states). Open sessions are forgotten; the host may `Resume`. No
    /// outcome: the caller (start-up code) persists [`Room::durable`] itself.
    pub fn mark_interrupted(&mut self) {
        if self.lifecycle == Lifecycle::Live {
            self.lifecycle = Lifecycle::Interrupted;
            self.sessions.clear();
            self.grace_deadline = None;
            self.roster_dirty = true;
        }
    }

    /// A WHIP session of `sub` connected: cancels the grace deadline; the host is seen. When `sub`
    /// is muted the outcome says so, so the new session starts muted in the mix.
    pub fn session_started(&mut self, sub: &str, _name: &str, now_ms: u64) -> Outcome {
        *self.sessions.entry(sub.to_string()).or_default() += 1;
        self.grace_deadline = None;
        if self.host() == Some(sub) {
            self.host_last_seen = Some(now_ms);
        }
        let mut out = Outcome::default();
        if self.is_muted(sub) {
            out.effect(Effect::SetMuted {
                sub: sub.into(),
                muted: true,
            });
        }
        self.roster_dirty = true;
        self.deliver(out)
    }

    /// A WHIP session of `sub` ended. When it was the last connected session on stage of a live
    /// space, the grace deadline is set at `now_ms + grace_ms`.
    pub fn session_ended(&mut self, sub: &str, now_ms: u64) -> Outcome {
        if self.host() == Some(sub) {
            self.host_last_seen = Some(now_ms);
        }
        if let Some(n) = self.sessions.get_mut(sub) {
            *n -= 1;
            if *n == 0 {
                self.sessions.remove(sub);
                self.roster_dirty = true;
                self.arm_grace_if_empty(now_ms);
            }
        }
        self.deliver(Outcome::default())
    }

    /// A room built live (a space created without a start time) opened at `now_ms`: the grace
    /// deadline is armed as for `Start`, so a space nobody takes the stage in ends after
    /// `grace_ms`. No effect in other states.
    pub fn opened(&mut self, now_ms: u64) {
        self.arm_grace_if_empty(now_ms);
    }

    /// Set the grace deadline if the space is live and nobody on stage is connected.
    pub(super) fn arm_grace_if_empty(&mut self, now_ms: u64) {
        if self.lifecycle == Lifecycle::Live
            && !self.stage_connected()
            && self.grace_deadline.is_none()
        {
            self.grace_deadline = Some(now_ms.saturating_add(self.cfg.grace_ms));
        }
    }

    /// The host has an open event stream or session at `now_ms` (the server calls this
    /// periodically, well within `host_absence_ms`).
    pub fn host_seen(&mut self, now_ms: u64) {
        if self.host.is_some() {
            self.host_last_seen = Some(now_ms);
        }
    }

    /// The next deadline (Unix ms) at which [`Room::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.grace_deadline
    }

    /// Act on deadlines due at `now_ms`: when the grace period is over with nobody on stage
    /// connected, the space ends (`State{Ended}`, `CloseSessions "*"`, `Persist`).
    pub fn handle_timeout(&mut self, now_ms: u64) -> Outcome {
        let mut out = Outcome::default();
        if let Some(deadline) = self.grace_deadline
            && now_ms >= deadline
        {
            self.grace_deadline = None;
            if self.lifecycle == Lifecycle::Live && !self.stage_connected() {
                self.end(&mut out);
            }
        }
        self.deliver(out)
    }
}
