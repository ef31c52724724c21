//! Limits and timings of a space.

use serde::{Deserialize, Serialize};

/// Limits and timings of a space. [`Config::default`] gives the X-style stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Most participants on stage, host and co-hosts included (X-style: 1 + 2 + 10 = 13).
    pub stage_limit: usize,
    /// Most co-hosts at once (2, as in X Spaces).
    pub max_cohosts: usize,
    /// How long a live space whose stage has no connected session stays live (5 minutes, so a
    /// network blip never ends the show).
    pub grace_ms: u64,
    /// How long the host must be unseen before a co-host may take over (1 minute).
    pub host_absence_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stage_limit: 13,
            max_cohosts: 2,
            grace_ms: 300_000,
            host_absence_ms: 60_000,
        }
    }
}
