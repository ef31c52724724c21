//! The hot standby's copy of a space's files, both ends.
//!
//! On the owner, `GET /api/cluster/spaces/{id}/follow` (nodes only) tails the space's files
//! every [`TICK`] and streams what is new ([`tribune_cluster::copy`]): recording bytes and
//! segment-journal bytes from the offsets the standby says it has, each new segment file whole
//! (and the last one again if it grew: it may have been read while being written), and the open
//! segment's side file whole when it changed. The journal is read before the segment files it
//! names, and sent after them, so the standby never holds a journal line without its file. When
//! the space stops running here (ended, suspended for a handover, or taken away), a last sweep
//! after its threads have finished sends the rest, then `End`.
//!
//! On the standby, [`copy`] keeps that stream open (reconnecting every [`RETRY`] to whichever
//! node owns the space) and writes each record to the same paths the owner uses, so a takeover
//! continues from them exactly as a restart would: [`tribune_engine::resume`] for the
//! recording, the rendition's journal restore for LL-HLS.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tribune_cluster::copy::{Decoder, MAX_DATA, Record};
use tribune_engine::hls::{JOURNAL, OPEN_PARTS};

use super::{Member, NODE_HEADER};
use crate::app::{App, AppState};
use crate::error::{ApiError, ApiResult};

/// How often the owner looks at the files.
pub const TICK: Duration = Duration::from_millis(50);
/// How long a standby waits before connecting again.
const RETRY: Duration = Duration::from_millis(500);
/// A tick with nothing new sends `Alive` this often (so a dead stream is noticed).
const ALIVE_EVERY: u32 = 20;
/// A standby that hears nothing this long reconnects.
const SILENT: Duration = Duration::from_secs(3);

/// The paths of a space's files on any node.
pub struct Files {
    pub recording: PathBuf,
    pub hls: PathBuf,
}

impl Files {
    pub fn of(app: &App, id: &str) -> Files {
        Files {
            recording: tribune_engine::recording::path(&app.cfg.data_dir, id),
            hls: app.cfg.data_dir.join("hls").join(id),
        }
    }
}

/// Where a standby's copy starts from: what it has.
#[derive(serde::Deserialize, Default, Clone, Copy)]
pub struct Have {
    /// Recording bytes.
    #[serde(default)]
    pub rec: u64,
    /// Journal bytes.
    #[serde(default)]
    pub journal: u64,
    /// The highest segment it has (sent again, in case it was cut).
    #[serde(default)]
    pub seg: u64,
}

/// What the owner's tailer has sent.
struct Tail {
    files: Files,
    rec: u64,
    journal: u64,
    next_seg: u64,
    last_seg_len: Option<u64>,
    open: Option<(u64, std::time::SystemTime)>,
}

fn read_from(path: &Path, from: u64, only_lines: bool) -> std::io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len <= from {
        return Ok(Vec::new());
    }
    f.seek(SeekFrom::Start(from))?;
    let mut out = Vec::new();
    f.take((len - from).min(16 * MAX_DATA as u64))
        .read_to_end(&mut out)?;
    if only_lines {
        let keep = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        out.truncate(keep);
    }
    Ok(out)
}

fn chunks(out: &mut Vec<Bytes>, offset: u64, data: &[u8], make: fn(u64, Vec<u8>) -> Record) {
    for (i, c) in data.chunks(MAX_DATA).enumerate() {
        out.push(
            make(offset + (i * MAX_DATA) as u64, c.to_vec())
                .encode()
                .into(),
        );
    }
}

impl Tail {
    /// What is new since the last sweep, as records in a safe order.
    fn sweep(&mut self) -> std::io::Result<Vec<Bytes>> {
        let journal = read_from(&self.files.hls.join(JOURNAL), self.journal, true)?;
        let mut out = Vec::new();
        // The last segment sent again if it grew since (it was read mid-write).
        if let Some(last) = self.next_seg.checked_sub(1)
            && let Ok(meta) = std::fs::metadata(self.files.hls.join(format!("{last}.m4s")))
            && Some(meta.len()) != self.last_seg_len
        {
            let data = std::fs::read(self.files.hls.join(format!("{last}.m4s")))?;
            self.last_seg_len = Some(data.len() as u64);
            out.push(Record::Segment { msn: last, data }.encode().into());
        }
        loop {
            let path = self.files.hls.join(format!("{}.m4s", self.next_seg));
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            if data.len() > MAX_DATA {
                break;
            }
            self.last_seg_len = Some(data.len() as u64);
            out.push(
                Record::Segment {
                    msn: self.next_seg,
                    data,
                }
                .encode()
                .into(),
            );
            self.next_seg += 1;
        }
        let open_path = self.files.hls.join(OPEN_PARTS);
        if let Ok(meta) = std::fs::metadata(&open_path) {
            let sig = (meta.len(), meta.modified()?);
            if self.open != Some(sig) && meta.len() <= MAX_DATA as u64 {
                let data = std::fs::read(&open_path)?;
                self.open = Some(sig);
                out.push(Record::Open { data }.encode().into());
            }
        }
        chunks(&mut out, self.journal, &journal, |offset, data| {
            Record::Journal { offset, data }
        });
        self.journal += journal.len() as u64;
        let rec = read_from(&self.files.recording, self.rec, false)?;
        chunks(&mut out, self.rec, &rec, |offset, data| Record::Recording {
            offset,
            data,
        });
        self.rec += rec.len() as u64;
        Ok(out)
    }
}

/// Counts a copy stream while it runs.
struct Following(Arc<Member>, String);

impl Drop for Following {
    fn drop(&mut self) {
        let mut map = self.0.failover.followers.lock();
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

/// `GET /api/cluster/spaces/{id}/follow` (nodes of the cluster only): the copy stream of a
/// space this node runs.
#[utoipa::path(
    get,
    path = "/api/cluster/spaces/{id}/follow",
    tag = "admin",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The copy stream (application/octet-stream, records of tribune_cluster::copy)"),
        (status = 403, description = "Not a node of this cluster", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not a cluster node, or the space does not run here", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn serve(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(have): Query<Have>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(m) = app.cluster.clone() else {
        return Err(ApiError::not_found("cluster (this node runs alone)"));
    };
    if !m.is_node(&headers) {
        return Err(ApiError::forbidden(
            "only nodes of this cluster copy a space",
        ));
    }
    let Some(space) = app.spaces.get(&id) else {
        return Err(ApiError::not_found("a space that runs on this node"));
    };
    *m.failover.followers.lock().entry(id.clone()).or_default() += 1;
    let guard = Following(m.clone(), id.clone());
    let mut tail = Tail {
        files: Files::of(&app, &id),
        rec: have.rec,
        journal: have.journal,
        next_seg: have.seg,
        last_seg_len: None,
        open: None,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let app2 = app.clone();
    tokio::spawn(async move {
        let _guard = guard;
        let mut quiet = 0u32;
        loop {
            // Stopped here: one sweep after its threads are done, then the end.
            let here = app2
                .spaces
                .get(&id)
                .is_some_and(|s| Arc::ptr_eq(&s, &space));
            let last = !here || space.media_stopped();
            let (t, swept) = match tokio::task::spawn_blocking(move || {
                let r = tail.sweep();
                (tail, r)
            })
            .await
            {
                Ok(v) => v,
                Err(_) => return,
            };
            tail = t;
            let records = match swept {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(space = %id, error = %e, "copy for the standby: cannot read");
                    Vec::new()
                }
            };
            quiet = if records.is_empty() { quiet + 1 } else { 0 };
            for r in records {
                if tx.send(Ok(r)).await.is_err() {
                    return;
                }
            }
            if last {
                let _ = tx.send(Ok(Record::End.encode().into())).await;
                return;
            }
            if quiet >= ALIVE_EVERY {
                quiet = 0;
                if tx.send(Ok(Record::Alive.encode().into())).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(TICK).await;
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|v| (v, rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// The standby's side of one space's copy.
#[derive(Default)]
pub struct Copy {
    /// The owner said it stopped running the space and everything was sent.
    pub ended: AtomicBool,
    /// Records written.
    pub records: AtomicU64,
}

/// What a standby has of a space, for the owner to go on from.
fn have(files: &Files) -> Have {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let seg = std::fs::read_dir(&files.hls)
        .map(|d| {
            d.flatten()
                .filter_map(|f| {
                    f.file_name()
                        .to_str()
                        .and_then(tribune_media::hls::name::segment_name)
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    Have {
        rec: len(&files.recording),
        journal: len(&files.hls.join(JOURNAL)),
        seg,
    }
}

fn write_at(path: &Path, offset: u64, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    f.write_all_at(data, offset)
}

fn write_whole(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("copy-tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

fn apply(files: &Files, r: &Record) -> std::io::Result<()> {
    match r {
        Record::Recording { offset, data } => write_at(&files.recording, *offset, data),
        Record::Journal { offset, data } => write_at(&files.hls.join(JOURNAL), *offset, data),
        Record::Segment { msn, data } => write_whole(&files.hls.join(format!("{msn}.m4s")), data),
        Record::Open { data } => write_whole(&files.hls.join(OPEN_PARTS), data),
        Record::Alive | Record::End => Ok(()),
    }
}

/// Forgets what this node had of space `id` (a copy starts from nothing).
pub fn clear(app: &App, id: &str) {
    let files = Files::of(app, id);
    let _ = std::fs::remove_file(&files.recording);
    let _ = std::fs::remove_dir_all(&files.hls);
}

/// Copies space `id` from its owner until `stop` is cancelled or the owner ends the stream.
pub async fn copy(
    app: AppState,
    m: Arc<Member>,
    id: String,
    state: Arc<Copy>,
    stop: CancellationToken,
) {
    let files = Files::of(&app, &id);
    loop {
        let owner = match m.owner_of(&id).await {
            Ok(Some(o)) if o.node != m.cfg.node_id => Some(o),
            _ => None,
        };
        if let Some(owner) = owner {
            let h = have(&files);
            let url = format!(
                "{}/api/cluster/spaces/{id}/follow?rec={}&journal={}&seg={}",
                owner.url.trim_end_matches('/'),
                h.rec,
                h.journal,
                h.seg
            );
            let run = async {
                let mut resp = m
                    .http
                    .get(&url)
                    .header(NODE_HEADER, m.node_credential())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    return Err(format!("{}", resp.status()));
                }
                let mut dec = Decoder::default();
                loop {
                    let chunk = tokio::time::timeout(SILENT, resp.chunk())
                        .await
                        .map_err(|_| "the owner went silent".to_owned())?
                        .map_err(|e| e.to_string())?;
                    let Some(chunk) = chunk else {
                        return Err("the copy stream ended early".to_owned());
                    };
                    dec.push(&chunk);
                    while let Some(r) = dec.next_record().map_err(|e| e.to_string())? {
                        if r == Record::End {
                            return Ok(());
                        }
                        apply(&files, &r).map_err(|e| e.to_string())?;
                        state.records.fetch_add(1, Relaxed);
                        m.metrics.cluster_copy_records.fetch_add(1, Relaxed);
                    }
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                r = run => match r {
                    Ok(()) => {
                        state.ended.store(true, Relaxed);
                        tracing::info!(space = %id, owner = %owner.node, "standby: copy complete (the owner stopped running it)");
                        return;
                    }
                    Err(e) => {
                        m.forget_owner(&id);
                        tracing::debug!(space = %id, error = %e, "standby: copy interrupted");
                    }
                },
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}
