//! Who may run a space: a lease in Redis with a fencing epoch.
//!
//! Keys:
//! - `tribune:lease:{id}`: `"{node} {epoch}"`, set with an expiry of the lease's TTL, renewed by
//!   the holder well within it. Taken only when absent, atomically, by a script;
//! - `tribune:epoch:{id}`: the last epoch given for the space. Every taking increments it, so a
//!   later holder always has a larger epoch than any earlier one.
//!
//! Every write a holder makes on the space's behalf (its record and timeline, its event log, its
//! listing) goes through a script that first compares the lease with the writer's
//! `"{node} {epoch}"` ([`Held::value`]) and refuses the write ([`STALE`]) when they differ: a
//! holder that was frozen, or cut off, and lost the lease meanwhile cannot write over its
//! successor, whatever it still believes.
//!
//! - `tribune:standby:{id}`, `tribune:standing:{node}`: the hot standby the owner named for
//!   each space ([`Leases::assign`]), renewed by the owner, lapsing without it.
//!
//! A renewal of a lease that has lapsed with nobody taking it (or that Redis lost, restarted
//! without persistence) puts it back, as long as no later epoch was given: the holder is still
//! the last one to have had it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::ConnectionManager;

use crate::directory::Error;

/// Seconds a standby's naming lives unless its owner names it again.
pub const STANDBY_TTL_S: i64 = 10;

/// The error text of a write refused for a stale epoch.
pub const STALE: &str = "STALE";

pub(crate) fn lease_key(id: &str) -> String {
    format!("tribune:lease:{id}")
}

fn epoch_key(id: &str) -> String {
    format!("tribune:epoch:{id}")
}

/// Takes an absent lease: `KEYS[1]` lease, `KEYS[2]` epoch counter, `ARGV[1]` node,
/// `ARGV[2]` TTL ms. The new epoch, or 0 when someone holds it.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local e = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. e, 'PX', ARGV[2])
return e
";

/// Renews a held lease: `ARGV[1]` node, `ARGV[2]` epoch, `ARGV[3]` TTL ms. 1 when renewed
/// (or put back, see the module docs), 0 when another holder has it or a later epoch was given.
const RENEW: &str = r"
local mine = ARGV[1] .. ' ' .. ARGV[2]
local v = redis.call('GET', KEYS[1])
if v == mine then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if v then return 0 end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], mine, 'PX', ARGV[3])
return 1
";

/// Gives a lease up: deleted only if still `ARGV[1]`.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The leases this node holds, by space: what its fenced writes carry. Shared by the async
/// side (renewals, event appends) and the store's writer thread.
#[derive(Default)]
pub struct Held {
    node: String,
    map: Mutex<HashMap<String, u64>>,
}

impl Held {
    /// The leases of node `node` (none held yet).
    pub fn new(node: &str) -> Arc<Held> {
        Arc::new(Held {
            node: node.to_owned(),
            map: Mutex::new(HashMap::new()),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Notes that this node holds `id`'s lease at `epoch`.
    pub fn insert(&self, id: &str, epoch: u64) {
        self.map.lock().insert(id.to_owned(), epoch);
    }

    /// Forgets `id`'s lease (lost or given up).
    pub fn remove(&self, id: &str) {
        self.map.lock().remove(id);
    }

    /// The epoch this node holds `id` at.
    pub fn epoch(&self, id: &str) -> Option<u64> {
        self.map.lock().get(id).copied()
    }

    /// The lease's value as this node holds it, `"{node} {epoch}"`: what a fenced write of
    /// `id` is checked against. `None` when this node does not hold it (the write is refused
    /// before it is sent).
    pub fn value(&self, id: &str) -> Option<String> {
        self.epoch(id).map(|e| format!("{} {e}", self.node))
    }

    /// Every lease held: `(space, epoch)`.
    pub fn all(&self) -> Vec<(String, u64)> {
        self.map
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub epoch: u64,
}

/// Parses a lease's value, `"{node} {epoch}"`.
pub fn parse_holder(v: &str) -> Option<Holder> {
    let (node, epoch) = v.rsplit_once(' ')?;
    Some(Holder {
        node: node.to_owned(),
        epoch: epoch.parse().ok()?,
    })
}

/// The leases in Redis (cheap to clone).
#[derive(Clone)]
pub struct Leases {
    conn: ConnectionManager,
    ttl: Duration,
}

impl Leases {
    /// Leases of `ttl` on `conn`.
    pub fn new(conn: ConnectionManager, ttl: Duration) -> Leases {
        Leases { conn, ttl }
    }

    /// The TTL of a lease.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes `id`'s lease for `node` if nobody holds it: its new epoch, or `None`.
    pub async fn acquire(&self, id: &str, node: &str) -> Result<Option<u64>, Error> {
        let mut c = self.conn.clone();
        let e: u64 = redis::Script::new(ACQUIRE)
            .key(lease_key(id))
            .key(epoch_key(id))
            .arg(node)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok((e > 0).then_some(e))
    }

    /// Renews every lease `node` holds (`(space, epoch)`), in one round trip: for each, whether
    /// it is still this node's.
    pub async fn renew(&self, node: &str, held: &[(String, u64)]) -> Result<Vec<bool>, Error> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let script = redis::Script::new(RENEW);
        let mut c = self.conn.clone();
        // Load once, so the pipeline's EVALSHAs find it (a Redis restarted since has lost it).
        script.prepare_invoke().load_async(&mut c).await?;
        let mut pipe = redis::pipe();
        for (id, epoch) in held {
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(2)
                .arg(lease_key(id))
                .arg(epoch_key(id))
                .arg(node)
                .arg(*epoch)
                .arg(self.ttl.as_millis() as u64);
        }
        let out: Vec<i64> = pipe.query_async(&mut c).await?;
        Ok(out.into_iter().map(|v| v == 1).collect())
    }

    /// Gives up `id`'s lease if `node` still holds it at `epoch`.
    pub async fn release(&self, id: &str, node: &str, epoch: u64) -> Result<bool, Error> {
        let mut c = self.conn.clone();
        let n: i64 = redis::Script::new(RELEASE)
            .key(lease_key(id))
            .arg(format!("{node} {epoch}"))
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    /// Names each space's hot standby (`(space, node)`), for [`STANDBY_TTL_S`] unless named
    /// again: `tribune:standby:{id}` = node, and the space in the node's set
    /// `tribune:standing:{node}`.
    pub async fn assign(&self, pairs: &[(String, String)]) -> Result<(), Error> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (id, node) in pairs {
            let set = format!("tribune:standing:{node}");
            pipe.cmd("SET")
                .arg(format!("tribune:standby:{id}"))
                .arg(node)
                .arg("EX")
                .arg(STANDBY_TTL_S)
                .ignore()
                .sadd(&set, id)
                .ignore()
                .expire(&set, STANDBY_TTL_S)
                .ignore();
        }
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// The spaces `node` was named standby of lately, each with the node named now (`None`
    /// once the naming lapsed: its owner stopped renewing it).
    pub async fn standing(&self, node: &str) -> Result<Vec<(String, Option<String>)>, Error> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("tribune:standing:{node}"))
            .query_async(&mut c)
            .await?;
        let named = self.standby_of(&ids).await?;
        Ok(ids.into_iter().zip(named).collect())
    }

    /// The standby named now for each of `ids`.
    pub async fn standby_of(&self, ids: &[String]) -> Result<Vec<Option<String>>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("GET").arg(format!("tribune:standby:{id}"));
        }
        let mut c = self.conn.clone();
        Ok(pipe.query_async(&mut c).await?)
    }

    /// Who holds `id`'s lease now.
    pub async fn holder(&self, id: &str) -> Result<Option<Holder>, Error> {
        let mut c = self.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(lease_key(id))
            .query_async(&mut c)
            .await?;
        Ok(v.as_deref().and_then(parse_holder))
    }
}

/// The opening of every fenced script: `KEYS[1]` is the lease, `ARGV[1]` the writer's
/// `"{node} {epoch}"`; a mismatch is refused with [`STALE`].
pub(crate) const FENCE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('STALE the lease of this space is held at another epoch')
end
";

/// Whether `e` is a refusal for a stale epoch.
pub fn is_stale(e: &redis::RedisError) -> bool {
    e.to_string().contains(STALE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_parse_back() {
        assert_eq!(
            parse_holder("n-1 42"),
            Some(Holder {
                node: "n-1".into(),
                epoch: 42
            })
        );
        assert_eq!(parse_holder("n1"), None);
        assert_eq!(parse_holder("n1 x"), None);
        let held = Held::new("a");
        assert_eq!(held.value("s"), None);
        held.insert("s", 3);
        assert_eq!(held.value("s").as_deref(), Some("a 3"));
        assert_eq!(parse_holder(&held.value("s").unwrap()).unwrap().epoch, 3);
    }
}
