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

const SPACES: &str = "tribune:spaces";

/// Seconds a node's listener report lives unless renewed.
const LISTENERS_TTL_S: i64 = 10;

fn listeners_key(id: &str) -> String {
    format!("tribune:listeners:{id}")
}

fn space_key(id: &str) -> String {
    format!("tribune:space:{id}")
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

    /// Rewrites the summaries of spaces this node owns (one round trip for all of them).
    pub async fn update(&self, summaries: &[(String, String)]) -> Result<(), Error> {
        if summaries.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for (id, summary) in summaries {
            pipe.hset(space_key(id), "summary", summary).ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Writes the whole records of spaces `owner` runs (owner, URL, summary), claimed or not: an
    /// owner does this on every renewal, so a Redis that lost its data (restarted without
    /// persistence, or failed over to an empty replica) learns again who runs what.
    pub async fn assert_owned(
        &self,
        owner: &Owner,
        summaries: &[(String, String)],
    ) -> Result<(), Error> {
        if summaries.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for (id, summary) in summaries {
            let key = space_key(id);
            pipe.hset(&key, "owner", &owner.node)
                .ignore()
                .hset(&key, "url", &owner.url)
                .ignore()
                .hset(&key, "summary", summary)
                .ignore()
                .sadd(SPACES, id)
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
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
