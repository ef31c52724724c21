//! Which node owns which space, and what every node lists for it.
//!
//! Keys:
//! - `tribune:space:{id}`: a hash with `owner` (node id), `url` (the owner's public URL) and
//!   `summary` (the space's summary as the owner last wrote it, JSON). `owner` is claimed once,
//!   with `HSETNX`, when the space is created: two nodes creating the same id race on one key and
//!   exactly one wins;
//! - `tribune:spaces`: the set of space ids, for listing.
//!
//! The owner rewrites `summary` when it changes (at most about once a second), so a space's
//! listing on another node trails its owner by that much; everything else about a space
//! (commands, streams, events) goes to or comes from the owner itself.

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::directory::Error;
use crate::leases::Held;

const SPACES: &str = "tribune:spaces";

/// Seconds a node's listener report lives unless renewed.
const LISTENERS_TTL_S: i64 = 10;

fn listeners_key(id: &str) -> String {
    format!("tribune:listeners:{id}")
}

fn space_key(id: &str) -> String {
    format!("tribune:space:{id}")
}

/// After the fence: `KEYS[2]` the record, `KEYS[3]` the set of ids; `ARGV[2..6]` owner, URL,
/// summary, origin, id.
const OWNED: &str = r"
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'url', ARGV[3], 'summary', ARGV[4], 'origin', ARGV[5])
redis.call('SADD', KEYS[3], ARGV[6])
return 1
";

/// One space's record as its owner writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    /// The summary (JSON).
    pub summary: String,
    /// Unix ms of the recording's time 0 (0: none yet).
    pub origin_ms: u64,
}

/// Where a space lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The owner's node id.
    pub node: String,
    /// The owner's public URL (`--public-url`), which other nodes forward to.
    pub url: String,
}

/// The space records (cheap to clone).
#[derive(Clone)]
pub struct SpaceRecords {
    conn: ConnectionManager,
}

impl SpaceRecords {
    /// Records on the connection `conn`.
    pub fn new(conn: ConnectionManager) -> SpaceRecords {
        SpaceRecords { conn }
    }

    /// Claims `id` for `owner`, with its first `summary`: `false` if another node (or this one)
    /// already owns a space of that id.
    pub async fn claim(&self, id: &str, owner: &Owner, summary: &str) -> Result<bool, Error> {
        let mut c = self.conn.clone();
        let key = space_key(id);
        let won: bool = c.hset_nx(&key, "owner", &owner.node).await?;
        if !won {
            return Ok(false);
        }
        redis::pipe()
            .atomic()
            .hset(&key, "url", &owner.url)
            .ignore()
            .hset(&key, "summary", summary)
            .ignore()
            .sadd(SPACES, id)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(true)
    }

    /// Writes the records of spaces `owner` runs (owner, URL, summary, recording origin), one
    /// round trip for all, each fenced by its lease ([`Held`]): a space whose lease this node
    /// no longer holds is not written. The owner does this when a summary changes and, for all
    /// its spaces, on every renewal, so a Redis that lost its data learns again who runs what.
    /// Returns the spaces refused for a stale lease.
    pub async fn assert_owned(
        &self,
        owner: &Owner,
        held: &Held,
        rows: &[Row],
    ) -> Result<Vec<String>, Error> {
        let script = redis::Script::new(&format!("{}{OWNED}", crate::leases::FENCE));
        let mut c = self.conn.clone();
        let mut sent = Vec::new();
        let mut refused = Vec::new();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for r in rows {
            let Some(lease) = held.value(&r.id) else {
                refused.push(r.id.clone());
                continue;
            };
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(3)
                .arg(crate::leases::lease_key(&r.id))
                .arg(space_key(&r.id))
                .arg(SPACES)
                .arg(lease)
                .arg(&owner.node)
                .arg(&owner.url)
                .arg(&r.summary)
                .arg(r.origin_ms)
                .arg(&r.id);
            sent.push(r.id.clone());
        }
        if sent.is_empty() {
            return Ok(refused);
        }
        script.prepare_invoke().load_async(&mut c).await?;
        let out: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(&mut c).await?;
        for (id, v) in sent.into_iter().zip(out) {
            match v {
                Err(e) if crate::leases::is_stale(&e) => refused.push(id),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        }
        Ok(refused)
    }

    /// The Unix ms its recording's time 0 stands for, as the owner of `id` last wrote it (0
    /// when it has no recording yet).
    pub async fn origin(&self, id: &str) -> Result<u64, Error> {
        let mut c = self.conn.clone();
        let v: Option<u64> = c.hget(space_key(id), "origin").await?;
        Ok(v.unwrap_or(0))
    }

    /// The owner of `id`, if the space exists.
    pub async fn owner(&self, id: &str) -> Result<Option<Owner>, Error> {
        let mut c = self.conn.clone();
        let (node, url): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(space_key(id))
            .arg("owner")
            .arg("url")
            .query_async(&mut c)
            .await?;
        Ok(match (node, url) {
            (Some(node), Some(url)) => Some(Owner { node, url }),
            _ => None,
        })
    }

    /// Reports the listeners `node` relays each space to (`(space, n)`), stamped `now_ms`.
    /// Key `tribune:listeners:{id}`: a hash of node → `n:ms`, expiring unless renewed.
    pub async fn report_listeners(
        &self,
        node: &str,
        counts: &[(String, i64)],
        now_ms: u64,
    ) -> Result<(), Error> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for (id, n) in counts {
            let key = listeners_key(id);
            pipe.hset(&key, node, format!("{n}:{now_ms}"))
                .ignore()
                .expire(&key, LISTENERS_TTL_S)
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// For each of `ids`, the sum of the other nodes' reports no older than `fresh_ms` at `now_ms`.
    pub async fn remote_listeners(
        &self,
        ids: &[String],
        me: &str,
        now_ms: u64,
        fresh_ms: u64,
    ) -> Result<Vec<i64>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(listeners_key(id));
        }
        let rows: Vec<std::collections::HashMap<String, String>> = pipe.query_async(&mut c).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.iter()
                    .filter(|(node, _)| node.as_str() != me)
                    .filter_map(|(_, v)| {
                        let (n, at) = v.split_once(':')?;
                        let (n, at) = (n.parse::<i64>().ok()?, at.parse::<u64>().ok()?);
                        (now_ms.saturating_sub(at) <= fresh_ms).then_some(n)
                    })
                    .sum()
            })
            .collect())
    }

    /// Reports the participants holding each space's event stream on `node` (`(space, subs)`),
    /// stamped `now_ms`. Key `tribune:streams:{id}`: a hash of node → `ms:sub,sub,…`.
    pub async fn report_streams(
        &self,
        node: &str,
        subs: &[(String, Vec<String>)],
        now_ms: u64,
    ) -> Result<(), Error> {
        if subs.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for (id, list) in subs {
            let key = format!("tribune:streams:{id}");
            pipe.hset(&key, node, format!("{now_ms}:{}", list.join(",")))
                .ignore()
                .expire(&key, LISTENERS_TTL_S)
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// For each of `ids`, the participants other nodes reported (no older than `fresh_ms`).
    pub async fn remote_streams(
        &self,
        ids: &[String],
        me: &str,
        now_ms: u64,
        fresh_ms: u64,
    ) -> Result<Vec<Vec<String>>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(format!("tribune:streams:{id}"));
        }
        let rows: Vec<std::collections::HashMap<String, String>> = pipe.query_async(&mut c).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut subs: Vec<String> = row
                    .iter()
                    .filter(|(node, _)| node.as_str() != me)
                    .filter_map(|(_, v)| {
                        let (at, list) = v.split_once(':')?;
                        let fresh = now_ms.saturating_sub(at.parse::<u64>().ok()?) <= fresh_ms;
                        fresh.then_some(list)
                    })
                    .flat_map(|list| list.split(',').filter(|s| !s.is_empty()).map(str::to_owned))
                    .collect();
                subs.sort();
                subs.dedup();
                subs
            })
            .collect())
    }

    /// Every space's last summary (JSON), by id.
    pub async fn summaries(&self) -> Result<Vec<(String, String)>, Error> {
        let mut c = self.conn.clone();
        let mut ids: Vec<String> = c.smembers(SPACES).await?;
        ids.sort();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hget(space_key(id), "summary");
        }
        let rows: Vec<Option<String>> = pipe.query_async(&mut c).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(id, s)| s.map(|s| (id, s)))
            .collect())
    }
}
