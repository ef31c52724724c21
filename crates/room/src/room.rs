//! The space state machine: lifecycle, stage, moderation, grace period and host takeover.
//!
//! # Model
//! The room records the participants that matter to the stage: the host, the co-hosts and the
//! speakers (each with a display name), raised hands, open invitations, mutes, WHIP sessions, and
//! the removed and banned. Listeners are **not** recorded: the audience costs nothing here,
//! whatever its size (hands and invitations are capped by [`MAX_HANDS`] and [`MAX_INVITES`]).
//!
//! # Current role
//! [`Room::current_role`] resolves a participant's role; the room's record wins over the token:
//! 1. removed or banned → `Refusal::Gone("removed" | "banned")`;
//! 2. recorded host, co-host or speaker → that role;
//! 3. moved down by the room (moved to audience, demoted host) → `Listener`, whatever its token says,
//!    so a demoted speaker's old token cannot publish again;
//! 4. otherwise the token is a standing grant, as minted by the operator or the host: `Speaker`
//!    stays `Speaker`; `Cohost` is `Cohost` while a co-host slot is free, else `Speaker`; `Host` is
//!    `Host` only while the room has no host, else `Listener`. A grant enters the record (and then
//!    counts toward the limits) the first time it is used for a stage action, which is refused with
//!    `Conflict` when the stage is full.
//!
//! # Stage flow
//! - The stage limit counts host + co-hosts + speakers. `Approve` (of a raised hand) and
//!   `AcceptInvite` record the listener as `Speaker`, so `StageToken` and `Publish` are then
//!   allowed; both are refused with `Conflict` when the stage is full. `Decline` clears the hand.
//!   `Invite` is refused with `Conflict` when the target is on stage, removed or banned, or the
//!   stage is full; `Approve`/`Decline` of a sub without a raised hand is `NotFound`.
//! - Mute, unmute and move-to-audience targets must be on stage (else `NotFound`); remove and ban
//!   take any sub. Acting on a co-host needs the host (or operator); nobody acts on the host.
//! - `MoveToAudience` demotes to `Listener`, clears hand, invitation and mutes, and closes the
//!   target's sessions. `Remove` and `Ban` do the same and mark the participant (see rule 1).
//! - Mutes: self mute and host mute are separate; the mix drops audio while either is set
//!   ([`crate::Effect::SetMuted`] carries the effective value). A host mute is sticky:
//!   `UnmuteSelf` is refused until a host or co-host lifts it with `Unmute`.
//!
//! # Lifecycle
//! `Start`: scheduled → live. `Resume`: interrupted → live. `End`: scheduled, live or interrupted →
//! ended. On an ended space every command but `Subscribe` is refused with
//! `Conflict("space has ended")`. Checks run in this order: actor gone, permission table, ended
//! space, then the command's own state checks.
//!
//! # Grace and takeover
//! When the space goes live (`Start`, `Resume`) with nobody on stage connected, or the last
//! connected stage session ends while live, a deadline is set at `now + grace_ms`
//! ([`Room::poll_timeout`]); any new session cancels it; [`Room::handle_timeout`] past it, with
//! nobody on stage connected, ends the space. The host is *absent* when the room has no host, or
//! the host has no session and was last seen (a command, [`Room::host_seen`], a session) at least
//! `host_absence_ms` ago, or was never seen since the room was built. Only then may a co-host
//! `TakeOverHost`: it becomes host; the old host becomes a co-host (the slot the taker left).

mod durable;
mod moderation;
mod sessions;
mod stage;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub use durable::Durable;

use crate::permissions::{Action, check};
use crate::{
    Actor, Command, Config, Effect, Event, Lifecycle, Outcome, ParticipantView, Refusal, Role,
    Snapshot,
};

/// Most raised hands kept at once: a flash crowd raising hands must not grow the room without
/// bound, and no host reads more than this.
pub const MAX_HANDS: usize = 1_000;
/// Most open invitations at once.
pub const MAX_INVITES: usize = 100;

/// A recorded participant: id and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    sub: String,
    name: String,
}

impl Member {
    fn new(sub: &str, name: &str) -> Self {
        Self {
            sub: sub.to_string(),
            name: name.to_string(),
        }
    }
}

/// The state of one space. See the module docs for the rules it enforces.
#[derive(Debug, Clone)]
pub struct Room {
    cfg: Config,
    lifecycle: Lifecycle,
    host: Option<Member>,
    cohosts: Vec<Member>,
    speakers: Vec<Member>,
    hands: Vec<Member>,
    invited: Vec<String>,
    self_muted: BTreeSet<String>,
    host_muted: BTreeSet<String>,
    /// Open WHIP sessions per participant.
    sessions: BTreeMap<String, u32>,
    removed: BTreeSet<String>,
    banned: BTreeSet<String>,
    banned_addrs: BTreeSet<IpAddr>,
    /// Moved down by the room: their token's stage role no longer counts.
    demoted: BTreeSet<String>,
    grace_deadline: Option<u64>,
    host_last_seen: Option<u64>,
    roster_dirty: bool,
    /// Events and effects of a change made by a command that was then refused (a grant claimed
    /// before a state check failed): delivered with the next outcome.
    pending: Outcome,
}

impl Room {
    /// A room in `lifecycle` with an optional host `(sub, name)`.
    pub fn new(cfg: Config, lifecycle: Lifecycle, host: Option<(String, String)>) -> Self {
        Self {
            cfg,
            lifecycle,
            host: host.map(|(sub, name)| Member { sub, name }),
            cohosts: Vec::new(),
            speakers: Vec::new(),
            hands: Vec::new(),
            invited: Vec::new(),
            self_muted: BTreeSet::new(),
            host_muted: BTreeSet::new(),
            sessions: BTreeMap::new(),
            removed: BTreeSet::new(),
            banned: BTreeSet::new(),
            banned_addrs: BTreeSet::new(),
            demoted: BTreeSet::new(),
            grace_deadline: None,
            host_last_seen: None,
            roster_dirty: true,
            pending: Outcome::default(),
        }
    }

    /// The limits this room enforces.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Where the space is in its life.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// The host's sub, if there is a host.
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().map(|m| m.sub.as_str())
    }

    /// How many are on stage (host + co-hosts + speakers).
    pub fn stage_len(&self) -> usize {
        usize::from(self.host.is_some()) + self.cohosts.len() + self.speakers.len()
    }

    /// The co-hosts' subs.
    pub fn cohosts(&self) -> Vec<&str> {
        self.cohosts.iter().map(|m| m.sub.as_str()).collect()
    }

    /// `sub`'s current role: the room's record wins over `token_role` (see the module docs).
    /// Removed or banned participants get `Refusal::Gone`.
    pub fn current_role(&self, sub: &str, token_role: Role) -> Result<Role, Refusal> {
        if self.banned.contains(sub) {
            return Err(Refusal::Gone("banned".into()));
        }
        if self.removed.contains(sub) {
            return Err(Refusal::Gone("removed".into()));
        }
        if let Some(role) = self.recorded_role(sub) {
            return Ok(role);
        }
        if self.demoted.contains(sub) {
            return Ok(Role::Listener);
        }
        Ok(match token_role {
            Role::Host if self.host.is_none() => Role::Host,
            Role::Host => Role::Listener,
            Role::Cohost if self.cohosts.len() < self.cfg.max_cohosts => Role::Cohost,
            Role::Cohost | Role::Speaker => Role::Speaker,
            Role::Listener => Role::Listener,
        })
    }

    /// The role the record holds for `sub`, if it is on stage.
    fn recorded_role(&self, sub: &str) -> Option<Role> {
        if self.host.as_ref().is_some_and(|m| m.sub == sub) {
            Some(Role::Host)
        } else if self.cohosts.iter().any(|m| m.sub == sub) {
            Some(Role::Cohost)
        } else if self.speakers.iter().any(|m| m.sub == sub) {
            Some(Role::Speaker)
        } else {
            None
        }
    }

    /// Carry out `cmd` for `actor` at `now_ms`, or say why not.
    pub fn apply(&mut self, actor: &Actor, cmd: Command, now_ms: u64) -> Result<Outcome, Refusal> {
        let action = Action::of(&cmd);
        let role = if actor.operator {
            Role::Listener // unused by `check`: the operator column decides
        } else {
            self.current_role(&actor.sub, actor.token_role)?
        };
        check(action, role, actor.operator)?;
        if self.lifecycle == Lifecycle::Ended
            && !matches!(action, Action::Subscribe | Action::ListAudience)
        {
            return Err(Refusal::conflict("space has ended"));
        }
        if !actor.operator {
            if role.on_stage()
                && self.recorded_role(&actor.sub).is_none()
                && check(action, Role::Listener, false).is_err()
            {
                self.claim(actor, role, now_ms)?;
            }
            if role == Role::Host {
                self.host_last_seen = Some(now_ms);
            }
        }
        let mut out = Outcome::default();
        self.dispatch(actor, cmd, now_ms, &mut out)?;
        Ok(self.deliver(out))
    }

    fn dispatch(
        &mut self,
        actor: &Actor,
        cmd: Command,
        now_ms: u64,
        out: &mut Outcome,
    ) -> Result<(), Refusal> {
        match cmd {
            Command::Start => self.start(now_ms, out),
            Command::End => {
                self.end(out);
                Ok(())
            }
            Command::Resume => self.resume(now_ms, out),
            Command::RaiseHand => self.raise_hand(actor, out),
            Command::LowerHand => {
                self.lower_hand(&actor.sub, out);
                Ok(())
            }
            Command::Approve { target } => self.approve(&target, out),
            Command::Decline { target } => self.decline(&target, out),
            Command::Invite { target } => self.invite(&target, out),
            Command::AcceptInvite => self.accept_invite(actor, out),
            Command::DeclineInvite => self.decline_invite(&actor.sub, out),
            Command::StageToken | Command::React | Command::Subscribe | Command::ListAudience => {
                Ok(())
            }
            Command::Publish => match self.lifecycle {
                Lifecycle::Live => Ok(()),
                _ => Err(Refusal::conflict("space is not live")),
            },
            Command::MuteSelf => {
                self.mute_self(&actor.sub, out);
                Ok(())
            }
            Command::UnmuteSelf => self.unmute_self(&actor.sub, out),
            Command::Mute { target } => self.mute(actor, &target, out),
            Command::Unmute { target } => self.unmute(actor, &target, out),
            Command::MoveToAudience { target } => {
                self.move_to_audience(actor, &target, now_ms, out)
            }
            Command::Remove { target } => self.remove(actor, &target, false, now_ms, out),
            Command::Ban { target } => self.remove(actor, &target, true, now_ms, out),
            Command::NameCohost { target } => self.name_cohost(&target, out),
            Command::RevokeCohost { target } => self.revoke_cohost(&target, out),
            Command::TakeOverHost => self.take_over_host(&actor.sub, now_ms, out),
            Command::LeaveStage => self.leave_stage(&actor.sub, now_ms, out),
        }
    }

    /// Prepend what an earlier, refused command left pending.
    fn deliver(&mut self, out: Outcome) -> Outcome {
        let mut all = std::mem::take(&mut self.pending);
        all.events.extend(out.events);
        for e in out.effects {
            all.effect(e);
        }
        all
    }

    /// Everything a new subscriber needs.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            lifecycle: self.lifecycle,
            host: self.host().map(str::to_string),
            stage: self.roster(),
            hands: self
                .hands
                .iter()
                .map(|m| (m.sub.clone(), m.name.clone()))
                .collect(),
            invited: self.invited.clone(),
            cohosts: self.cohosts.iter().map(|m| m.sub.clone()).collect(),
        }
    }

    /// The stage: host, co-hosts, then speakers in the order they came on stage.
    pub fn roster(&self) -> Vec<ParticipantView> {
        let host = self.host.iter().map(|m| (m, Role::Host));
        let cohosts = self.cohosts.iter().map(|m| (m, Role::Cohost));
        let speakers = self.speakers.iter().map(|m| (m, Role::Speaker));
        host.chain(cohosts)
            .chain(speakers)
            .map(|(m, role)| ParticipantView {
                sub: m.sub.clone(),
                name: m.name.clone(),
                role,
                muted: self.is_muted(&m.sub),
                host_muted: self.host_muted.contains(&m.sub),
                connected: self.sessions.contains_key(&m.sub),
            })
            .collect()
    }

    /// `Event::Stage` with the roster if it changed since the last call (the server batches
    /// these to a few per second).
    pub fn take_roster_if_dirty(&mut self) -> Option<Event> {
        if !self.roster_dirty {
            return None;
        }
        self.roster_dirty = false;
        Some(Event::Stage {
            participants: self.roster(),
        })
    }

    /// Ban a client address (for anonymous joins). IPv4-mapped IPv6 addresses count as IPv4, and
    /// an IPv6 address bans its whole /64, since one client rotates addresses inside it.
    pub fn ban_addr(&mut self, ip: IpAddr) {
        self.banned_addrs.insert(addr_key(ip));
    }

    /// Whether `ip` (or its IPv6 /64) is banned.
    pub fn is_addr_banned(&self, ip: IpAddr) -> bool {
        self.banned_addrs.contains(&addr_key(ip))
    }

    /// Effective mute: self or host.
    fn is_muted(&self, sub: &str) -> bool {
        self.self_muted.contains(sub) || self.host_muted.contains(sub)
    }

    fn stage_full(&self) -> Result<(), Refusal> {
        if self.stage_len() >= self.cfg.stage_limit {
            Err(Refusal::conflict(format!(
                "stage is full ({} of {})",
                self.stage_len(),
                self.cfg.stage_limit
            )))
        } else {
            Ok(())
        }
    }

    /// Record a granted token role (rule 4 of the module docs) at its first stage use.
    fn claim(&mut self, actor: &Actor, role: Role, now_ms: u64) -> Result<(), Refusal> {
        self.stage_full()?;
        let member = Member::new(&actor.sub, &actor.name);
        match role {
            Role::Host => {
                self.pending.event(Event::HostChanged {
                    sub: member.sub.clone(),
                    name: member.name.clone(),
                });
                self.host = Some(member);
                self.host_last_seen = Some(now_ms);
            }
            Role::Cohost => {
                self.pending.event(Event::CohostNamed {
                    sub: member.sub.clone(),
                });
                self.cohosts.push(member);
            }
            Role::Speaker => self.speakers.push(member),
            Role::Listener => return Ok(()),
        }
        self.drop_hand_and_invite(&actor.sub);
        self.pending.persist();
        self.roster_dirty = true;
        Ok(())
    }

    fn drop_hand_and_invite(&mut self, sub: &str) {
        self.hands.retain(|m| m.sub != sub);
        self.invited.retain(|s| s != sub);
    }

    /// Whether any stage member has an open session.
    fn stage_connected(&self) -> bool {
        self.sessions
            .keys()
            .any(|s| self.recorded_role(s).is_some())
    }
}

/// The key an address is banned under.
fn addr_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Helper for effects naming a sub.
fn close(sub: &str) -> Effect {
    Effect::CloseSessions {
        sub: sub.to_string(),
    }
}
