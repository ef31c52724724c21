// The anonymous listener's side of the space page: what a listener sees and does before acting
// costs the origin nothing per listener. The page starts from the public snapshot
// (/spaces/{id}/snapshot.json, the same bytes for everyone, cached by any edge), follows the
// changes carried inside the LL-HLS parts while it plays (ID3 in emsg, see
// crates/engine/src/hls/meta.rs), polls the snapshot only when it gets nothing in-band, and is
// counted by a sampled anonymous beacon (crates/room/src/viewers.rs). Reactions are gathered
// and sent at most once per BATCH_MS.
//
// Pure parts (applyMeta, id3Txxx, viewerLevel, ReactionBatch with injected timers) are tested
// under Node by tests/web/public.mjs.

/** At most one reaction request per this many ms. */
export const BATCH_MS = 2000;
/** Most reactions one request carries (the server's MAX_REACTION_BATCH). */
export const MAX_BATCH = 10;
/** The deepest sampling level (crates/room/src/viewers.rs MAX_LEVEL). */
export const MAX_LEVEL = 16;

export const snapshotUrl = (id) => `/spaces/${encodeURIComponent(id)}/snapshot.json`;

/**
 * Merges one in-band message (a parsed object) into `state`, as the server's
 * `hls::meta::apply`: a key message (`k`) replaces the state, any other updates it (`null`
 * removes a key). Returns the keys that changed.
 */
export function applyMeta(state, msg) {
  const changed = new Set();
  if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return changed;
  if (msg.k) {
    for (const k of Object.keys(state)) {
      if (!(k in msg)) {
        delete state[k];
        changed.add(k);
      }
    }
  }
  for (const [k, v] of Object.entries(msg)) {
    if (k === 'k') continue;
    const before = JSON.stringify(state[k]);
    if (v === null) delete state[k];
    else state[k] = v;
    if (JSON.stringify(state[k]) !== before) changed.add(k);
  }
  return changed;
}

const syncsafe = (b, i) => ((b[i] & 0x7f) << 21) | ((b[i + 1] & 0x7f) << 14) | ((b[i + 2] & 0x7f) << 7) | (b[i + 3] & 0x7f);

/** The TXXX frames of an ID3v2.3/2.4 tag: [{ description, value }] (nothing for garbage). */
export function id3Txxx(bytes) {
  const out = [];
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes || []);
  if (b.length < 10 || b[0] !== 0x49 || b[1] !== 0x44 || b[2] !== 0x33) return out;
  const version = b[3];
  const end = Math.min(b.length, 10 + syncsafe(b, 6));
  const dec = new TextDecoder('utf-8');
  let i = 10;
  while (i + 10 <= end) {
    const id = String.fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3]);
    const size = version >= 4 ? syncsafe(b, i + 4) : ((b[i + 4] << 24) | (b[i + 5] << 16) | (b[i + 6] << 8) | b[i + 7]) >>> 0;
    const start = i + 10;
    if (!/^[A-Z0-9]{4}$/.test(id) || size <= 0 || start + size > end) break;
    if (id === 'TXXX') {
      const f = b.subarray(start + 1, start + size); // after the encoding byte (UTF-8 here)
      const nul = f.indexOf(0);
      if (nul >= 0) {
        let value = dec.decode(f.subarray(nul + 1));
        if (value.endsWith('\0')) value = value.slice(0, -1);
        out.push({ description: dec.decode(f.subarray(0, nul)), value });
      }
    }
    i = start + size;
  }
  return out;
}

/** This browser's random viewer id (32 hex digits), made once and kept. */
export function viewerId(storage = globalThis.localStorage) {
  const key = 'tribune.viewer';
  try {
    const v = storage?.getItem(key);
    if (v && /^[0-9a-f]{32}$/.test(v)) return v;
  } catch {
    // storage refused: a new id per page
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const v = [...bytes].map((x) => x.toString(16).padStart(2, '0')).join('');
  try {
    storage?.setItem(key, v);
  } catch {
    // as above
  }
  return v;
}

/** The sampling level of a viewer id: leading zero bits of its first 32 bits, at most 16. */
export function viewerLevel(id) {
  return Math.min(MAX_LEVEL, Math.clz32(parseInt(id.slice(0, 8), 16) >>> 0));
}

/**
 * The anonymous count beacon: if this viewer's level is in the sample (`count().sample_log2`),
 * a POST every `interval_s` (±10 %), the first at a random moment of the first interval; while
 * `active()` is false (the page holds an event stream, which counts it) it sends nothing. A
 * refusal or a failure is simply skipped: the next interval tries again.
 */
export class Beacon {
  constructor(url, viewer, { count, active, post, random = Math.random, setTimer = (f, ms) => setTimeout(f, ms), clearTimer = (t) => clearTimeout(t) }) {
    Object.assign(this, { url, viewer, count, active, post, random, setTimer, clearTimer });
    this.level = viewerLevel(viewer);
    this.timer = null;
    this.sent = 0;
  }

  start() {
    const c = this.count();
    this.timer = this.setTimer(() => this.fire(), this.random() * (c?.interval_s ?? 30) * 1000);
  }

  stop() {
    this.clearTimer(this.timer);
    this.timer = null;
  }

  fire() {
    const c = this.count();
    if (c && this.active() && this.level >= (c.sample_log2 ?? 0)) {
      this.sent++;
      this.post(this.url, { viewer: this.viewer });
    }
    const interval = (c?.interval_s ?? 30) * 1000;
    this.timer = this.setTimer(() => this.fire(), interval * (0.9 + 0.2 * this.random()));
  }
}

/**
 * Reactions gathered and sent at most once per BATCH_MS (at most MAX_BATCH per request; more
 * than that wait for the next one, more than 3 × MAX_BATCH pending are dropped). `send(counts)`
 * resolves, or rejects with an ApiError: a 429/503 with Retry-After waits that long and keeps
 * the batch; any other failure drops it (`onDropped(counts, error)`).
 */
export class ReactionBatch {
  constructor(send, { onDropped = () => {}, setTimer = (f, ms) => setTimeout(f, ms), now = () => Date.now() } = {}) {
    Object.assign(this, { send, onDropped, setTimer, now });
    this.pending = new Map();
    this.timer = null;
    this.notBefore = 0;
    this.inFlight = false;
  }

  get size() {
    let n = 0;
    for (const v of this.pending.values()) n += v;
    return n;
  }

  /** Adds one reaction; false when too many are pending (it is dropped). */
  add(emoji) {
    if (this.size >= 3 * MAX_BATCH) return false;
    this.pending.set(emoji, (this.pending.get(emoji) || 0) + 1);
    this.schedule();
    return true;
  }

  schedule() {
    if (this.timer !== null || this.inFlight || !this.pending.size) return;
    const wait = Math.max(0, this.notBefore - this.now());
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.flush();
    }, wait);
  }

  /** Takes at most MAX_BATCH pending reactions. */
  take() {
    const counts = {};
    let n = 0;
    for (const [e, c] of this.pending) {
      const k = Math.min(c, MAX_BATCH - n);
      if (k <= 0) break;
      counts[e] = k;
      n += k;
      if (k === c) this.pending.delete(e);
      else this.pending.set(e, c - k);
    }
    return counts;
  }

  async flush() {
    if (this.inFlight || !this.pending.size) return;
    const counts = this.take();
    this.inFlight = true;
    this.notBefore = this.now() + BATCH_MS;
    try {
      await this.send(counts);
    } catch (e) {
      if ((e?.status === 429 || e?.status === 503) && e.retryAfter) {
        this.notBefore = this.now() + e.retryAfter * 1000;
        for (const [em, c] of Object.entries(counts)) this.pending.set(em, (this.pending.get(em) || 0) + c);
      } else {
        this.onDropped(counts, e);
      }
    } finally {
      this.inFlight = false;
      this.schedule();
    }
  }
}
