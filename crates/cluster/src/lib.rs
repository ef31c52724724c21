//! tribune nodes sharing one Redis.
//!
//! - [`directory`]: each node registers itself (id, public URL, UDP address, load, the spaces it
//!   owns) under a key that expires unless renewed, so a node that dies leaves the directory by
//!   itself within one TTL; any node lists the live ones.
//! - [`spaces`]: which node owns each space (claimed once, at creation) and the summary every
//!   node lists for it.
//! - [`copy`]: the byte stream a hot standby copies a space's recording and rendition from.
//! - [`leases`]: who may run a space: a lease with a fencing epoch that every write on the
//!   space's behalf is checked against.
//! - [`state`]: the spaces' durable state (records, timelines), the shared copy each owner's
//!   SQLite writes through to.
//! - [`events`]: each space's event frames, appended once by its owner to a capped Redis stream
//!   that is both the bus other nodes read and the history `Last-Event-ID` resumes from.

pub mod copy;
pub mod directory;
pub mod events;
pub mod leases;
pub mod spaces;
pub mod state;

pub use directory::{Directory, NodeInfo};
pub use events::{EventLog, Logged, Reader};
pub use leases::{Held, Holder, Leases};
pub use spaces::{Owner, Row, SpaceRecords};
pub use state::RedisState;
