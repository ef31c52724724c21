//! What the room tells the world: [`Event`]s for the event stream, [`Effect`]s for the IO layer.

use serde::{Deserialize, Serialize};

use crate::{Lifecycle, Role};

/// The result of an accepted command: events to broadcast and effects to carry out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Broadcast to subscribers, in order.
    pub events: Vec<Event>,
    /// Carried out by the server, in order.
    pub effects: Vec<Effect>,
}

impl Outcome {
    /// Nothing happened (a no-op or a pure check).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.effects.is_empty()
    }

    pub(crate) fn event(&mut self, e: Event) -> &mut Self {
        self.events.push(e);
        self
    }

    pub(crate) fn effect(&mut self, e: Effect) -> &mut Self {
        if e != Effect::Persist || !self.effects.contains(&Effect::Persist) {
            self.effects.push(e);
        }
        self
    }

    pub(crate) fn persist(&mut self) -> &mut Self {
        self.effect(Effect::Persist)
    }
}

/// What the IO layer must do after a command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Close every WHIP session of `sub` at once; `"*"` means every session of the space.
    CloseSessions {
        /// The participant, or `"*"`.
        sub: String,
    },
    /// Drop (`true`) or restore (`false`) `sub`'s audio in every mix. The value is the effective
    /// mute: self mute OR host mute.
    SetMuted {
        /// The participant.
        sub: String,
        /// Effective mute.
        muted: bool,
    },
    /// Roles, bans or the lifecycle changed: write [`crate::Room::durable`].
    Persist,
}

/// A state change, serialized once as JSON and sent to every subscriber over SSE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The lifecycle changed.
    State {
        /// The new lifecycle.
        lifecycle: Lifecycle,
    },
    /// A listener asks to speak.
    HandRaised {
        /// Who.
        sub: String,
        /// Display name.
        name: String,
    },
    /// A hand was lowered (withdrawn by the listener).
    HandLowered {
        /// Who.
        sub: String,
    },
    /// A listener was approved on stage: it may now ask for its speaker token.
    Approved {
        /// Who.
        sub: String,
    },
    /// A raised hand was declined.
    Declined {
        /// Who.
        sub: String,
    },
    /// A listener was invited on stage.
    Invited {
        /// Who.
        sub: String,
    },
    /// The invited listener accepted: it is now a speaker.
    InviteAccepted {
        /// Who.
        sub: String,
    },
    /// The invited listener declined.
    InviteDeclined {
        /// Who.
        sub: String,
    },
    /// A participant on stage was muted, by itself or by a host.
    Muted {
        /// Who.
        sub: String,
        /// True for a (sticky) host mute.
        by_host: bool,
    },
    /// A participant was unmuted (self unmute, or a host mute lifted).
    Unmuted {
        /// Who.
        sub: String,
    },
    /// Sent back to the audience.
    MovedToAudience {
        /// Who.
        sub: String,
    },
    /// Removed from the space.
    Removed {
        /// Who.
        sub: String,
    },
    /// Banned from the space.
    Banned {
        /// Who.
        sub: String,
    },
    /// A new host.
    HostChanged {
        /// Who.
        sub: String,
        /// Display name.
        name: String,
    },
    /// A co-host was named.
    CohostNamed {
        /// Who.
        sub: String,
    },
    /// A co-host became a plain speaker again.
    CohostRevoked {
        /// Who.
        sub: String,
    },
    /// The whole stage roster (batched: see [`crate::Room::take_roster_if_dirty`]).
    Stage {
        /// Host first, then co-hosts, then speakers in the order they came on stage.
        participants: Vec<ParticipantView>,
    },
}

/// One participant on stage, as shown to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    /// Participant id.
    pub sub: String,
    /// Display name.
    pub name: String,
    /// Current role (host, cohost or speaker).
    pub role: Role,
    /// Effective mute (self or host).
    pub muted: bool,
    /// Muted by a host or co-host (sticky).
    pub host_muted: bool,
    /// Has at least one WHIP session.
    pub connected: bool,
}

/// The full state a new (or resuming) subscriber starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Lifecycle.
    pub lifecycle: Lifecycle,
    /// The host's sub, if any.
    pub host: Option<String>,
    /// The stage roster (as in [`Event::Stage`]).
    pub stage: Vec<ParticipantView>,
    /// Raised hands, oldest first: `(sub, name)`.
    pub hands: Vec<(String, String)>,
    /// Open invitations (subs).
    pub invited: Vec<String>,
    /// Co-hosts (subs).
    pub cohosts: Vec<String>,
}
