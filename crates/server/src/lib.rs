//! tribune's server as an embeddable library: HTTP API, WHIP ingest on one UDP port, one mixer
//! thread per live space, the shared live Ogg/Opus stream, and recordings.
//!
//! Start one with [`Server::bind`] then [`Server::serve`]; see `crates/cli` for the binary.
#![deny(unsafe_code)]

pub mod accept;
pub mod admission;
pub mod api;
pub mod app;
pub mod auth;
pub mod batch;
pub mod body;
pub mod client_addr;
pub mod config;
pub mod conn_limit;
pub mod error;
pub mod events;
pub mod events_http;
pub mod fanout;
pub mod guard;
pub mod gzip;
pub mod hls;
pub mod hls_http;
pub mod live;
pub mod metrics;
pub mod mixer;
pub mod openapi;
pub mod plain;
pub mod priority;
pub mod public;
pub mod recording;
pub mod refusal;
pub mod resume;
pub mod rtc;
pub mod sdp;
pub mod serve;
pub mod shield;
pub mod space;
pub mod store;
pub mod streams;
pub mod tls;
pub mod waiting;
pub mod web;
pub mod whip;
pub mod writer;

pub use app::{App, AppState, Server};
pub use config::{Args, Config};
