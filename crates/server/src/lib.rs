//! tribune's server as an embeddable library: HTTP API, WHIP ingest on one UDP port, one mixer
//! thread per live space, the shared live Ogg/Opus stream, and recordings.
//!
//! Start one with [`Server::bind`] then [`Server::serve`]; see `crates/cli` for the binary.
#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod captions_http;
pub mod cluster;
pub mod config;
pub mod error;
pub mod events_http;
pub mod file;
pub mod guard;
pub mod hls_http;
pub mod openapi;
pub mod plain;
pub mod public;
pub mod refusal;
pub mod shield;
pub mod streams;
pub mod web;
pub mod whip;

pub use app::{App, AppState, Server};
pub use config::{Args, Config};
