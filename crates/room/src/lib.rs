//! The control core of a tribune space: who may do what, and what follows.
//!
//! This crate is **pure**: no IO, no threads, no clock. Time enters as an argument (`now_ms`, Unix
//! milliseconds), so a two-hour space can be simulated in a test in milliseconds. The server feeds
//! [`Command`]s into a [`Room`] and carries out the [`Effect`]s it returns (closing WHIP sessions,
//! muting a speaker in the mix, persisting durable state); the [`Event`]s go to the event stream.
//!
//! - [`permissions`]: the one permission table. Every role check goes through
//!   [`permissions::check`]; state checks (ended space, full stage) live in [`Room::apply`].
//! - [`Room`]: the space state machine (lifecycle, stage, moderation, grace period, host takeover).
//! - [`timeline`]: who spoke when, from audio levels, for the replay page.
//! - [`presence`]: a constant-memory count of distinct listeners seen in a window (HyperLogLog).
//! - [`reactions`]: the emoji set, per-interval counts and totals.
//! - [`viewers`]: anonymous listeners counted from sampled beacons at a bounded cost.
//! - [`audience`]: a bounded set of recently active participants (whom a host can invite).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addresses;
pub mod audience;
mod command;
mod config;
mod event;
pub mod permissions;
pub mod presence;
pub mod reactions;
mod refusal;
mod role;
mod room;
pub mod timeline;
pub mod viewers;

pub use addresses::Addresses;
pub use audience::Audience;
pub use command::{Actor, Command};
pub use config::Config;
pub use event::{Effect, Event, Outcome, ParticipantView, Snapshot};
pub use permissions::{Action, PERMISSIONS, Rule, check};
pub use presence::Presence;
pub use reactions::{EMOJI, Reactions, Tally};
pub use refusal::Refusal;
pub use role::{Lifecycle, Role};
pub use room::{Durable, MAX_HANDS, MAX_INVITES, Room};
pub use timeline::{Segment, Timeline};
pub use viewers::Viewers;
