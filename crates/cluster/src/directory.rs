//! The node directory in Redis.
//!
//! Keys (all under the `tribune:` prefix, so one Redis database may hold other things):
//! - `tribune:node:{id}`: the node's [`NodeInfo`] as JSON, set with an expiry of the TTL and
//!   rewritten by the node every TTL/3, so it outlives two missed renewals and no more;
//! - `tribune:nodes`: the set of ids ever registered. Listing reads the set and the records in
//!   one round trip each; an id whose record has expired is dropped from the set.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

const NODES: &str = "tribune:nodes";

fn node_key(id: &str) -> String {
    format!("tribune:node:{id}")
}

/// What a node says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id (`--node-id`).
    pub id: String,
    /// Where clients and other nodes reach its HTTP API (`--public-url`).
    pub public_url: String,
    /// Its WebRTC UDP address, as it advertises it.
    pub udp: Option<String>,
    /// Its load: live.opus listeners and event-stream subscribers it holds now.
    pub load: u64,
    /// The spaces it owns (runs the mixer, recording and packaging of).
    pub spaces: Vec<String>,
    /// Unix ms of this record.
    pub at_ms: u64,
}

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("a node record is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Whether Redis refused a fenced write: the writer's lease is stale.
    pub fn is_stale(&self) -> bool {
        matches!(self, Error::Redis(e) if crate::leases::is_stale(e))
    }
}

/// A handle on the directory (cheap to clone: one multiplexed, reconnecting connection).
#[derive(Clone)]
pub struct Directory {
    conn: ConnectionManager,
    ttl: Duration,
}

impl Directory {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`); records live for `ttl` unless renewed.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Directory, Error> {
        let client = redis::Client::open(url)?;
        // Answers may take a while on a loaded box; 500 ms (the client's default) cut appends
        // that Redis then made anyway.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            // Back within a second of Redis: an owner must renew its leases soon after an
            // outage, before a standby takes the lapse for a dead owner.
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Directory { conn, ttl })
    }

    /// The shared connection (for [`crate::SpaceRecords`] and [`crate::EventLog`]).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// How often a node should renew its record: a third of the TTL.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Writes (or renews) `node`'s record.
    pub async fn register(&self, node: &NodeInfo) -> Result<(), Error> {
        let mut c = self.conn.clone();
        let json = serde_json::to_string(node)?;
        let secs = self.ttl.as_secs().max(1);
        redis::pipe()
            .atomic()
            .set_ex(node_key(&node.id), json, secs)
            .ignore()
            .sadd(NODES, &node.id)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Removes `id`'s record (a node stopping cleanly).
    pub async fn leave(&self, id: &str) -> Result<(), Error> {
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .del(node_key(id))
            .ignore()
            .srem(NODES, id)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// The live nodes, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let mut c = self.conn.clone();
        let mut ids: Vec<String> = c.smembers(NODES).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| node_key(id)).collect();
        let records: Vec<Option<String>> = c.mget(&keys).await?;
        let mut live = Vec::new();
        let mut gone = Vec::new();
        for (id, rec) in ids.into_iter().zip(records) {
            match rec {
                Some(json) => live.push(serde_json::from_str(&json)?),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let _: () = c.srem(NODES, &gone).await?;
        }
        Ok(live)
    }
}
