//! tribune nodes sharing one Redis.
//!
//! - [`directory`]: each node registers itself (id, public URL, UDP address, load, the spaces it
//!   owns) under a key that expires unless renewed, so a node that dies leaves the directory by
//!   itself within one TTL; any node lists the live ones.

pub mod directory;

pub use directory::{Directory, NodeInfo};
