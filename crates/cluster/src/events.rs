//! A space's event stream through Redis: the owner appends each frame once; every other node
//! reads the log and serves its own subscribers from it.
//!
//! Key `tribune:events:{id}` is a Redis stream, capped at about [`HISTORY`] entries
//! (`XADD … MAXLEN ~`), each entry holding `id` (the owner's event id, what clients send back as
//! `Last-Event-ID`) and `frame` (the SSE bytes as the owner made them). So the log is the bounded
//! history a subscriber resumes from on any node, and the bus at once. It expires a day after the
//! last frame.

use redis::aio::ConnectionManager;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};

use crate::directory::Error;

/// Entries kept per space (approximately: Redis trims whole nodes of the stream).
pub const HISTORY: usize = 512;

/// Seconds a space's log outlives its last frame.
const EXPIRE_S: i64 = 86_400;

/// After the fence: `KEYS[2]` the log, `ARGV[2]` the cap, `ARGV[3]` the expiry, then pairs of
/// event id and frame.
const APPEND: &str = r"
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[i], 'frame', ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
";

fn log_key(space: &str) -> String {
    format!("tribune:events:{space}")
}

/// One frame of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Redis's entry id (where a reader continues from).
    pub entry: String,
    /// The owner's event id.
    pub id: u64,
    /// The SSE frame.
    pub frame: Vec<u8>,
}

/// Appends frames (the owner's side).
#[derive(Clone)]
pub struct EventLog {
    conn: ConnectionManager,
}

fn field<'a>(map: &'a std::collections::HashMap<String, Value>, name: &str) -> Option<&'a [u8]> {
    match map.get(name)? {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

fn logged(entry: &redis::streams::StreamId) -> Option<Logged> {
    let id = std::str::from_utf8(field(&entry.map, "id")?)
        .ok()?
        .parse()
        .ok()?;
    Some(Logged {
        entry: entry.id.clone(),
        id,
        frame: field(&entry.map, "frame")?.to_vec(),
    })
}

impl EventLog {
    /// The log on `conn`.
    pub fn new(conn: ConnectionManager) -> EventLog {
        EventLog { conn }
    }

    /// Appends `frames` (`(event id, SSE bytes)`) of `space` in one round trip, fenced: `lease`
    /// is the writer's `"{node} {epoch}"` ([`crate::leases::Held::value`]); a writer that no
    /// longer holds the space's lease is refused ([`crate::leases::STALE`]) and nothing is
    /// appended.
    pub async fn append(
        &self,
        space: &str,
        lease: &str,
        frames: &[(u64, Vec<u8>)],
    ) -> Result<(), Error> {
        if frames.is_empty() {
            return Ok(());
        }
        let script = redis::Script::new(&format!("{}{APPEND}", crate::leases::FENCE));
        let mut call = script.prepare_invoke();
        call.key(crate::leases::lease_key(space))
            .key(log_key(space))
            .arg(lease)
            .arg(HISTORY)
            .arg(EXPIRE_S);
        for (id, frame) in frames {
            call.arg(id.to_string()).arg(frame.as_slice());
        }
        let mut c = self.conn.clone();
        call.invoke_async::<()>(&mut c).await?;
        Ok(())
    }

    /// The last `count` frames of `space`, oldest first.
    pub async fn history(&self, space: &str, count: usize) -> Result<Vec<Logged>, Error> {
        let mut c = self.conn.clone();
        let reply: StreamRangeReply = c.xrevrange_count(log_key(space), "+", "-", count).await?;
        let mut out: Vec<Logged> = reply.ids.iter().filter_map(logged).collect();
        out.reverse();
        Ok(out)
    }
}

/// Reads a space's log as it grows (a node with subscribers of a space it does not own). Blocking
/// reads take a connection of their own, never the shared multiplexed one.
pub struct Reader {
    conn: redis::aio::MultiplexedConnection,
    key: String,
    after: String,
}

impl Reader {
    /// A reader of `space`'s log from after Redis entry `after` (`"$"`: only what comes next).
    pub async fn open(url: &str, space: &str, after: &str) -> Result<Reader, Error> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        // Reads block for up to a second; the client's default (500 ms) would cut them.
        conn.set_response_timeout(std::time::Duration::from_secs(5));
        Ok(Reader {
            conn,
            key: log_key(space),
            after: after.to_owned(),
        })
    }

    /// The next frames, waiting at most `block_ms` (under 4 s) for some (an empty answer is
    /// not the end).
    pub async fn next(&mut self, block_ms: usize) -> Result<Vec<Logged>, Error> {
        let opts = StreamReadOptions::default().block(block_ms).count(256);
        let reply: Option<StreamReadReply> = self
            .conn
            .xread_options(&[&self.key], &[&self.after], &opts)
            .await?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in &key.ids {
                self.after = entry.id.clone();
                if let Some(l) = logged(entry) {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }
}
