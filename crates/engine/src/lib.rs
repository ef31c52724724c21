//! The space runtime: everything a live space is while it runs, drivable by anything (an HTTP
//! handler today, a cluster's control plane tomorrow). Threads and channels; no axum or hyper
//! types in its API: what it needs from HTTP (a live.opus response head) it takes as bytes.
//!
//! - [`space`]: the space handle and its commands (through the room), its locks, its lifecycle;
//! - [`mixer`], [`live`]: the mixer thread and the pager that turns its packets into Ogg pages,
//!   the live stream with its listeners ([`live::ListenerGuard`]);
//! - [`recording`], [`resume`]: the recorder thread and continuing an interrupted recording;
//! - [`hls`]: the LL-HLS packager and its stored objects;
//! - [`fanout`]: the lean listeners' writer tasks;
//! - [`rtc`], [`sdp`]: WHIP sessions (str0m) and the UDP mux, SDP checks;
//! - [`events`]: the event hub; [`public`]: the public snapshot; [`batch`]: housekeeping;
//! - [`store`], [`writer`]: SQLite and its writer thread;
//! - [`fence`]: the owner's right to publish in a cluster (its lease's local deadline);
//! - [`clock`]: the one wall clock; [`gzip`], [`priority`]: helpers.

pub mod batch;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod durable;
pub mod events;
pub mod fanout;
pub mod fence;
pub mod gzip;
pub mod hls;
pub mod live;
pub mod mixer;
pub mod priority;
pub mod public;
pub mod recording;
pub mod resume;
pub mod rtc;
pub mod sdp;
pub mod space;
pub mod store;
pub mod writer;

pub use config::{CaptionsConfig, SpaceConfig};
pub use space::Space;
