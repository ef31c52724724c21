//! tribune's admission policy, pure: who gets in, in which class, and what a refused client is
//! told. No IO and no clock: time is an argument.
//!
//! - [`class`]: a request's class (control, join, browse, shared bytes) from its method and path;
//! - [`refusal`]: the refusal vocabulary (`waiting_room`, `overloaded`, `rate_limited`, …), each
//!   with its status, `Retry-After` and JSON body;
//! - [`waiting`]: the waiting room in front of a full node (numbered, signed tickets);
//! - [`pow`]: the proof-of-work shield's challenges, tickets, replay set and switch;
//! - [`Pass`]: what a joining listener brings (a waiting-room ticket, a proof of work);
//! - [`LastMinute`]: events in the last minute (whom a space turned away);
//! - [`address_key`]: the key per-address limits count a client under (an IPv6 /64).

pub mod address;
pub mod class;
pub mod last_minute;
pub mod pass;
pub mod pow;
pub mod refusal;
pub mod waiting;

pub use address::address_key;
pub use last_minute::LastMinute;
pub use pass::{MAX_PASS, Pass};
pub use refusal::{Class, Reason, Refusal};
