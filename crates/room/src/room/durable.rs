//! The durable part of a room: what the server writes to SQLite and restores after a restart.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Member, Room};
use crate::{Config, Lifecycle};

/// The durable state of a room, stored as JSON. Sessions, hands, invitations and self mutes are
/// not durable: they belong to connections, which do not survive a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    /// Lifecycle (a live space found at start-up is then marked interrupted by the server).
    pub lifecycle: Lifecycle,
    /// The host `(sub, name)`.
    pub host: Option<(String, String)>,
    /// Co-hosts `(sub, name)`.
    pub cohosts: Vec<(String, String)>,
    /// Approved speakers `(sub, name)`.
    pub speakers: Vec<(String, String)>,
    /// Banned subs.
    pub bans: Vec<String>,
    /// Removed subs.
    pub removed: Vec<String>,
    /// Banned client addresses (IPv6 as their /64).
    #[serde(default)]
    pub banned_addrs: Vec<IpAddr>,
    /// Subs moved down by the room, whose tokens' stage roles no longer count.
    #[serde(default)]
    pub demoted: Vec<String>,
    /// Host-muted subs (the mute is sticky across reconnects and restarts).
    #[serde(default)]
    pub host_muted: Vec<String>,
}

fn pairs(members: &[Member]) -> Vec<(String, String)> {
    members
        .iter()
        .map(|m| (m.sub.clone(), m.name.clone()))
        .collect()
}

fn members(pairs: Vec<(String, String)>) -> Vec<Member> {
    pairs
        .into_iter()
        .map(|(sub, name)| Member { sub, name })
        .collect()
}

impl Room {
    /// The durable state, to persist after an outcome with [`crate::Effect::Persist`].
    pub fn durable(&self) -> Durable {
        Durable {
            lifecycle: self.lifecycle,
            host: self.host.as_ref().map(|m| (m.sub.clone(), m.name.clone())),
            cohosts: pairs(&self.cohosts),
            speakers: pairs(&self.speakers),
            bans: self.banned.iter().cloned().collect(),
            removed: self.removed.iter().cloned().collect(),
            banned_addrs: self.banned_addrs.iter().copied().collect(),
            demoted: self.demoted.iter().cloned().collect(),
            host_muted: self.host_muted.iter().cloned().collect(),
        }
    }

    /// A room rebuilt from its durable state. A participant listed in two roles keeps the highest.
    pub fn restore(cfg: Config, d: Durable) -> Room {
        let mut room = Room::new(cfg, d.lifecycle, d.host);
        for m in members(d.cohosts) {
            if room.recorded_role(&m.sub).is_none() {
                room.cohosts.push(m);
            }
        }
        for m in members(d.speakers) {
            if room.recorded_role(&m.sub).is_none() {
                room.speakers.push(m);
            }
        }
        room.banned = d.bans.into_iter().collect();
        room.removed = d.removed.into_iter().collect();
        room.banned_addrs = d.banned_addrs.into_iter().collect();
        room.demoted = d.demoted.into_iter().collect();
        room.host_muted = d.host_muted.into_iter().collect();
        room
    }
}
