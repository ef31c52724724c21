//! tribune's transport, below HTTP routing and above the sockets:
//!
//! - [`accept`]: accept loops that keep a spare descriptor, so `EMFILE` answers instead of
//!   spinning;
//! - [`conn_limit`]: connections per address and in all, and the canned `429`/`503` bytes sent to
//!   those over a cap;
//! - [`serve`]: the HTTP/1.1 and HTTP/2 serve loop with header-read and idle timeouts;
//! - [`lean`]: the plain-HTTP listener that takes live.opus listeners off hyper;
//! - [`tls`]: certificates and the HTTPS listener;
//! - [`response`]: raw HTTP/1.1 response heads (the lean listener and the fan-out write bytes);
//! - [`rewind`]: a stream that replays the bytes already read from it;
//! - [`client_addr`]: a client's address behind trusted proxies.

pub mod accept;
pub mod client_addr;
pub mod conn_limit;
pub mod lean;
pub mod response;
pub mod rewind;
pub mod serve;
pub mod tls;
