// Browser glass-to-glass latency for LL-HLS: speaker → headless Chromium playing with hls.js.
//
// What it does (loopback only, bounded by DEADLINE_MS, stops everything it started):
// 1. Writes beeps.wav (48 kHz mono 16-bit PCM): silence with a 100 ms 1 kHz beep (amplitude 0.5)
//    every 2.12 s from 1 s on, the same signal as `tribune-bench glass` (crates/bench/src/glass.rs).
// 2. Starts `tribune serve` (fresh data dir, 127.0.0.1:0) and creates a space.
// 3. Waits until live.m3u8 lists 3 (silent) segments — the listener joins a space already live —
//    then opens headless Chromium (Debian's /usr/bin/chromium via playwright-core) on a page served by a
//    loopback HTTP server of this script. The page plays `/spaces/{id}/hls/index.m3u8` with
//    `new Hls({ lowLatencyMode: true })` into an <audio crossorigin=anonymous> element (MSE), routed
//    through createMediaElementSource → AnalyserNode → destination. The page is already playing the
//    (silent) rendition before the speaker connects, so hls.js is at its steady live edge and the
//    first beep it renders is beep 0.
// 4. Starts `tribune speak --file beeps.wav --seconds S+10` with the host token and takes
//    `Date.now()` (node) when its stderr shows "WebRTC connected". As in glass.rs, beep k is sent at
//    connected + 10 ms (half a 20 ms tick, ±10 ms) + 1 s + k × 2.12 s.
// 5. The page polls the analyser every ~5 ms (setInterval) with getFloatTimeDomainData (2048
//    samples). A beep onset is the first sample above 0.1 after ≥ 0.5 s without one (the rest of
//    the stream is digital silence; a beep has RMS 0.35); its wall-clock time is
//    `performance.timeOrigin + performance.now()` at the poll minus the age of that sample in the
//    analyser window. Same machine, same clock as node's Date.now().
//    What the analyser sees is the audio as the media element pipeline renders it into the
//    WebAudio graph (after MSE buffering, hls.js's live-edge hold-back, decode and the element's
//    playback position): that is "audible" here. The device output latency after the graph
//    (ctx.outputLatency, reported) is not included; headless Chromium has no real sound card.
// 6. After S seconds (+ a tail), onsets are numbered: the first one after the speaker connected is
//    beep 0 (the page was already playing), later ones by their distance from it in periods;
//    latency = onset − send time of that beep. Cross-check: the nearest expected send time before
//    each onset (right only while latency < 2.12 s; disagreements are reported). Beeps sent in the
//    first SETTLE_S seconds are excluded from the summary (both are reported). hls.js's own
//    `hls.latency` is sampled every 500 ms for comparison.
//
// Prints a table; JSON_OUT (default ../json/glass-browser-S.json) gets the raw data.
//
// Usage: bench/glass-browser/run.sh   (or: node bench/glass-browser/glass_browser.mjs)
// Environment:
//   TRIBUNE_BIN   default target/release/tribune at the repo root (relative: from the cwd)
//   CHROMIUM_BIN  default /usr/bin/chromium
//   SECONDS_      measured seconds S (default 60)    [SECONDS is a bash builtin, hence the _]
//   SETTLE_S      beeps sent in the first SETTLE_S seconds are excluded (default 5)
//   JSON_OUT      where to write the JSON ("" to skip)
//   DEADLINE_MS   hard limit for the whole run (default S × 1000 + 120000)
//   EDGE          nginx or varnish: play through that edge (deploy/nginx/edge.conf,
//                 deploy/varnish/edge.vcl) started in front of the origin; default: the origin
//   VERBOSE=1     echo tribune's stderr and the page's console
// node_modules: reuses tests/browser/node_modules (hls.js 1.7.4, playwright-core 1.65.1, pinned).

import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '../../tests/browser/node_modules/playwright-core/index.mjs';
import { cleanupAll as cleanupEdges } from '../../tests/browser/lib.mjs';
import { startNginxEdge, startVarnishEdge } from '../../tests/browser/edges.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const TRIBUNE_BIN = env.TRIBUNE_BIN
  ? path.resolve(process.cwd(), env.TRIBUNE_BIN)
  : path.resolve(here, '../../target/release/tribune');
const CHROMIUM_BIN = env.CHROMIUM_BIN || '/usr/bin/chromium';
const S = Number(env.SECONDS_ || 60);
const SETTLE_S = Number(env.SETTLE_S ?? 5);
// EDGE=nginx|varnish: the page plays through that edge of deploy/ (in front of the origin).
const EDGE = env.EDGE || '';
if (!['', 'nginx', 'varnish'].includes(EDGE)) throw new Error(`EDGE must be nginx or varnish, not ${EDGE}`);
const JSON_OUT = env.JSON_OUT ?? path.resolve(here, `../json/glass-browser${EDGE ? `-${EDGE}` : ''}-${S}.json`);
const DEADLINE_MS = Number(env.DEADLINE_MS || S * 1000 + 120000);
const VERBOSE = env.VERBOSE === '1';
const HLS_JS = path.resolve(here, '../../tests/browser/node_modules/hls.js/dist/hls.min.js');
const HLS_PKG = path.resolve(here, '../../tests/browser/node_modules/hls.js/package.json');
const ADMIN_KEY = 'glass-browser-operator-key';

const RATE = 48000;
const FIRST_BEEP_S = 1.0;
const PERIOD_S = 2.12;
const BEEP_MS = 100;
const BEEP_HZ = 1000;
const BEEP_AMPLITUDE = 0.5;
const FIRST_FRAME_DELAY_MS = 10;
const TAIL_MS = 6000; // keep listening after the last counted beep was sent

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const wallNow = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// Cleanup (same scheme as tests/browser/hls_browser.mjs).

const cleanups = [];
let cleaning = null;
function cleanupAll() {
  if (!cleaning) {
    cleaning = (async () => {
      while (cleanups.length) {
        const f = cleanups.pop();
        try {
          await f();
        } catch (e) {
          if (VERBOSE) console.error('cleanup:', e?.message ?? e);
        }
      }
    })();
  }
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    console.error(`glass browser: ${sig}, stopping`);
    await cleanupAll();
    process.exit(130);
  });
}
const deadline = setTimeout(async () => {
  console.error(`glass browser: FAIL: deadline of ${DEADLINE_MS} ms reached`);
  await cleanupAll();
  process.exit(3);
}, DEADLINE_MS);
deadline.unref();

// ---------------------------------------------------------------------------------------------
// The beep WAV.

function writeWav(file, seconds) {
  const n = Math.floor(seconds * RATE);
  const pcm = new Int16Array(n);
  const beep = (BEEP_MS * RATE) / 1000;
  for (let k = 0; ; k++) {
    const start = Math.floor((FIRST_BEEP_S + k * PERIOD_S) * RATE);
    if (start >= n) break;
    for (let i = 0; i < beep && start + i < n; i++) {
      pcm[start + i] = Math.trunc(BEEP_AMPLITUDE * Math.sin((2 * Math.PI * BEEP_HZ * i) / RATE) * 32767);
    }
  }
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(RATE, 24);
  buf.writeUInt32LE(RATE * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(n * 2, 40);
  Buffer.from(pcm.buffer).copy(buf, 44);
  writeFileSync(file, buf);
}

// ---------------------------------------------------------------------------------------------
// Child processes

function startChild(name, args, onStderrLine) {
  const child = spawn(TRIBUNE_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = null;
  const exitP = new Promise((r) =>
    child.once('exit', (code, sig) => {
      exited = { code, sig };
      r(exited);
    }),
  );
  child.once('error', (e) => {
    exited = exited || { code: null, sig: null, error: e.message };
  });
  let stderrTail = '';
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    const at = wallNow();
    stderrTail = (stderrTail + d).slice(-4000);
    if (VERBOSE) process.stderr.write(`[${name}] ${d}`);
    if (onStderrLine) {
      partial += d;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        onStderrLine(partial.slice(0, nl), at);
        partial = partial.slice(nl + 1);
      }
    }
  });
  const stop = async () => {
    if (exited) return;
    child.kill('SIGINT');
    const t = await Promise.race([exitP, sleep(3000).then(() => null)]);
    if (!t && !exited) {
      child.kill('SIGKILL');
      await exitP;
    }
  };
  cleanups.push(stop);
  return { child, exitP, stop, exited: () => exited, stderrTail: () => stderrTail };
}

async function startServer(dataDir) {
  const srv = startChild('serve', [
    'serve', '--listen', '127.0.0.1:0', '--udp', '127.0.0.1:0',
    '--admin-key', ADMIN_KEY, '--data-dir', dataDir, '--log', 'info',
  ]);
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`tribune serve printed no listen line in 15 s; stderr:\n${srv.stderrTail()}`)),
      15000,
    );
    srv.child.stdout.setEncoding('utf8');
    srv.child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const m = out.slice(0, nl).match(/^tribune listening on (http:\/\/\S+) \(media on udp \S+\)$/);
      if (m) resolve(m[1].replace(/\/$/, ''));
      else reject(new Error(`unexpected first line from tribune serve: ${out.slice(0, nl)}`));
    });
    srv.exitP.then(({ code, sig }) => {
      clearTimeout(timer);
      reject(new Error(`tribune serve exited (code ${code}, signal ${sig}) before listening; stderr:\n${srv.stderrTail()}`));
    });
  });
  if (new URL(base).hostname !== '127.0.0.1') throw new Error(`not loopback: ${base}`);
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
// The page.

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>tribune glass browser</title>
<script src="/hls.min.js"></script></head>
<body>
<script>
const wall = () => performance.timeOrigin + performance.now();
window.G = { onsets: [], lat: [], errors: [], log: [], playError: null, started: false };
window.startGlass = async function (src, opts) {
  const G = window.G;
  G.hlsVersion = Hls.version;
  if (!Hls.isSupported()) { G.errors.push('Hls.isSupported() is false'); return; }
  const ctx = new AudioContext({ latencyHint: 'interactive' });
  if (ctx.state !== 'running') await ctx.resume();
  const audio = new Audio();
  audio.crossOrigin = 'anonymous';
  const source = ctx.createMediaElementSource(audio);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = opts.fftSize;
  analyser.smoothingTimeConstant = 0;
  source.connect(analyser);
  analyser.connect(ctx.destination);
  const sr = ctx.sampleRate;
  const N = analyser.fftSize;
  const buf = new Float32Array(N);
  G.audioCtx = { sampleRate: sr, baseLatency: ctx.baseLatency, outputLatency: ctx.outputLatency, state: ctx.state };

  const hls = new Hls({ lowLatencyMode: true, enableWorker: true });
  G.hlsConfig = { liveSyncDuration: hls.config.liveSyncDuration, liveSyncDurationCount: hls.config.liveSyncDurationCount,
    maxLiveSyncPlaybackRate: hls.config.maxLiveSyncPlaybackRate, liveMaxLatencyDurationCount: hls.config.liveMaxLatencyDurationCount };
  hls.on(Hls.Events.ERROR, (_e, d) => {
    const s = (d.fatal ? 'FATAL ' : '') + d.type + '/' + d.details;
    if (G.errors.length < 50) G.errors.push({ t: wall(), s });
    if (d.fatal) {
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else if (d.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
    }
  });
  hls.on(Hls.Events.LEVEL_LOADED, (_e, d) => {
    if (!G.playlist) G.playlist = { partTarget: d.details.partTarget, partHoldBack: d.details.partHoldBack,
      holdBack: d.details.holdBack, targetduration: d.details.targetduration, canBlockReload: d.details.canBlockReload };
  });
  hls.attachMedia(audio);
  hls.loadSource(src);
  audio.addEventListener('playing', () => G.log.push({ t: wall(), e: 'playing', ct: audio.currentTime }));
  audio.addEventListener('waiting', () => G.log.push({ t: wall(), e: 'waiting', ct: audio.currentTime }));
  audio.addEventListener('seeking', () => G.log.push({ t: wall(), e: 'seeking', ct: audio.currentTime }));
  audio.play().catch((e) => { G.playError = String(e); });
  G.started = true;

  // Onset detector: first sample above opts.level after >= opts.quietMs without one.
  let lastLoud = -Infinity; // wall ms of the last loud sample seen
  let polls = 0, maxGap = 0, lastPoll = wall();
  G.poll = () => ({ polls, maxGap });
  setInterval(() => {
    const t = wall();
    polls++;
    maxGap = Math.max(maxGap, t - lastPoll);
    lastPoll = t;
    analyser.getFloatTimeDomainData(buf);
    let first = -1, last = -1, ss = 0;
    for (let i = 0; i < N; i++) {
      const a = Math.abs(buf[i]);
      if (a > opts.level) { if (first < 0) first = i; last = i; }
      ss += buf[i] * buf[i];
    }
    if (first < 0) return;
    const firstAt = t - ((N - first) / sr) * 1000; // wall time at which that sample was rendered
    if (firstAt - lastLoud >= opts.quietMs) {
      G.onsets.push({ t: firstAt, poll: t, idx: first, rms: Math.sqrt(ss / N), ct: audio.currentTime,
        latency: hls.latency, rate: audio.playbackRate });
    }
    lastLoud = Math.max(lastLoud, t - ((N - 1 - last) / sr) * 1000);
  }, opts.pollMs);

  setInterval(() => {
    const b = audio.buffered;
    G.lat.push({ t: wall(), latency: hls.latency, target: hls.targetLatency, ct: audio.currentTime,
      ahead: b.length ? b.end(b.length - 1) - audio.currentTime : null, rate: audio.playbackRate,
      ranges: Array.from({ length: b.length }, (_, i) => [+b.start(i).toFixed(3), +b.end(i).toFixed(3)]),
      outputLatency: ctx.outputLatency });
  }, 500);
};
</script>
</body></html>`;

async function startPageServer() {
  const server = http.createServer((req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
    } else if (req.url === '/hls.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(readFileSync(HLS_JS));
    } else {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
    }
  });
  await new Promise((r, j) => server.listen(0, '127.0.0.1', r).once('error', j));
  cleanups.push(() => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }));
  return `http://127.0.0.1:${server.address().port}/`;
}

async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: false, // --headless=new below: Playwright's own headless mode adds --mute-audio
    ignoreDefaultArgs: ['--mute-audio'],
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      // keep timers at full rate in a background/headless page
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
    timeout: 30000,
  });
  cleanups.push(() => browser.close());
  return browser;
}

// ---------------------------------------------------------------------------------------------

function stats(v) {
  const s = [...v].sort((a, b) => a - b);
  const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] : null);
  return { n: s.length, p50: q(0.5), p90: q(0.9), max: s.length ? s[s.length - 1] : null, min: s.length ? s[0] : null };
}
const ms = (x) => (x == null ? '-' : `${Math.round(x)} ms`);

function loadavg() {
  try { return readFileSync('/proc/loadavg', 'utf8').trim(); } catch { return null; }
}

async function main() {
  if (!existsSync(TRIBUNE_BIN)) throw new Error(`no tribune binary at ${TRIBUNE_BIN}`);
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`no chromium at ${CHROMIUM_BIN}`);
  if (!existsSync(HLS_JS)) throw new Error(`no ${HLS_JS} (npm ci in tests/browser)`);
  const loadBefore = loadavg();

  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tribune-glass-browser-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const wav = path.join(dataDir, 'beeps.wav');
  writeWav(wav, S + 10.5);

  const { base: origin, srv } = await startServer(dataDir);
  const space = await createSpace(origin);
  cleanups.push(() => cleanupEdges());
  const originPort = Number(new URL(origin).port);
  if (EDGE === 'varnish') chmodSync(dataDir, 0o755); // varnishd reads its VCL as its own user
  const edge = EDGE === 'nginx'
    ? await startNginxEdge(dataDir, `127.0.0.1:${originPort}`)
    : EDGE === 'varnish' ? await startVarnishEdge(dataDir, originPort) : null;
  // What the page plays from (the edge, else the origin); the speaker publishes to the origin.
  const base = edge ? edge.base : origin;
  const src = `${base}/spaces/${space.id}/hls/index.m3u8`;

  // A listener joins a space that is already live: wait until live.m3u8 lists 3 segments (the
  // silent rendition runs without a speaker). Opening the page on a just-created space made
  // hls.js start on a nearly empty playlist, stall for ~7 s and then stay ~8.8 s behind.
  const joinDeadline = Date.now() + 30000;
  for (;;) {
    const r = await fetch(`${base}/spaces/${space.id}/hls/live.m3u8`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
    const text = r && r.ok ? await r.text() : '';
    if ((text.match(/#EXTINF/g) || []).length >= 3) break;
    if (Date.now() > joinDeadline) throw new Error(`live.m3u8 did not list 3 segments in 30 s:\n${text}`);
    await sleep(200);
  }

  const pageUrl = await startPageServer();
  const browser = await launchBrowser();
  const browserVersion = browser.version();
  const page = await (await browser.newContext()).newPage();
  const consoleTail = [];
  page.on('console', (m) => {
    const s = `[page ${m.type()}] ${m.text()}`;
    consoleTail.push(s);
    if (consoleTail.length > 30) consoleTail.shift();
    if (VERBOSE) console.error(s);
  });
  page.on('pageerror', (e) => consoleTail.push(`[page error] ${e.message}`));
  const req = { parts: 0, blocking: 0, segments: 0 };
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(base)) return;
    if (u.includes('_HLS_msn=')) req.blocking++;
    if (u.includes('/part/')) req.parts++;
    else if (u.includes('/seg/')) req.segments++;
  });
  await page.goto(pageUrl, { timeout: 10000 });

  // Same clock? Compare the page's timeOrigin+now() with node's, bracketed by a round trip.
  const clock = [];
  for (let i = 0; i < 5; i++) {
    const a = wallNow();
    const p = await page.evaluate(() => performance.timeOrigin + performance.now());
    const b = wallNow();
    clock.push({ offset: p - (a + b) / 2, rtt: b - a });
  }
  clock.sort((x, y) => x.rtt - y.rtt);
  const clockCheck = clock[0];

  await page.evaluate(
    ({ src, opts }) => window.startGlass(src, opts),
    { src, opts: { fftSize: 2048, pollMs: 5, level: 0.1, quietMs: 500 } },
  );
  // Wait until the (silent) rendition plays steadily: currentTime advancing for 4 s.
  const playDeadline = Date.now() + 30000;
  let playingSince = null;
  for (;;) {
    const st = await page.evaluate(() => ({ started: G.started, log: G.log, errors: G.errors, playError: G.playError,
      lat: G.lat.length ? G.lat[G.lat.length - 1] : null }));
    // Steady = currentTime advancing and no 'waiting' event since playingSince.
    const lastEv = st.log.length ? st.log[st.log.length - 1] : null;
    const stalled = !st.lat || st.lat.ct <= 0.5 || (lastEv && lastEv.e === 'waiting');
    if (stalled) playingSince = null;
    else if (playingSince === null) playingSince = Date.now();
    if (playingSince !== null && Date.now() - playingSince >= 4000) break;
    if (Date.now() > playDeadline) {
      throw new Error(`the page did not play in 30 s: ${JSON.stringify({ ...st, console: consoleTail })}`);
    }
    await sleep(250);
  }

  // The speaker.
  let connectedAt = null;
  const speak = startChild(
    'speak',
    ['speak', '--whip', `${origin}/api/spaces/${space.id}/whip`, '--token', space.host_token,
      '--file', wav, '--seconds', String(S + 10)],
    (line, at) => {
      if (connectedAt === null && line.includes('WebRTC connected')) connectedAt = at;
    },
  );
  const connDeadline = Date.now() + 20000;
  while (connectedAt === null) {
    if (speak.exited()) throw new Error(`tribune speak exited: ${JSON.stringify(speak.exited())}\n${speak.stderrTail()}`);
    if (Date.now() > connDeadline) throw new Error(`speaker did not connect in 20 s\n${speak.stderrTail()}`);
    await sleep(2);
  }
  const firstSend = connectedAt + FIRST_FRAME_DELAY_MS + FIRST_BEEP_S * 1000;
  const beeps = Math.floor((S - FIRST_BEEP_S) / PERIOD_S) + 1; // beeps sent within S seconds
  const sendAt = (k) => firstSend + k * PERIOD_S * 1000;
  console.error(`glass browser: speaker connected; listening ${S} s + ${TAIL_MS / 1000} s tail (${beeps} beeps)`);
  await sleep(sendAt(beeps - 1) - wallNow() + TAIL_MS);
  if (srv.exited()) throw new Error(`tribune serve exited early\n${srv.stderrTail()}`);

  const G = await page.evaluate(() => ({ ...G, pollStats: G.poll ? G.poll() : null }));
  const loadAfter = loadavg();

  // Numbering. The page was playing (silence) before the speaker connected, and a player plays
  // in order, so the first onset after the speaker connected is beep 0; later onsets are numbered
  // by their distance from it (rounded to the period). The brief's rule — each onset → the
  // nearest expected send time before it — is the cross-check: it agrees only while the latency
  // is below one period (2.12 s); beyond that it aliases by whole periods, so disagreements are
  // reported and the first-onset numbering is used.
  const onsets = G.onsets.filter((o) => o.t >= connectedAt);
  const perBeep = new Array(beeps).fill(null);
  let extra = 0;
  let disagree = 0;
  const t0 = onsets.length ? onsets[0].t : 0;
  for (const o of onsets) {
    const k = Math.round((o.t - t0) / (PERIOD_S * 1000));
    const kBefore = Math.floor((o.t - firstSend) / (PERIOD_S * 1000));
    if (k !== kBefore) disagree++;
    if (k >= beeps) continue; // a beep sent after the S measured seconds
    if (perBeep[k]) { extra++; continue; }
    perBeep[k] = { k, sent: sendAt(k), onset: o.t, latency: o.t - sendAt(k), k_nearest_before: kBefore,
      latency_nearest_before: o.t - sendAt(kBefore), hlsLatency: o.latency, ct: o.ct, rate: o.rate };
  }
  const heard = perBeep.filter(Boolean);
  const settled = heard.filter((b) => b.sent >= connectedAt + SETTLE_S * 1000);
  const all = stats(heard.map((b) => b.latency));
  const steady = stats(settled.map((b) => b.latency));
  const latWindow = G.lat.filter((l) => l.t >= connectedAt + SETTLE_S * 1000 && l.t <= sendAt(beeps - 1) + 2000 && l.latency != null);
  const hlsLat = stats(latWindow.map((l) => l.latency * 1000));
  const hlsTarget = stats(latWindow.map((l) => (l.target ?? NaN) * 1000).filter(Number.isFinite));
  const ahead = stats(latWindow.map((l) => (l.ahead ?? NaN) * 1000).filter(Number.isFinite));
  const settledSent = Array.from({ length: beeps }, (_, k) => sendAt(k)).filter((t) => t >= connectedAt + SETTLE_S * 1000).length;

  const report = {
    path: EDGE || 'origin',
    seconds: S,
    settle_s: SETTLE_S,
    chromium: browserVersion,
    hls_js: G.hlsVersion || JSON.parse(readFileSync(HLS_PKG, 'utf8')).version,
    hls_config: G.hlsConfig,
    playlist: G.playlist,
    audio_ctx: G.audioCtx,
    clock_check_ms: clockCheck,
    poll: G.pollStats,
    loadavg_before: loadBefore,
    loadavg_after: loadAfter,
    requests: req,
    beeps_sent: beeps,
    beeps_heard: heard.length,
    beeps_sent_after_settle: settledSent,
    beeps_heard_after_settle: settled.length,
    extra_onsets: extra,
    numbering_disagreements: disagree,
    latency_ms_after_settle: steady,
    latency_ms_all: all,
    hls_latency_ms: hlsLat,
    hls_target_latency_ms: hlsTarget,
    buffer_ahead_ms: ahead,
    per_beep: perBeep,
    onsets: G.onsets,
    hls_samples: G.lat,
    events: G.log,
    errors: G.errors,
    play_error: G.playError,
  };

  const row = (name, s) => `| ${name} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.max)} | ${ms(s.min)} | ${s.n} |`;
  console.log(`\nBrowser glass-to-glass through ${EDGE || 'no edge (origin)'} (Chromium ${browserVersion}, hls.js ${report.hls_js}, lowLatencyMode), ${S} s`);
  console.log(`beeps heard ${heard.length}/${beeps}; after ${SETTLE_S} s settle ${settled.length}/${settledSent}; extra onsets ${extra}; numbering disagreements ${disagree}`);
  console.log(`playlist ${JSON.stringify(G.playlist)}; requests ${JSON.stringify(req)}; clock offset page−node ${clockCheck.offset.toFixed(2)} ms (rtt ${clockCheck.rtt.toFixed(2)} ms)`);
  console.log(`audio ctx ${JSON.stringify(G.audioCtx)}; poll ${JSON.stringify(G.pollStats)}; load ${loadBefore} → ${loadAfter}`);
  console.log('| measure | p50 | p90 | max | min | n |');
  console.log('|---|---:|---:|---:|---:|---:|');
  console.log(row(`speaker → analyser onset (beeps after ${SETTLE_S} s)`, steady));
  console.log(row('speaker → analyser onset (all beeps)', all));
  console.log(row('hls.latency (hls.js, sampled every 500 ms)', hlsLat));
  console.log(row('hls.targetLatency', hlsTarget));
  console.log(row('buffer ahead of currentTime', ahead));
  if (G.errors.length) console.log(`hls.js errors: ${JSON.stringify(G.errors.slice(0, 10))}`);

  if (JSON_OUT) {
    mkdirSync(path.dirname(path.resolve(JSON_OUT)), { recursive: true });
    writeFileSync(JSON_OUT, JSON.stringify(report, null, 1) + '\n');
    console.log(`wrote ${JSON_OUT}`);
  }
  if (!heard.length) throw new Error(`no beep heard; console: ${consoleTail.join('\n')}`);
}

let code = 0;
try {
  await main();
} catch (e) {
  console.error(`glass browser: FAIL: ${e?.stack ?? e}`);
  code = 1;
}
await cleanupAll();
process.exit(code);
