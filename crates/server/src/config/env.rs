//! The environment layer of the configuration: `TRIBUNE_…` variables read through a lookup
//! function, never from the process directly, so tests pass a map and never touch (or race on)
//! the process environment. Each variable is parsed by its flag's own clap parser, so
//! `TRIBUNE_ADVERTISE=a,b` means what `--advertise a,b` means.

use clap::{CommandFactory, Parser};

use super::options::env_name;
use super::{Args, ConfigError};

impl Args {
    /// The options the environment sets: for each flag with a variable ([`env_name`]) that
    /// `env` gives a non-empty value, that value as if given as the flag.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Args, ConfigError> {
        let mut argv = vec!["tribune".to_owned()];
        for arg in Args::command().get_arguments() {
            let Some(flag) = arg.get_long() else { continue };
            let Some(name) = env_name(flag) else { continue };
            let Some(value) = env(&name).filter(|v| !v.is_empty()) else {
                continue;
            };
            let one = format!("--{flag}={value}");
            // Alone first, so a bad value is blamed on its variable.
            if let Err(e) = Args::try_parse_from(["tribune", one.as_str()]) {
                return Err(ConfigError::Env {
                    name,
                    reason: first_line(&e.to_string()),
                });
            }
            argv.push(one);
        }
        Args::try_parse_from(&argv).map_err(|e| ConfigError::Env {
            name: "TRIBUNE_*".into(),
            reason: first_line(&e.to_string()),
        })
    }

    /// These options over `lower`'s, field by field (flags over the environment).
    pub fn over(self, lower: Args) -> Args {
        // No `..`: a new field that is not layered here does not compile.
        Args {
            config: self.config.or(lower.config),
            listen: self.listen.or(lower.listen),
            udp: self.udp.or(lower.udp),
            advertise: self.advertise.or(lower.advertise),
            admin_key: self.admin_key.or(lower.admin_key),
            jwt_secret: self.jwt_secret.or(lower.jwt_secret),
            data_dir: self.data_dir.or(lower.data_dir),
            bitrate: self.bitrate.or(lower.bitrate),
            page_ms: self.page_ms.or(lower.page_ms),
            burst_ms: self.burst_ms.or(lower.burst_ms),
            slow_listener_ms: self.slow_listener_ms.or(lower.slow_listener_ms),
            token_ttl: self.token_ttl.or(lower.token_ttl),
            max_body: self.max_body.or(lower.max_body),
            ice_timeout: self.ice_timeout.or(lower.ice_timeout),
            stage_limit: self.stage_limit.or(lower.stage_limit),
            max_listeners: self.max_listeners.or(lower.max_listeners),
            grace: self.grace.or(lower.grace),
            host_absence: self.host_absence.or(lower.host_absence),
            join_ttl: self.join_ttl.or(lower.join_ttl),
            presence_window: self.presence_window.or(lower.presence_window),
            part_ms: self.part_ms.or(lower.part_ms),
            segment_ms: self.segment_ms.or(lower.segment_ms),
            tls_listen: self.tls_listen.or(lower.tls_listen),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            trusted_proxy: self.trusted_proxy.or(lower.trusted_proxy),
            captions_model: self.captions_model.or(lower.captions_model),
            captions_language: self.captions_language.or(lower.captions_language),
            captions_slowdown_ms: self.captions_slowdown_ms.or(lower.captions_slowdown_ms),
            control_listen: self.control_listen.or(lower.control_listen),
            max_conns_per_ip: self.max_conns_per_ip.or(lower.max_conns_per_ip),
            max_inflight: self.max_inflight.or(lower.max_inflight),
            ip_rate: self.ip_rate.or(lower.ip_rate),
            join_rate: self.join_rate.or(lower.join_rate),
            whip_rate: self.whip_rate.or(lower.whip_rate),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            max_header_bytes: self.max_header_bytes.or(lower.max_header_bytes),
            shield: self.shield.or(lower.shield),
            shield_bits: self.shield_bits.or(lower.shield_bits),
            shield_joins_per_s: self.shield_joins_per_s.or(lower.shield_joins_per_s),
            log: self.log.or(lower.log),
            fanout_shard: self.fanout_shard.or(lower.fanout_shard),
            redis: self.redis.or(lower.redis),
            node_id: self.node_id.or(lower.node_id),
            public_url: self.public_url.or(lower.public_url),
            head_timeout_ms: self.head_timeout_ms.or(lower.head_timeout_ms),
        }
    }
}

/// clap's message without its usage lines.
fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or(s)
        .trim_start_matches("error: ")
        .to_owned()
}
