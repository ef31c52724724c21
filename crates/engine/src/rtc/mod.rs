//! The WebRTC side of WHIP: the shared UDP port ([`mux`]), one task per peer ([`session`]) and
//! the allocation-free STUN peek used to route first packets ([`stun`]), and DTLS on OpenSSL
//! ([`dtls`]).

pub mod dtls;
pub mod mux;
pub mod session;
pub mod stun;
