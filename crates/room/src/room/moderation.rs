//! Mutes, moving to the audience, removal and bans.

use super::{Room, close};
use crate::permissions::{Action, check};
use crate::{Actor, Effect, Event, Outcome, Refusal, Role};

impl Room {
    /// The target's role on stage, or `NotFound`.
    fn stage_target(&self, target: &str) -> Result<Role, Refusal> {
        self.recorded_role(target)
            .ok_or_else(|| Refusal::not_found(format!("{target} is not on stage")))
    }

    /// The second check of a moderation command: acting on a co-host or on the host.
    fn check_target(&self, actor: &Actor, target_role: Role) -> Result<(), Refusal> {
        let role = if actor.operator {
            Role::Listener
        } else {
            self.current_role(&actor.sub, actor.token_role)?
        };
        match target_role {
            Role::Host => check(Action::ModerateHost, role, actor.operator),
            Role::Cohost => check(Action::ModerateCohost, role, actor.operator),
            Role::Speaker | Role::Listener => Ok(()),
        }
    }

    fn set_muted(&self, sub: &str, out: &mut Outcome) {
        out.effect(Effect::SetMuted {
            sub: sub.into(),
            muted: self.is_muted(sub),
        });
    }

    pub(super) fn mute_self(&mut self, sub: &str, out: &mut Outcome) {
        self.self_muted.insert(sub.into());
        out.event(Event::Muted {
            sub: sub.into(),
            by_host: false,
        });
        self.set_muted(sub, out);
        self.roster_dirty = true;
    }

    pub(super) fn unmute_self(&mut self, sub: &str, out: &mut Outcome) -> Result<(), Refusal> {
        if self.host_muted.contains(sub) {
            return Err(Refusal::conflict(
                "muted by a host: only a host or cohost can unmute you",
            ));
        }
        self.self_muted.remove(sub);
        out.event(Event::Unmuted { sub: sub.into() });
        self.set_muted(sub, out);
        self.roster_dirty = true;
        Ok(())
    }

    pub(super) fn mute(
        &mut self,
        actor: &Actor,
        target: &str,
        out: &mut Outcome,
    ) -> Result<(), Refusal> {
        let role = self.stage_target(target)?;
        self.check_target(actor, role)?;
        self.host_muted.insert(target.into());
        out.event(Event::Muted {
            sub: target.into(),
            by_host: true,
        });
        self.set_muted(target, out);
        out.persist();
        self.roster_dirty = true;
        Ok(())
    }

    pub(super) fn unmute(
        &mut self,
        actor: &Actor,
        target: &str,
        out: &mut Outcome,
    ) -> Result<(), Refusal> {
        let role = self.stage_target(target)?;
        self.check_target(actor, role)?;
        if self.host_muted.remove(target) {
            out.event(Event::Unmuted { sub: target.into() });
            self.set_muted(target, out);
            out.persist();
            self.roster_dirty = true;
        }
        Ok(())
    }

    /// Take `sub` off the stage and out of every list; close its sessions.
    fn unseat(&mut self, sub: &str, now_ms: u64, out: &mut Outcome) {
        let was_connected = self.stage_connected();
        self.cohosts.retain(|m| m.sub != sub);
        self.speakers.retain(|m| m.sub != sub);
        self.drop_hand_and_invite(sub);
        self.self_muted.remove(sub);
        self.host_muted.remove(sub);
        self.sessions.remove(sub);
        self.demoted.insert(sub.into());
        out.effect(close(sub));
        out.persist();
        self.roster_dirty = true;
        if was_connected {
            self.arm_grace_if_empty(now_ms);
        }
    }

    pub(super) fn move_to_audience(
        &mut self,
        actor: &Actor,
        target: &str,
        now_ms: u64,
        out: &mut Outcome,
    ) -> Result<(), Refusal> {
        let role = self.stage_target(target)?;
        self.check_target(actor, role)?;
        out.event(Event::MovedToAudience { sub: target.into() });
        self.unseat(target, now_ms, out);
        Ok(())
    }

    /// `LeaveStage`: the participant steps down by itself.
    pub(super) fn leave_stage(
        &mut self,
        sub: &str,
        now_ms: u64,
        out: &mut Outcome,
    ) -> Result<(), Refusal> {
        self.stage_target(sub)?;
        out.event(Event::MovedToAudience { sub: sub.into() });
        self.unseat(sub, now_ms, out);
        Ok(())
    }

    /// `Remove`, or `Ban` when `ban`.
    pub(super) fn remove(
        &mut self,
        actor: &Actor,
        target: &str,
        ban: bool,
        now_ms: u64,
        out: &mut Outcome,
    ) -> Result<(), Refusal> {
        let role = self.recorded_role(target).unwrap_or(Role::Listener);
        self.check_target(actor, role)?;
        if !actor.operator && actor.sub == target {
            return Err(Refusal::conflict("cannot remove yourself"));
        }
        if ban {
            self.banned.insert(target.into());
            out.event(Event::Banned { sub: target.into() });
        } else {
            self.removed.insert(target.into());
            out.event(Event::Removed { sub: target.into() });
        }
        self.unseat(target, now_ms, out);
        Ok(())
    }
}
