// A real browser plays a tribune space's Low-Latency HLS rendition.
//
// Starts `tribune serve` on loopback with a fresh data dir, creates a space, publishes a 440 Hz
// tone into it with `tribune speak`, then opens headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) on a page served by a tiny loopback HTTP server of this script (a
// different origin from tribune's: the HLS responses send Access-Control-Allow-Origin: *). The
// page loads hls.js from node_modules, plays `/spaces/{id}/hls/index.m3u8` with
// `new Hls({ lowLatencyMode: true })` into an <audio crossorigin=anonymous> element (MSE), routes
// it through createMediaElementSource into an AnalyserNode and looks for the tone in the FFT. It
// also records the ID3 samples hls.js extracts from the parts' `emsg` boxes
// (Hls.Events.FRAG_PARSING_METADATA) and decodes their `tribune` TXXX frame (JSON of the
// room's state, changes only: `speaking` names the speaker while the tone plays).
//
// Passes when: the tone is detected; at least one metadata sample carries parseable JSON naming
// the speaker as speaking; the page made blocking playlist reloads (`_HLS_msn=`) and fetched parts
// (`/part/`), as seen by Playwright's page.on('request') and by the server's own counters
// (`tribune_hls_blocking_reloads_total`, `tribune_hls_parts_total` at /metrics) — so plain HLS cannot pass.
// Everything started is stopped; the whole run is bounded (DEADLINE_MS, default 90 s).
//
// Environment:
//   TRIBUNE_BIN   tribune binary (default target/debug/tribune at the repo root; a relative path
//                 is taken from the current directory)
//   CHROMIUM_BIN  default /usr/bin/chromium
//   DEADLINE_MS   hard limit for the whole run (default 90000)
//   VERBOSE=1     echo tribune's stderr and the page's console

import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  CHROMIUM_BIN,
  TRIBUNE_BIN,
  VERBOSE,
  cleanupAll,
  guard,
  here,
  launchChromium,
  sleep,
  startChild,
  startPageServer as startLoopbackPageServer,
  startServer as startTribune,
} from './lib.mjs';

const env = process.env;
const DEADLINE_MS = Number(env.DEADLINE_MS || 90000);
const TONE_HZ = 440;
const WARMUP_MS = 3000; // the speaker publishes this long before the page opens
const PLAY_TIMEOUT_MS = 35000; // the page's limit for tone + metadata + LL-HLS requests
const ADMIN_KEY = 'hls-browser-operator-key';

// Cleanup on exit, error, signal or deadline: lib.mjs (cleanupAll, guard).
guard('hls browser', DEADLINE_MS);

// ---------------------------------------------------------------------------------------------
// Child processes (lib.mjs): tribune serve with a fresh data dir, on loopback.

async function startServer() {
  const { base, srv } = await startTribune({ adminKey: ADMIN_KEY, prefix: 'tribune-hls-browser-' });
  return { base, srv };
}

async function createSpace(base) {
  const res = await fetch(`${base}/api/spaces`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: '{}',
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST /api/spaces: ${res.status} ${text}`);
  const j = JSON.parse(text);
  if (!j.id || !j.host_token) throw new Error(`POST /api/spaces: no id/host_token in ${text}`);
  return j;
}

// ---------------------------------------------------------------------------------------------
// The page and its loopback server (hls.js comes from node_modules, nothing from a CDN).

const HLS_JS = path.join(here, 'node_modules/hls.js/dist/hls.min.js');

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>tribune hls browser test</title>
<script src="/hls.min.js"></script></head>
<body>
<script>
// Decodes the TXXX frames of an ID3v2.3/2.4 tag: [{ description, value }].
function id3Txxx(bytes) {
  const out = [];
  if (bytes.length < 10 || bytes[0] !== 0x49 || bytes[1] !== 0x44 || bytes[2] !== 0x33) return out;
  const version = bytes[3];
  const synchsafe = (o) => ((bytes[o] & 0x7f) << 21) | ((bytes[o + 1] & 0x7f) << 14) | ((bytes[o + 2] & 0x7f) << 7) | (bytes[o + 3] & 0x7f);
  const plain = (o) => ((bytes[o] << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) | bytes[o + 3]) >>> 0;
  const end = Math.min(bytes.length, 10 + synchsafe(6));
  let p = 10;
  if (bytes[5] & 0x40) p += version === 4 ? synchsafe(10) : plain(10) + 4; // extended header
  while (p + 10 <= end) {
    const id = String.fromCharCode(bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]);
    if (id === '\\0\\0\\0\\0') break;
    const size = version === 4 ? synchsafe(p + 4) : plain(p + 4);
    const body = bytes.subarray(p + 10, Math.min(end, p + 10 + size));
    p += 10 + size;
    if (id !== 'TXXX' || body.length < 1) continue;
    const enc = body[0];
    const label = enc === 3 || enc === 0 ? (enc === 3 ? 'utf-8' : 'latin1') : null;
    if (!label) continue; // UTF-16 is not what tribune writes
    const rest = body.subarray(1);
    const z = rest.indexOf(0);
    if (z < 0) continue;
    const dec = new TextDecoder(label);
    let value = rest.subarray(z + 1);
    while (value.length && value[value.length - 1] === 0) value = value.subarray(0, value.length - 1);
    out.push({ description: dec.decode(rest.subarray(0, z)), value: dec.decode(value) });
  }
  return out;
}

window.runTest = async function (src, opts) {
  const { toneHz, timeoutMs, fftSize, pollMs, marginDb } = opts;
  const t0 = performance.now();
  const now = () => (performance.now() - t0) / 1000;
  const log = [];
  const state = {
    hlsSupported: Hls.isSupported(),
    hlsVersion: Hls.version,
    tone: null,
    best: null,
    meta: { samples: 0, tribune: 0, withLevel: 0, badJson: 0, example: null },
    errors: [],
    playError: null,
  };
  if (!state.hlsSupported) return { ...state, log: ['Hls.isSupported() is false (no MSE?)'] };

  const ctx = new AudioContext({ latencyHint: 'interactive' });
  if (ctx.state !== 'running') await ctx.resume();
  const audio = new Audio();
  audio.crossOrigin = 'anonymous';
  const source = ctx.createMediaElementSource(audio);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = fftSize;
  analyser.smoothingTimeConstant = 0;
  source.connect(analyser);
  analyser.connect(ctx.destination);
  const spec = new Float32Array(analyser.frequencyBinCount);
  const binHz = ctx.sampleRate / fftSize;
  const toneBin = Math.round(toneHz / binHz);

  const hls = new Hls({ lowLatencyMode: true, enableWorker: true });
  hls.on(Hls.Events.ERROR, (_e, d) => {
    const s = (d.fatal ? 'FATAL ' : '') + d.type + '/' + d.details + (d.reason ? ': ' + d.reason : '') + (d.error ? ': ' + d.error : '');
    if (state.errors.length < 20) state.errors.push({ t: now(), s });
    if (d.fatal) {
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else if (d.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
    }
  });
  hls.on(Hls.Events.FRAG_PARSING_METADATA, (_e, d) => {
    for (const s of d.samples || []) {
      state.meta.samples++;
      const data = s.data instanceof Uint8Array ? s.data : new Uint8Array(s.data || []);
      for (const f of id3Txxx(data)) {
        if (f.description !== 'tribune') continue;
        state.meta.tribune++;
        let j;
        try { j = JSON.parse(f.value); } catch { state.meta.badJson++; continue; }
        // A key part (k) or a change naming who is speaking (crates/engine/src/hls/meta.rs).
        const speaking = Array.isArray(j.speaking) ? j.speaking : [];
        if (speaking.some((sub) => typeof sub === 'string' && sub.length > 0)) {
          state.meta.withLevel++;
          if (!state.meta.example) state.meta.example = f.value.slice(0, 300);
        }
      }
    }
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => log.push(now().toFixed(2) + ' manifest parsed'));
  hls.attachMedia(audio);
  hls.loadSource(src);
  audio.play().catch((e) => { state.playError = String(e); });

  await new Promise((resolve) => {
    const timer = setInterval(() => {
      analyser.getFloatFrequencyData(spec);
      // Peak: the strongest of the bins next to the tone (the tone may straddle two bins).
      let peak = -Infinity;
      for (let b = toneBin - 1; b <= toneBin + 1; b++) peak = Math.max(peak, spec[b]);
      // Floor: the median of the bins from 0.5x to 2x the tone, skipping +-8 bins around it.
      const around = [];
      for (let b = Math.round(toneBin / 2); b <= toneBin * 2; b++) {
        if (Math.abs(b - toneBin) > 8 && Number.isFinite(spec[b])) around.push(spec[b]);
      }
      around.sort((a, b) => a - b);
      const floor = around.length ? around[around.length >> 1] : -Infinity;
      const snr = peak - floor;
      if (Number.isFinite(peak) && (!state.best || snr > state.best.snr)) {
        state.best = { snr: +snr.toFixed(1), peakDb: +peak.toFixed(1), floorDb: +floor.toFixed(1) };
      }
      if (!state.tone && Number.isFinite(peak) && peak > -70 && snr >= marginDb) {
        state.tone = { t: +now().toFixed(2), snr: +snr.toFixed(1), peakDb: +peak.toFixed(1), currentTime: audio.currentTime };
      }
      if ((state.tone && state.meta.withLevel > 0 && opts.enough()) || now() * 1000 > timeoutMs) {
        clearInterval(timer);
        resolve();
      }
    }, pollMs);
  });
  state.currentTime = audio.currentTime;
  state.latency = hls.latency;
  state.mediaError = audio.error ? audio.error.code + ' ' + audio.error.message : null;
  state.ctxState = ctx.state;
  state.log = log;
  hls.destroy();
  await ctx.close();
  return state;
};
</script>
</body></html>`;

async function startPageServer() {
  return startLoopbackPageServer({
    '/': { type: 'text/html; charset=utf-8', body: PAGE },
    '/index.html': { type: 'text/html; charset=utf-8', body: PAGE },
    '/hls.min.js': { type: 'text/javascript; charset=utf-8', file: HLS_JS },
  });
}

// Headless Chromium with audio output (lib.mjs), no fake devices.
async function launchBrowser() {
  return launchChromium(null);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  if (!existsSync(TRIBUNE_BIN)) throw new Error(`no tribune binary at ${TRIBUNE_BIN} (set TRIBUNE_BIN)`);
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`no chromium at ${CHROMIUM_BIN} (apt-get install -y chromium)`);
  if (!existsSync(HLS_JS)) throw new Error(`no ${HLS_JS} (run npm ci in ${here})`);

  const { base, srv } = await startServer();
  const space = await createSpace(base);
  const speak = startChild('speak', [
    'speak', '--whip', `${base}/api/spaces/${space.id}/whip`, '--token', space.host_token,
    '--tone', String(TONE_HZ), '--seconds', '40',
  ]);
  await sleep(WARMUP_MS);
  if (speak.exited()) throw new Error(`tribune speak exited early (${JSON.stringify(speak.exited())}); stderr:\n${speak.stderrTail()}`);
  if (srv.exited()) throw new Error(`tribune serve exited early; stderr:\n${srv.stderrTail()}`);

  const pageUrl = await startPageServer();
  const browser = await launchBrowser();
  const context = await browser.newContext();
  const page = await context.newPage();

  const hlsPrefix = `${base}/spaces/${space.id}/hls/`;
  const seen = { blocking: 0, parts: 0, playlists: 0, segments: 0, other: 0 };
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(hlsPrefix)) return;
    if (u.includes('_HLS_msn=')) seen.blocking++;
    if (u.includes('/part/')) seen.parts++;
    else if (u.includes('/seg/')) seen.segments++;
    else if (u.includes('.m3u8')) seen.playlists++;
    else seen.other++;
  });
  const consoleTail = [];
  page.on('console', (m) => {
    const s = `[page ${m.type()}] ${m.text()}`;
    consoleTail.push(s);
    if (consoleTail.length > 20) consoleTail.shift();
    if (VERBOSE) console.error(s);
  });
  page.on('pageerror', (e) => consoleTail.push(`[page error] ${e.message}`));
  // The page asks, through this binding, whether enough LL-HLS requests were seen to stop early.
  await page.exposeFunction('__enough', () => seen.blocking >= 3 && seen.parts >= 3);
  await page.goto(pageUrl, { timeout: 10000 });

  const src = `${base}/spaces/${space.id}/hls/index.m3u8`;
  const r = await page.evaluate(
    async ({ src, opts }) => {
      // Polls the node side (async) in the background; the sync check reads the cached answer.
      let enough = false;
      const poll = setInterval(async () => { enough = await window.__enough(); }, 200);
      try {
        return await window.runTest(src, { ...opts, enough: () => enough });
      } finally {
        clearInterval(poll);
      }
    },
    { src, opts: { toneHz: TONE_HZ, timeoutMs: PLAY_TIMEOUT_MS, fftSize: 8192, pollMs: 100, marginDb: 30 } },
  );

  const problems = [];
  if (!r.hlsSupported) problems.push('hls.js says MSE is not supported');
  if (!r.tone) problems.push(`no ${TONE_HZ} Hz tone detected (best peak-over-floor ${JSON.stringify(r.best)})`);
  if (r.meta.withLevel < 1) {
    problems.push(
      `no in-stream metadata naming a speaker as speaking (ID3 samples ${r.meta.samples}, tribune TXXX ${r.meta.tribune}, bad JSON ${r.meta.badJson})`,
    );
  }
  if (seen.blocking < 1) problems.push('no blocking playlist reload (_HLS_msn=) requested');
  if (seen.parts < 1) problems.push('no part (/part/) requested');
  // The server's side of the same story: its counters of blocking reloads and parts served.
  const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text();
  const metric = (name) => Number((metrics.match(new RegExp(`^${name} (\\d+)$`, 'm')) || [])[1] || 0);
  const served = { blocking: metric('tribune_hls_blocking_reloads_total'), parts: metric('tribune_hls_parts_total') };
  if (served.blocking < 1) problems.push('the server served no blocking reload (tribune_hls_blocking_reloads_total)');
  if (served.parts < 1) problems.push('the server served no part (tribune_hls_parts_total)');
  if (problems.length) {
    const detail = {
      requests: seen,
      errors: r.errors,
      playError: r.playError,
      mediaError: r.mediaError,
      currentTime: r.currentTime,
      ctxState: r.ctxState,
      log: r.log,
      console: consoleTail,
    };
    throw new Error(`${problems.join('; ')}\n${JSON.stringify(detail, null, 1)}`);
  }
  if (VERBOSE) console.error(`metadata example: ${r.meta.example}\nrequests: ${JSON.stringify(seen)}; hls.js ${r.hlsVersion}; latency ${r.latency}`);
  return `hls browser: OK (tone at ${r.tone.t.toFixed(1)} s, ${seen.blocking} blocking reloads, ${seen.parts} parts, ${r.meta.tribune} metadata samples)`;
}

let code = 0;
try {
  console.log(await main());
} catch (e) {
  console.error(`hls browser: FAIL: ${e?.message ?? e}`);
  code = 1;
}
await cleanupAll();
process.exit(code);
