//! Roles of participants and the lifecycle of a space.

use serde::{Deserialize, Serialize};

/// A participant's role in a space.
///
/// The room's own record is authoritative (see [`crate::Room::current_role`]); the role written in
/// a token is only a claim that the record may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The one host: ends the space, names co-hosts, moderates everyone.
    Host,
    /// Up to `Config::max_cohosts`: moderate speakers and listeners.
    Cohost,
    /// On stage: may publish audio.
    Speaker,
    /// The audience: listens, raises a hand, reacts.
    Listener,
}

impl Role {
    /// All roles, highest first (for tables and tests).
    pub const ALL: [Role; 4] = [Role::Host, Role::Cohost, Role::Speaker, Role::Listener];

    /// Whether this role is on stage (counts toward the stage limit and may publish).
    pub fn on_stage(self) -> bool {
        self != Role::Listener
    }

    /// The lowercase name used in JSON and tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Cohost => "cohost",
            Role::Speaker => "speaker",
            Role::Listener => "listener",
        }
    }
}

/// Where a space is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Announced, not started: listeners may already open it and wait.
    Scheduled,
    /// On air.
    Live,
    /// Was live when the server stopped; the host may resume it.
    Interrupted,
    /// Over for good; only the recording remains.
    Ended,
}
