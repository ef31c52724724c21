//! The one permission table: which role may take which action.
//!
//! Every role check in [`crate::Room::apply`] (and the server's token minting) goes through
//! [`check`] against [`PERMISSIONS`]; nothing else decides by role. State checks (an ended space,
//! a full stage, a missing invitation) are not here: they live in `Room::apply` and give
//! `Conflict`/`NotFound`, never `Forbidden`.
//!
//! The role checked is the participant's **current** role in the room
//! ([`crate::Room::current_role`]), not the one written in its token. The operator key acts from
//! outside the room: for it only the `operator` column counts, whatever its token says.
//!
//! | rule | host | cohost | speaker | listener | operator |
//! |---|:-:|:-:|:-:|:-:|:-:|
//! | `space.start` | ✓ | | | | ✓ |
//! | `space.end` | ✓ | | | | ✓ |
//! | `space.resume` | ✓ | | | | ✓ |
//! | `hand.raise` | | | | ✓ | |
//! | `hand.lower` | | | | ✓ | |
//! | `stage.approve` | ✓ | ✓ | | | ✓ |
//! | `stage.decline` | ✓ | ✓ | | | ✓ |
//! | `stage.invite` | ✓ | ✓ | | | ✓ |
//! | `invite.accept` | | | | ✓ | |
//! | `invite.decline` | | | | ✓ | |
//! | `stage.token` | ✓ | ✓ | ✓ | | |
//! | `stage.publish` | ✓ | ✓ | ✓ | | |
//! | `mute.self` | ✓ | ✓ | ✓ | | |
//! | `unmute.self` | ✓ | ✓ | ✓ | | |
//! | `moderate.mute` | ✓ | ✓ | | | ✓ |
//! | `moderate.unmute` | ✓ | ✓ | | | ✓ |
//! | `moderate.move_to_audience` | ✓ | ✓ | | | ✓ |
//! | `moderate.remove` | ✓ | ✓ | | | ✓ |
//! | `moderate.ban` | ✓ | ✓ | | | ✓ |
//! | `moderate.cohost` (target is a co-host) | ✓ | | | | ✓ |
//! | `moderate.host` (target is the host) | | | | | |
//! | `cohost.name` | ✓ | | | | ✓ |
//! | `cohost.revoke` | ✓ | | | | ✓ |
//! | `host.takeover` | | ✓ | | | |
//! | `react` | ✓ | ✓ | ✓ | ✓ | |
//! | `subscribe` | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `audience.list` | ✓ | ✓ | | | ✓ |
//! | `stage.leave` | | ✓ | ✓ | | |
//! | `token.mint.host` | | | | | ✓ |
//! | `token.mint.cohost` | ✓ | | | | ✓ |
//! | `token.mint.speaker` | ✓ | | | | ✓ |
//! | `token.mint.listener` | ✓ | | | | ✓ |
//! | `token.mint.seated` (the `sub` is on stage) | | | | | ✓ |
//!
//! Minting runs two checks too: `token.mint.<role>` for the role written in the token, then
//! `token.mint.seated` when the token's `sub` is a participant the room seats on stage (host,
//! co-host or speaker). A token names a participant, and for a seated participant the room's
//! record wins over the role written in it: whatever role it says, it would act with that
//! participant's seat, under its name, and replace its WHIP session. So the host mints for new
//! participants and for listeners (whose token gives nothing but the role written in it, as a
//! new one's does, and no more than the host grants by minting for a new sub), never for the
//! host, a co-host or a speaker; a seated participant renews its own token (`stage.token`), and
//! only the operator key, from outside the room, hands one out for it.
//!
//! Moderating a target runs two checks: the action's own rule, then `moderate.cohost` when the
//! target is a co-host or `moderate.host` when it is the host. So a co-host may not mute, move,
//! remove or ban the host or another co-host, and nobody may do so to the host (the operator
//! ends the space instead).

use crate::{Command, Refusal, Role};

/// An action subject to a role check: one per [`Command`] kind, plus token minting and the
/// target-dependent moderation checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// [`Command::Start`].
    Start,
    /// [`Command::End`].
    End,
    /// [`Command::Resume`].
    Resume,
    /// [`Command::RaiseHand`].
    RaiseHand,
    /// [`Command::LowerHand`].
    LowerHand,
    /// [`Command::Approve`].
    Approve,
    /// [`Command::Decline`].
    Decline,
    /// [`Command::Invite`].
    Invite,
    /// [`Command::AcceptInvite`].
    AcceptInvite,
    /// [`Command::DeclineInvite`].
    DeclineInvite,
    /// [`Command::StageToken`].
    StageToken,
    /// [`Command::Publish`].
    Publish,
    /// [`Command::MuteSelf`].
    MuteSelf,
    /// [`Command::UnmuteSelf`].
    UnmuteSelf,
    /// [`Command::Mute`].
    Mute,
    /// [`Command::Unmute`].
    Unmute,
    /// [`Command::MoveToAudience`].
    MoveToAudience,
    /// [`Command::Remove`].
    Remove,
    /// [`Command::Ban`].
    Ban,
    /// A moderation command whose target is a co-host (checked in addition to its own rule).
    ModerateCohost,
    /// A moderation command whose target is the host (checked in addition to its own rule).
    ModerateHost,
    /// [`Command::NameCohost`].
    NameCohost,
    /// [`Command::RevokeCohost`].
    RevokeCohost,
    /// [`Command::TakeOverHost`].
    TakeOverHost,
    /// [`Command::React`].
    React,
    /// [`Command::Subscribe`].
    Subscribe,
    /// [`Command::ListAudience`].
    ListAudience,
    /// [`Command::LeaveStage`].
    LeaveStage,
    /// Mint a token of this role for the space (`POST /api/spaces/{id}/tokens`).
    MintToken(Role),
    /// Mint a token for a participant the room seats on stage (checked in addition to
    /// [`Action::MintToken`]; see the module docs).
    MintForSeated,
}

impl Action {
    /// The action a command asks for.
    pub fn of(cmd: &Command) -> Action {
        match cmd {
            Command::Start => Action::Start,
            Command::End => Action::End,
            Command::Resume => Action::Resume,
            Command::RaiseHand => Action::RaiseHand,
            Command::LowerHand => Action::LowerHand,
            Command::Approve { .. } => Action::Approve,
            Command::Decline { .. } => Action::Decline,
            Command::Invite { .. } => Action::Invite,
            Command::AcceptInvite => Action::AcceptInvite,
            Command::DeclineInvite => Action::DeclineInvite,
            Command::StageToken => Action::StageToken,
            Command::Publish => Action::Publish,
            Command::MuteSelf => Action::MuteSelf,
            Command::UnmuteSelf => Action::UnmuteSelf,
            Command::Mute { .. } => Action::Mute,
            Command::Unmute { .. } => Action::Unmute,
            Command::MoveToAudience { .. } => Action::MoveToAudience,
            Command::Remove { .. } => Action::Remove,
            Command::Ban { .. } => Action::Ban,
            Command::NameCohost { .. } => Action::NameCohost,
            Command::RevokeCohost { .. } => Action::RevokeCohost,
            Command::TakeOverHost => Action::TakeOverHost,
            Command::React => Action::React,
            Command::Subscribe => Action::Subscribe,
            Command::ListAudience => Action::ListAudience,
            Command::LeaveStage => Action::LeaveStage,
        }
    }
}

/// One row of the permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The action this row governs.
    pub action: Action,
    /// Current roles that may take it.
    pub allowed: &'static [Role],
    /// Whether the operator key may take it.
    pub operator: bool,
    /// Stable name, shown in 403 responses: `"<rule>: <who>"`.
    pub name: &'static str,
}

use Role::{Cohost as C, Host as H, Listener as L, Speaker as S};

const HOST: &[Role] = &[H];
const MODS: &[Role] = &[H, C];
const STAGE: &[Role] = &[H, C, S];
const AUDIENCE: &[Role] = &[L];
const COHOST: &[Role] = &[C];
const STEP_DOWN: &[Role] = &[C, S];
const ALL: &[Role] = &[H, C, S, L];
const NOBODY: &[Role] = &[];

const fn rule(
    action: Action,
    allowed: &'static [Role],
    operator: bool,
    name: &'static str,
) -> Rule {
    Rule {
        action,
        allowed,
        operator,
        name,
    }
}

/// The permission table (see the module docs for it as a table).
pub const PERMISSIONS: &[Rule] = &[
    rule(Action::Start, HOST, true, "space.start: host or operator"),
    rule(Action::End, HOST, true, "space.end: host or operator"),
    rule(Action::Resume, HOST, true, "space.resume: host or operator"),
    rule(Action::RaiseHand, AUDIENCE, false, "hand.raise: listener"),
    rule(Action::LowerHand, AUDIENCE, false, "hand.lower: listener"),
    rule(Action::Approve, MODS, true, "stage.approve: host or cohost"),
    rule(Action::Decline, MODS, true, "stage.decline: host or cohost"),
    rule(Action::Invite, MODS, true, "stage.invite: host or cohost"),
    rule(
        Action::AcceptInvite,
        AUDIENCE,
        false,
        "invite.accept: invited listener",
    ),
    rule(
        Action::DeclineInvite,
        AUDIENCE,
        false,
        "invite.decline: invited listener",
    ),
    rule(
        Action::StageToken,
        STAGE,
        false,
        "stage.token: approved participant (speaker, cohost or host)",
    ),
    rule(
        Action::Publish,
        STAGE,
        false,
        "stage.publish: speaker, cohost or host",
    ),
    rule(
        Action::MuteSelf,
        STAGE,
        false,
        "mute.self: speaker, cohost or host",
    ),
    rule(
        Action::UnmuteSelf,
        STAGE,
        false,
        "unmute.self: speaker, cohost or host",
    ),
    rule(Action::Mute, MODS, true, "moderate.mute: host or cohost"),
    rule(
        Action::Unmute,
        MODS,
        true,
        "moderate.unmute: host or cohost",
    ),
    rule(
        Action::MoveToAudience,
        MODS,
        true,
        "moderate.move_to_audience: host or cohost",
    ),
    rule(
        Action::Remove,
        MODS,
        true,
        "moderate.remove: host or cohost",
    ),
    rule(Action::Ban, MODS, true, "moderate.ban: host or cohost"),
    rule(
        Action::ModerateCohost,
        HOST,
        true,
        "moderate.cohost: only the host acts on a cohost",
    ),
    rule(
        Action::ModerateHost,
        NOBODY,
        false,
        "moderate.host: nobody acts on the host",
    ),
    rule(
        Action::NameCohost,
        HOST,
        true,
        "cohost.name: host or operator",
    ),
    rule(
        Action::RevokeCohost,
        HOST,
        true,
        "cohost.revoke: host or operator",
    ),
    rule(Action::TakeOverHost, COHOST, false, "host.takeover: cohost"),
    rule(Action::React, ALL, false, "react: participant"),
    rule(Action::Subscribe, ALL, true, "subscribe: participant"),
    rule(
        Action::LeaveStage,
        STEP_DOWN,
        false,
        "stage.leave: speaker or cohost (the host ends the space instead)",
    ),
    rule(
        Action::ListAudience,
        MODS,
        true,
        "audience.list: host or cohost",
    ),
    rule(
        Action::MintToken(H),
        NOBODY,
        true,
        "token.mint.host: operator",
    ),
    rule(
        Action::MintToken(C),
        HOST,
        true,
        "token.mint.cohost: host or operator",
    ),
    rule(
        Action::MintToken(S),
        HOST,
        true,
        "token.mint.speaker: host or operator",
    ),
    rule(
        Action::MintToken(L),
        HOST,
        true,
        "token.mint.listener: host or operator",
    ),
    rule(
        Action::MintForSeated,
        NOBODY,
        true,
        "token.mint.seated: only the operator mints for a participant on stage",
    ),
];

/// The rule governing `action` (every action has exactly one).
pub fn rule_for(action: Action) -> &'static Rule {
    PERMISSIONS
        .iter()
        .find(|r| r.action == action)
        .expect("every action has a rule in PERMISSIONS")
}

/// Whether `role` (or the operator key, when `operator`) may take `action`.
///
/// For the operator key only the rule's `operator` column counts: it has no seat in the room.
pub fn check(action: Action, role: Role, operator: bool) -> Result<(), Refusal> {
    let rule = rule_for(action);
    let ok = if operator {
        rule.operator
    } else {
        rule.allowed.contains(&role)
    };
    if ok {
        Ok(())
    } else {
        let who = if operator {
            "the operator key".to_string()
        } else {
            format!("a {}", role.as_str())
        };
        Err(Refusal::Forbidden {
            rule: rule.name,
            reason: format!("{who} may not take this action"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_exactly_one_rule() {
        let mut actions: Vec<Action> = PERMISSIONS.iter().map(|r| r.action).collect();
        let n = actions.len();
        actions.dedup();
        for (i, a) in actions.iter().enumerate() {
            assert!(!actions[i + 1..].contains(a), "duplicate rule for {a:?}");
        }
        assert_eq!(n, actions.len());
    }

    #[test]
    fn forbidden_names_the_rule() {
        let err = check(Action::Approve, Role::Speaker, false).unwrap_err();
        assert!(
            matches!(err, Refusal::Forbidden { rule, .. } if rule.starts_with("stage.approve"))
        );
    }
}
