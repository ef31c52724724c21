// The live player of a space page: LL-HLS through hls.js (MSE, or ManagedMediaSource on iOS)
// where the browser has it, the browser's own HLS (Safari) next, the Ogg/Opus stream last.
// It reconnects by itself, keeps near the live edge, and routes its audio through WebAudio:
// element → analyser (the level meter and `window.tribune.outputAnalyser`) → gain (volume) →
// speakers.
//
// With hls.js, the room's state carried in each part (ID3 in emsg, crates/engine/src/hls/meta.rs)
// is handed to `onMeta(message)` when the audio it came with plays (its pts reaches currentTime;
// a message that has waited MAX_META_WAIT_MS is handed over anyway), in order.
//
// hls.js settings: lowLatencyMode uses the playlist's PART-HOLD-BACK (≈1.2 s) as its target;
// a player that fell behind by more than MAX_LATENCY_S (a stall, a backgrounded tab) jumps back
// to the live edge, and small drifts are caught up at up to 1.15× speed (pitch preserved).

import { backoff } from './ui.js';
import { id3Txxx } from './public.js';

const MAX_LATENCY_S = 6;
/** Playing, then no progress this long: reconnect. */
const STALL_MS = 5000;
/** Connecting without a first sound this long (a slow network gets its chance): reconnect. */
const START_MS = 15000;
const MAX_META_WAIT_MS = 3000;

let audioCtx = null;

/** The page's one AudioContext, created (or resumed) from a user gesture. */
export function audioContext() {
  if (!audioCtx) audioCtx = new (window.AudioContext || window.webkitAudioContext)({ latencyHint: 'playback' });
  if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
  return audioCtx;
}

/** A new analyser for level meters and tests (fftSize 8192: ~6 Hz bins at 48 kHz). */
export function analyser(ctx) {
  const a = ctx.createAnalyser();
  a.fftSize = 8192;
  a.smoothingTimeConstant = 0; // each reading is the present moment (meters, tests)
  return a;
}

/** The level (dBFS, RMS) an analyser hears now. */
export function levelDb(a) {
  const buf = new Float32Array(a.fftSize);
  a.getFloatTimeDomainData(buf);
  let sum = 0;
  for (const x of buf) sum += x * x;
  return 10 * Math.log10(sum / buf.length + 1e-12);
}

export class LivePlayer {
  /**
   * @param {string} spaceId
   * @param {(state: string, detail?: string) => void} onState  'connecting' | 'playing' |
   *   'buffering' | 'reconnecting' | 'stopped' | 'ended' | 'error'
   */
  constructor(spaceId, onState, onMeta = () => {}) {
    this.id = spaceId;
    this.onState = onState;
    this.onMeta = onMeta;
    this.metaQueue = [];
    this.metaTimer = null;
    /** performance.now() of the last in-band message handed over (0: none yet). */
    this.lastMetaAt = 0;
    this.el = document.createElement('audio');
    this.el.preload = 'none';
    this.el.setAttribute('aria-hidden', 'true');
    this.el.crossOrigin = 'anonymous';
    document.body.append(this.el);
    this.hls = null;
    this.mode = null;
    this.wanted = false;
    this.attempt = 0;
    this.volume = 1;
    this.graph = null;
    this.lastTime = 0;
    this.lastProgress = 0;
    this.retryTimer = null;
    this.watchdog = null;
    this.el.addEventListener('playing', () => {
      this.attempt = 0;
      this.started = true;
      this.onState('playing');
    });
    this.el.addEventListener('waiting', () => this.wanted && this.onState('buffering'));
    this.el.addEventListener('error', () => {
      // hls.js reports its own errors; an element without a source (after teardown) is not one.
      if (this.mode !== 'hls.js' && this.el.getAttribute('src')) this.failed('media error');
    });
    this.el.addEventListener('ended', () => this.wanted && this.failed('stream ended'));
    // Back online: try at once rather than at the end of the current back-off.
    addEventListener('online', () => {
      const stuck = performance.now() - this.lastProgress > 1000;
      if (this.wanted && (this.playerRetrying || stuck)) {
        clearTimeout(this.retryTimer);
        this.attempt = 0;
        this.playerRetrying = false;
        this.connect();
      }
    });
  }

  /** Starts playing (call from a user gesture: it also unlocks audio). */
  async play() {
    this.wanted = true;
    this.ensureGraph();
    await this.connect();
  }

  /** Stops and releases the connection. */
  stop(state = 'stopped') {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    this.watchdog = null;
    this.teardown();
    this.onState(state);
  }

  /** 0…1 */
  setVolume(v) {
    this.volume = v;
    if (this.graph) this.graph.gain.gain.value = v;
  }

  ensureGraph() {
    if (this.graph) return;
    const ctx = audioContext();
    const src = ctx.createMediaElementSource(this.el);
    const an = analyser(ctx);
    const gain = ctx.createGain();
    gain.gain.value = this.volume;
    src.connect(an);
    an.connect(gain);
    gain.connect(ctx.destination);
    this.graph = { src, analyser: an, gain };
    window.tribune.outputAnalyser = an;
  }

  get analyser() {
    return this.graph?.analyser ?? null;
  }

  teardown() {
    this.metaQueue = [];
    clearInterval(this.metaTimer);
    this.metaTimer = null;
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.el.removeAttribute('src');
    try {
      this.el.load();
    } catch {
      // nothing loaded
    }
  }

  async connect() {
    this.teardown();
    this.started = false;
    this.onState(this.attempt ? 'reconnecting' : 'connecting');
    const hlsUrl = `/spaces/${encodeURIComponent(this.id)}/hls/index.m3u8`;
    let Hls = null;
    try {
      Hls = (await import('./hls.light.min.mjs')).default;
    } catch (e) {
      console.warn('hls.js did not load', e);
    }
    if (!this.wanted) return;
    if (this.mode !== 'ogg' && Hls && Hls.isSupported()) {
      this.mode = 'hls.js';
      this.startHlsJs(Hls, hlsUrl);
    } else if (this.mode !== 'ogg' && this.el.canPlayType('application/vnd.apple.mpegurl')) {
      this.mode = 'native-hls';
      this.el.src = hlsUrl;
    } else {
      this.mode = 'ogg';
      this.el.src = `/spaces/${encodeURIComponent(this.id)}/live.opus?t=${Date.now()}`;
    }
    this.startWatchdog();
    try {
      await this.el.play();
    } catch (e) {
      if (e.name === 'NotAllowedError') this.onState('error', 'Press Play to start the audio.');
      else if (e.name !== 'AbortError') console.warn('play()', e);
    }
  }

  startHlsJs(Hls, url) {
    const hls = new Hls({
      lowLatencyMode: true,
      maxLiveSyncPlaybackRate: 1.15,
      backBufferLength: 10,
      manifestLoadingMaxRetry: 2,
      fragLoadingMaxRetry: 4,
      ...(window.tribune.hlsConfig || {}), // for experiments from the console
    });
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_ev, data) => {
      if (!data.fatal) return;
      console.warn('hls.js fatal error', data.type, data.details);
      if (data.details === 'manifestIncompatibleCodecsError' || data.details === 'bufferAddCodecError') {
        // This browser's MSE cannot play Opus in MP4: use the Ogg stream.
        this.mode = 'ogg';
        this.failed('codec', 0);
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !this.recovered) {
        this.recovered = true;
        hls.recoverMediaError();
      } else {
        this.failed(data.details);
      }
    });
    hls.on(Hls.Events.FRAG_BUFFERED, () => {
      this.recovered = false;
    });
    hls.on(Hls.Events.FRAG_PARSING_METADATA, (_ev, data) => {
      for (const s of data.samples || []) {
        for (const f of id3Txxx(s.data)) {
          if (f.description === 'tribune') this.metaQueue.push({ pts: s.pts, value: f.value, at: performance.now() });
        }
      }
    });
    this.metaTimer = setInterval(() => this.deliverMeta(), 100);
    hls.loadSource(url);
    hls.attachMedia(this.el);
  }

  /** Hands over, in order, the in-band messages whose audio is playing now. */
  deliverMeta() {
    const now = performance.now();
    while (this.metaQueue.length) {
      const m = this.metaQueue[0];
      const due = !Number.isFinite(m.pts) || m.pts <= this.el.currentTime + 0.05 || now - m.at > MAX_META_WAIT_MS;
      if (!due) break;
      this.metaQueue.shift();
      let msg;
      try {
        msg = JSON.parse(m.value);
      } catch {
        continue;
      }
      this.lastMetaAt = now;
      this.onMeta(msg);
    }
  }

  /** Something broke: reconnect after a back-off (unless stopped). */
  failed(why, delay) {
    if (!this.wanted) return;
    console.info(`player: ${why}; reconnecting (attempt ${this.attempt + 1})`);
    clearTimeout(this.retryTimer);
    const wait = delay ?? backoff(this.attempt++);
    this.onState('reconnecting', why);
    this.teardown();
    this.playerRetrying = true;
    this.retryTimer = setTimeout(() => {
      this.playerRetrying = false;
      if (this.wanted) this.connect();
    }, wait);
  }

  startWatchdog() {
    clearInterval(this.watchdog);
    this.lastTime = this.el.currentTime;
    this.lastProgress = performance.now();
    this.watchdog = setInterval(() => {
      if (!this.wanted) return;
      const now = performance.now();
      if (this.el.currentTime !== this.lastTime) {
        this.lastTime = this.el.currentTime;
        this.lastProgress = now;
      } else if (now - this.lastProgress > (this.started ? STALL_MS : START_MS)) {
        this.failed('stalled');
        return;
      }
      // Far behind the live edge (after a stall or a frozen tab): jump back to it.
      if (this.hls && this.hls.latency > MAX_LATENCY_S && Number.isFinite(this.hls.liveSyncPosition)) {
        this.el.currentTime = this.hls.liveSyncPosition;
      }
    }, 1000);
  }
}
