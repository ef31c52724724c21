//! Stage flow: hands, approvals, invitations, co-hosts and host takeover.

use super::{MAX_HANDS, MAX_INVITES, Member, Room, close};
use crate::{Actor, Event, Outcome, Refusal, Role};

impl Room {
    pub(super) fn raise_hand(&mut self, actor: &Actor, out: &mut Outcome) -> Result<(), Refusal> {
        if self.hands.iter().any(|m| m.sub == actor.sub) {
            return Ok(());
        }
        if self.hands.len() >= MAX_HANDS {
            return Err(Refusal::conflict("too many raised hands; try again later"));
        }
        self.hands.push(Member::new(&actor.sub, &actor.name));
        out.event(Event::HandRaised {
            sub: actor.sub.clone(),
            name: actor.name.clone(),
        });
        Ok(())
    }

    pub(super) fn lower_hand(&mut self, sub: &str, out: &mut Outcome) {
        let before = self.hands.len();
        self.hands.retain(|m| m.sub != sub);
        if self.hands.len() != before {
            out.event(Event::HandLowered { sub: sub.into() });
        }
    }

    /// Refuse when `target` is already on stage.
    fn not_on_stage(&self, target: &str) -> Result<(), Refusal> {
        match self.recorded_role(target) {
            Some(role) => Err(Refusal::conflict(format!(
                "{target} is already on stage as {}",
                role.as_str()
            ))),
            None => Ok(()),
        }
    }

    /// Put a listener on stage as a speaker (after the caller checked the limit).
    fn seat_speaker(&mut self, member: Member, out: &mut Outcome) {
        self.drop_hand_and_invite(&member.sub);
        self.demoted.remove(&member.sub);
        self.speakers.push(member);
        out.persist();
        self.roster_dirty = true;
    }

    pub(super) fn approve(&mut self, target: &str, out: &mut Outcome) -> Result<(), Refusal> {
        self.not_on_stage(target)?;
        let Some(i) = self.hands.iter().position(|m| m.sub == target) else {
            return Err(Refusal::not_found(format!("no raised hand from {target}")));
        };
        self.stage_full()?;
        let member = self.hands.remove(i);
        out.event(Event::Approved { sub: target.into() });
        self.seat_speaker(member, out);
        Ok(())
    }

    pub(super) fn decline(&mut self, target: &str, out: &mut Outcome) -> Result<(), Refusal> {
        let Some(i) = self.hands.iter().position(|m| m.sub == target) else {
            return Err(Refusal::not_found(format!("no raised hand from {target}")));
        };
        self.hands.remove(i);
        out.event(Event::Declined { sub: target.into() });
        Ok(())
    }

    pub(super) fn invite(&mut self, target: &str, out: &mut Outcome) -> Result<(), Refusal> {
        self.not_on_stage(target)?;
        if self.banned.contains(target) || self.removed.contains(target) {
            return Err(Refusal::conflict(format!(
                "{target} was removed from this space"
            )));
        }
        self.stage_full()?;
        if !self.invited.iter().any(|s| s == target) {
            if self.invited.len() >= MAX_INVITES {
                return Err(Refusal::conflict("too many open invitations"));
            }
            self.invited.push(target.into());
        }
        out.event(Event::Invited { sub: target.into() });
        Ok(())
    }

    pub(super) fn accept_invite(
        &mut self,
        actor: &Actor,
        out: &mut Outcome,
    ) -> Result<(), Refusal> {
        if !self.invited.contains(&actor.sub) {
            return Err(Refusal::conflict("not invited"));
        }
        self.stage_full()?;
        out.event(Event::InviteAccepted {
            sub: actor.sub.clone(),
        });
        self.seat_speaker(Member::new(&actor.sub, &actor.name), out);
        Ok(())
    }

    pub(super) fn decline_invite(&mut self, sub: &str, out: &mut Outcome) -> Result<(), Refusal> {
        let Some(i) = self.invited.iter().position(|s| s == sub) else {
            return Err(Refusal::conflict("not invited"));
        };
        self.invited.remove(i);
        out.event(Event::InviteDeclined { sub: sub.into() });
        Ok(())
    }

    pub(super) fn name_cohost(&mut self, target: &str, out: &mut Outcome) -> Result<(), Refusal> {
        match self.recorded_role(target) {
            Some(Role::Speaker) => {}
            Some(role) => {
                return Err(Refusal::conflict(format!(
                    "{target} is already {}",
                    role.as_str()
                )));
            }
            None => return Err(Refusal::not_found(format!("{target} is not on stage"))),
        }
        if self.cohosts.len() >= self.cfg.max_cohosts {
            return Err(Refusal::conflict(format!(
                "already {} cohosts",
                self.cfg.max_cohosts
            )));
        }
        let i = self.speakers.iter().position(|m| m.sub == target);
        let member = self.speakers.remove(i.expect("recorded speaker"));
        self.cohosts.push(member);
        out.event(Event::CohostNamed { sub: target.into() });
        out.persist();
        self.roster_dirty = true;
        Ok(())
    }

    pub(super) fn revoke_cohost(&mut self, target: &str, out: &mut Outcome) -> Result<(), Refusal> {
        let Some(i) = self.cohosts.iter().position(|m| m.sub == target) else {
            return Err(Refusal::not_found(format!("{target} is not a cohost")));
        };
        let member = self.cohosts.remove(i);
        self.speakers.push(member);
        out.event(Event::CohostRevoked { sub: target.into() });
        out.persist();
        self.roster_dirty = true;
        Ok(())
    }

    /// Whether the host counts as absent at `now_ms` (see the module docs).
    pub fn host_absent(&self, now_ms: u64) -> bool {
        let Some(host) = &self.host else {
            return true;
        };
        if self.sessions.contains_key(&host.sub) {
            return false;
        }
        match self.host_last_seen {
            None => true,
            Some(t) => now_ms.saturating_sub(t) >= self.cfg.host_absence_ms,
        }
    }

    pub(super) fn take_over_host(
        &mut self,
        sub: &str,
        now_ms: u64,
        out: &mut Outcome,
    ) -> Result<(), Refusal> {
        if !self.host_absent(now_ms) {
            return Err(Refusal::conflict("the host is present"));
        }
        let i = self.cohosts.iter().position(|m| m.sub == sub);
        let new_host = self
            .cohosts
            .remove(i.expect("the taker is a recorded cohost"));
        if let Some(old) = self.host.take() {
            if self.cohosts.len() < self.cfg.max_cohosts {
                self.cohosts.push(old);
            } else {
                // Only when max_cohosts is 0: the old host leaves the stage.
                self.sessions.remove(&old.sub);
                self.self_muted.remove(&old.sub);
                self.host_muted.remove(&old.sub);
                self.demoted.insert(old.sub.clone());
                out.effect(close(&old.sub));
            }
        }
        out.event(Event::HostChanged {
            sub: new_host.sub.clone(),
            name: new_host.name.clone(),
        });
        self.host = Some(new_host);
        self.host_last_seen = Some(now_ms);
        out.persist();
        self.roster_dirty = true;
        Ok(())
    }
}
