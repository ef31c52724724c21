//! The proof-of-work shield's pure parts: challenges and tickets ([`ticket`]), the set that
//! makes a ticket single-use ([`replay`]), and the automatic on/off switch with its hysteresis
//! ([`switch`]). Time is an argument everywhere.

pub mod replay;
pub mod switch;
pub mod ticket;
