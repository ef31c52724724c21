//! Who acts ([`Actor`]) and what they ask for ([`Command`]).

use crate::Role;

/// The participant (or the operator key) behind a command, as authenticated by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's subject; `"operator"` for the operator key.
    pub sub: String,
    /// Display name from the token.
    pub name: String,
    /// The role written in the token: only a claim, see [`crate::Room::current_role`].
    pub token_role: Role,
    /// True for the operator key, which acts from outside the room (see [`crate::permissions`]).
    pub operator: bool,
}

impl Actor {
    /// A participant acting with a token of `token_role`.
    pub fn new(sub: impl Into<String>, name: impl Into<String>, token_role: Role) -> Self {
        Self {
            sub: sub.into(),
            name: name.into(),
            token_role,
            operator: false,
        }
    }

    /// The operator key (sub `"operator"`).
    pub fn operator() -> Self {
        Self {
            sub: "operator".into(),
            name: "operator".into(),
            token_role: Role::Host,
            operator: true,
        }
    }
}

/// A request to change (or, for `StageToken`, `Publish`, `React`, `Subscribe`, only to check)
/// the state of a space. Targets are participant ids (`sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// Scheduled → live.
    Start,
    /// Scheduled, live or interrupted → ended.
    End,
    /// Interrupted → live.
    Resume,
    /// A listener asks to speak.
    RaiseHand,
    /// A listener withdraws its request.
    LowerHand,
    /// Bring a listener with a raised hand on stage.
    Approve {
        /// The listener.
        target: String,
    },
    /// Turn down a raised hand.
    Decline {
        /// The listener.
        target: String,
    },
    /// Invite a listener on stage.
    Invite {
        /// The listener.
        target: String,
    },
    /// The invited listener accepts and joins the stage.
    AcceptInvite,
    /// The invited listener declines.
    DeclineInvite,
    /// Ask for a speaker token (`POST /stage/token`).
    StageToken,
    /// Open a WHIP session.
    Publish,
    /// Mute one's own microphone in every mix.
    MuteSelf,
    /// Unmute oneself (refused while muted by a host).
    UnmuteSelf,
    /// Host mute: sticky until a host or co-host lifts it.
    Mute {
        /// The participant on stage.
        target: String,
    },
    /// Lift a host mute.
    Unmute {
        /// The participant on stage.
        target: String,
    },
    /// Send a speaker (or co-host) back to the audience; their sessions close at once.
    MoveToAudience {
        /// The participant on stage.
        target: String,
    },
    /// Remove a participant from the space.
    Remove {
        /// The participant.
        target: String,
    },
    /// Remove and ban a participant.
    Ban {
        /// The participant.
        target: String,
    },
    /// Make a speaker a co-host.
    NameCohost {
        /// The speaker.
        target: String,
    },
    /// Make a co-host a plain speaker again.
    RevokeCohost {
        /// The co-host.
        target: String,
    },
    /// A co-host becomes host while the host is absent.
    TakeOverHost,
    /// Send a reaction (the emoji itself is validated by [`crate::reactions`]).
    React,
    /// Open the event stream.
    Subscribe,
    /// A speaker or co-host steps down to the audience (its sessions close).
    LeaveStage,
    /// See who in the audience was recently active (to invite them on stage).
    ListAudience,
}
