// Time until audible: how long after `audio.play()` a browser <audio> element playing tribune's
// live.opus stream actually produces sound.
//
// For each page cadence (default 200 ms and 1000 ms) this starts `tribune demo` on a free loopback
// port with a fresh data dir, waits for the demo to run for a few seconds, then runs N trials in
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core). Each trial opens a
// fresh browser context and page, served from a tiny loopback HTTP server; the page routes an
// <audio crossorigin=anonymous preload=none> element through createMediaElementSource into an
// AnalyserNode, calls play(), and polls the analyser every ~5 ms. "Audible" is the first poll whose
// window RMS exceeds the threshold (0.01 by default; the demo voices are ~0.1 RMS while talking).
//
// Prints, per cadence, median / p90 / max of play→audible and play→playing (plus a few other
// element events for diagnosis), and stops everything it started. Loopback only; bounded in time.
//
// Environment:
//   TRIBUNE_BIN    path to the tribune binary (default ../../target/release/tribune from here)
//   CHROMIUM_BIN   default /usr/bin/chromium
//   TRIALS         trials per cadence (default 10)
//   PAGE_MS        comma-separated cadences (default "200,1000")
//   BURST_MS       if set, passed as --burst-ms (default: the server's default)
//   TRIBUNE_ARGS   extra arguments for `tribune demo`, space-separated (e.g. "--bitrate 64000")
//   WARMUP_MS      how long the demo runs before the first trial (default 3000)
//   THRESHOLD      RMS threshold for "audible" (default 0.01)
//   TRIAL_TIMEOUT_MS  per-trial limit (default 15000)
//   OBSERVE_MS     if set, each trial keeps playing this long after audible, counting stalls
//   JSON_OUT       if set, raw per-trial results are written there as JSON
//   VERBOSE=1      echo tribune's stderr

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const TRIBUNE_BIN = path.resolve(here, env.TRIBUNE_BIN || '../../target/release/tribune');
const CHROMIUM_BIN = env.CHROMIUM_BIN || '/usr/bin/chromium';
const TRIALS = int(env.TRIALS, 10);
const PAGE_MS = (env.PAGE_MS || '200,1000').split(',').map((s) => int(s.trim(), NaN));
const BURST_MS = env.BURST_MS ? int(env.BURST_MS, NaN) : null;
const TRIBUNE_ARGS = (env.TRIBUNE_ARGS || '').split(/\s+/).filter(Boolean);
const WARMUP_MS = int(env.WARMUP_MS, 3000);
const THRESHOLD = Number(env.THRESHOLD || 0.01);
const TRIAL_TIMEOUT_MS = int(env.TRIAL_TIMEOUT_MS, 15000);
const OBSERVE_MS = int(env.OBSERVE_MS, 0);
const PAUSE_BETWEEN_MS = 500;
const VERBOSE = env.VERBOSE === '1';
// Hard limit for the whole run: everything is stopped after this, whatever state it is in.
const DEADLINE_MS = int(
  env.DEADLINE_MS,
  PAGE_MS.length * (20000 + WARMUP_MS + TRIALS * (TRIAL_TIMEOUT_MS + OBSERVE_MS + 3000)),
);

function int(s, dflt) {
  if (s === undefined || s === '') return dflt;
  const n = Number.parseInt(s, 10);
  if (!Number.isFinite(n)) throw new Error(`not an integer: ${s}`);
  return n;
}

function pwVersion() {
  try {
    return JSON.parse(readFileSync(path.join(here, 'node_modules/playwright-core/package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Cleanup: everything started is registered here and undone on exit, error, signal or deadline.

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
          console.error('cleanup:', e?.message ?? e);
        }
      }
    })();
  }
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    console.error(`\n${sig}: stopping`);
    await cleanupAll();
    process.exit(130);
  });
}
const deadline = setTimeout(async () => {
  console.error(`deadline of ${DEADLINE_MS} ms reached: stopping`);
  await cleanupAll();
  process.exit(3);
}, DEADLINE_MS);
deadline.unref();

// ---------------------------------------------------------------------------------------------
// tribune demo

async function startTribune(pageMs) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tribune-audible-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const args = ['demo', '--listen', '127.0.0.1:0', '--udp', '127.0.0.1:0', '--data-dir', dataDir];
  args.push('--page-ms', String(pageMs));
  if (BURST_MS !== null) args.push('--burst-ms', String(BURST_MS));
  args.push(...TRIBUNE_ARGS);
  const child = spawn(TRIBUNE_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  const exitP = new Promise((r) => child.once('exit', (code, sig) => {
    exited = true;
    r({ code, sig });
  }));
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
  let stderrTail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderrTail = (stderrTail + d).slice(-4000);
    if (VERBOSE) process.stderr.write(`[tribune] ${d}`);
  });
  // The demo prints "listen: http://ADDR/spaces/demo/live.opus" once bound (with the real port).
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`tribune printed no listen URL in 15 s; stderr:\n${stderrTail}`)), 15000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^listen: (http:\/\/\S+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    exitP.then(({ code, sig }) => {
      clearTimeout(timer);
      reject(new Error(`tribune exited (code ${code}, signal ${sig}) before listening; stderr:\n${stderrTail}`));
    });
  });
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new Error(`not loopback: ${url}`);
  return { url, stop, child, isAlive: () => !exited, stderrTail: () => stderrTail };
}

// Reads the first bytes of the stream from node, to check it is up and is Ogg/Opus.
async function probeStream(url) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), 5000);
  try {
    const res = await fetch(url, { signal: ac.signal });
    const headers = Object.fromEntries(res.headers);
    const reader = res.body.getReader();
    let got = new Uint8Array(0);
    while (got.length < 64) {
      const { value, done } = await reader.read();
      if (done) break;
      const n = new Uint8Array(got.length + value.length);
      n.set(got);
      n.set(value, got.length);
      got = n;
    }
    ac.abort();
    const magic = Buffer.from(got.subarray(0, 4)).toString('latin1');
    const opus = Buffer.from(got).toString('latin1').includes('OpusHead');
    return { status: res.status, headers, magic, opus };
  } finally {
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------
// The test page, served from loopback. The stream is on another origin (tribune's port), which
// is fine: live.opus sends Access-Control-Allow-Origin: *, and the element is crossorigin=anonymous,
// so createMediaElementSource sees the real samples (not zeros).

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>tribune audible bench</title></head>
<body>
<script>
window.runTrial = async function (url, opts) {
  const { threshold, pollMs, timeoutMs, fftSize, observeMs } = opts;
  const ctx = new AudioContext({ latencyHint: 'interactive' });
  if (ctx.state !== 'running') {
    await ctx.resume();
  }
  for (let i = 0; i < 100 && ctx.state !== 'running'; i++) await new Promise((r) => setTimeout(r, 10));
  const ctxState = ctx.state;

  const audio = new Audio();
  audio.crossOrigin = 'anonymous';
  audio.preload = 'none';
  const source = ctx.createMediaElementSource(audio);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = fftSize;
  source.connect(analyser);
  analyser.connect(ctx.destination);
  const buf = new Float32Array(analyser.fftSize);

  const ev = {};
  let t0 = 0;
  const now = () => performance.now() - t0;
  const mark = (name, extra) => {
    if (!(name in ev)) ev[name] = extra === undefined ? now() : { t: now(), ...extra };
  };
  const names = ['loadstart', 'progress', 'suspend', 'loadedmetadata', 'loadeddata', 'canplay',
                 'canplaythrough', 'play', 'playing', 'waiting', 'stalled', 'error', 'timeupdate'];
  for (const n of names) audio.addEventListener(n, () => mark(n));
  // After playback started: every stall, and how far the playhead went.
  const later = { waiting: [], stalled: 0 };
  audio.addEventListener('waiting', () => { if ('playing' in ev) later.waiting.push(now()); });
  audio.addEventListener('stalled', () => { if ('playing' in ev) later.stalled++; });

  audio.src = url;
  t0 = performance.now();
  const playP = audio.play();
  let playResolved = null, playError = null;
  playP.then(() => { playResolved = now(); }, (e) => { playError = String(e); });

  const result = await new Promise((resolve) => {
    let firstSignal = null, audible = null, maxRms = 0, polls = 0;
    const timer = setInterval(() => {
      polls++;
      const t = now();
      analyser.getFloatTimeDomainData(buf);
      let sum = 0, peak = 0;
      for (let i = 0; i < buf.length; i++) {
        const x = buf[i];
        sum += x * x;
        const a = x < 0 ? -x : x;
        if (a > peak) peak = a;
      }
      const rms = Math.sqrt(sum / buf.length);
      if (rms > maxRms) maxRms = rms;
      if (firstSignal === null && peak > 1e-4) firstSignal = { t, rms, currentTime: audio.currentTime };
      if (audible === null && rms > threshold) audible = { t, rms, currentTime: audio.currentTime };
      const done = (audible !== null && 'playing' in ev) || t > timeoutMs || playError !== null || audio.error;
      if (done) {
        clearInterval(timer);
        resolve({ firstSignal, audible, maxRms, polls, elapsed: t });
      }
    }, pollMs);
  });

  let observed = null;
  if (observeMs > 0 && result.audible) {
    const ct0 = audio.currentTime, w0 = now();
    await new Promise((r) => setTimeout(r, observeMs));
    observed = { ms: now() - w0, played: audio.currentTime - ct0, waiting: later.waiting, stalled: later.stalled };
  }
  const out = {
    ...result,
    observed,
    playResolved, playError,
    events: ev,
    ctxState,
    ctxStateEnd: ctx.state,
    sampleRate: ctx.sampleRate,
    baseLatency: ctx.baseLatency,
    outputLatency: ctx.outputLatency,
    readyState: audio.readyState,
    networkState: audio.networkState,
    mediaError: audio.error ? { code: audio.error.code, message: audio.error.message } : null,
    currentTimeEnd: audio.currentTime,
    buffered: Array.from({ length: audio.buffered.length }, (_, i) => [audio.buffered.start(i), audio.buffered.end(i)]),
    seekableEnd: audio.seekable.length ? audio.seekable.end(audio.seekable.length - 1) : null,
    duration: audio.duration === Infinity ? 'Infinity' : audio.duration,
  };
  audio.pause();
  audio.removeAttribute('src');
  audio.load();
  await ctx.close();
  return out;
};
</script>
</body></html>`;

async function startPageServer() {
  const server = http.createServer((req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((r, j) => server.listen(0, '127.0.0.1', r).once('error', j));
  cleanups.push(() => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }));
  return `http://127.0.0.1:${server.address().port}/`;
}

// ---------------------------------------------------------------------------------------------
// Chromium

async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_BIN,
    // Headless is asked for with --headless=new below; Playwright's own headless mode would also
    // add --mute-audio. Playwright gives each launch a fresh temporary --user-data-dir (and
    // removes it on close); it refuses one passed in args.
    headless: false,
    ignoreDefaultArgs: ['--mute-audio'],
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
    timeout: 30000,
  });
  cleanups.push(() => browser.close());
  return browser;
}

// ---------------------------------------------------------------------------------------------
// Statistics

function quantile(xs, q) {
  // Nearest-rank: the smallest value with at least q of the sample at or below it.
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const fmt = (x) => (Number.isFinite(x) ? `${Math.round(x)}`.padStart(6) : '     -');
function summary(xs) {
  return { n: xs.length, median: median(xs), p90: quantile(xs, 0.9), max: xs.length ? Math.max(...xs) : NaN };
}
const evT = (e) => (e === undefined ? undefined : typeof e === 'number' ? e : e.t);

// ---------------------------------------------------------------------------------------------

async function runCadence(pageMs, pageUrl) {
  const tribune = await startTribune(pageMs);
  const extra = `${BURST_MS !== null ? ` --burst-ms ${BURST_MS}` : ''}${TRIBUNE_ARGS.length ? ` ${TRIBUNE_ARGS.join(' ')}` : ''}`;
  console.log(`\n== --page-ms ${pageMs}${extra}: ${tribune.url}`);
  const probe = await probeStream(tribune.url);
  if (probe.status !== 200 || probe.magic !== 'OggS' || !probe.opus) {
    throw new Error(`stream probe failed: ${JSON.stringify(probe)}`);
  }
  console.log(`   stream ok: ${probe.headers['content-type']}, ACAO ${probe.headers['access-control-allow-origin']}`);
  await sleep(WARMUP_MS);
  const browser = await launchBrowser();
  const trials = [];
  console.log('   trial  audible  playing  1st-sig  progress  loadedmd  canplay  currentTime@audible  behind-live≈  maxRms');
  for (let i = 0; i < TRIALS; i++) {
    if (!tribune.isAlive()) throw new Error(`tribune died; stderr:\n${tribune.stderrTail()}`);
    const context = await browser.newContext();
    let r;
    try {
      const page = await context.newPage();
      const logs = [];
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
      await page.goto(pageUrl, { timeout: 10000 });
      r = await page.evaluate(
        ([url, opts]) => window.runTrial(url, opts),
        [tribune.url, { threshold: THRESHOLD, pollMs: 5, timeoutMs: TRIAL_TIMEOUT_MS, fftSize: 1024, observeMs: OBSERVE_MS }],
      );
      r.logs = logs;
    } finally {
      await context.close();
    }
    r.trial = i + 1;
    r.pageMs = pageMs;
    // How far behind live the first audible sample is, roughly: the stream's first timestamp plus
    // the burst is about where live was at play(); live has moved on by audible.t since then.
    r.behindLiveS = r.audible && r.buffered.length
      ? r.buffered[0][0] + (BURST_MS ?? 1000) / 1000 + r.audible.t / 1000 - r.audible.currentTime
      : null;
    trials.push(r);
    const ev = r.events;
    console.log(
      `   ${String(i + 1).padStart(5)}  ${fmt(r.audible?.t)}   ${fmt(evT(ev.playing))}   ${fmt(r.firstSignal?.t)}   ${fmt(evT(ev.progress))}    ${fmt(evT(ev.loadedmetadata))}   ${fmt(evT(ev.canplay))}   ${
        r.audible ? r.audible.currentTime.toFixed(3).padStart(8) : '       -'}             ${
        r.behindLiveS !== null ? r.behindLiveS.toFixed(1).padStart(6) : '     -'}        ${r.maxRms.toFixed(3)}` +
        (r.observed ? `  observed ${Math.round(r.observed.ms)} ms: played ${r.observed.played.toFixed(2)} s, ${r.observed.waiting.length} waiting, ${r.observed.stalled} stalled` : '') +
        (r.ctxState !== 'running' ? `  ctx=${r.ctxState}` : '') +
        (r.mediaError ? `  mediaError=${JSON.stringify(r.mediaError)}` : '') +
        (r.playError ? `  playError=${r.playError}` : '') +
        ('waiting' in ev ? `  waiting@${fmt(evT(ev.waiting)).trim()}` : ''),
    );
    await sleep(PAUSE_BETWEEN_MS);
  }
  await browser.close();
  await tribune.stop();
  const audible = trials.filter((t) => t.audible).map((t) => t.audible.t);
  const playing = trials.map((t) => evT(t.events.playing)).filter((x) => x !== undefined);
  const res = {
    pageMs,
    audible: summary(audible),
    playing: summary(playing),
    firstSignal: summary(trials.filter((t) => t.firstSignal).map((t) => t.firstSignal.t)),
    audibleMinusPlaying: summary(trials.filter((t) => t.audible && t.events.playing !== undefined)
      .map((t) => t.audible.t - evT(t.events.playing))),
    behindLive: summary(trials.filter((t) => t.behindLiveS !== null).map((t) => t.behindLiveS * 1000)),
    failures: trials.length - audible.length,
    trials,
  };
  return res;
}

async function main() {
  if (!existsSync(TRIBUNE_BIN)) throw new Error(`no tribune binary at ${TRIBUNE_BIN} (cargo build --release -p tribune, or set TRIBUNE_BIN)`);
  const pageUrl = await startPageServer();
  let version = '?';
  {
    const b = await launchBrowser();
    version = b.version();
    await b.close();
  }
  console.log(`tribune: ${TRIBUNE_BIN}`);
  console.log(`chromium: ${CHROMIUM_BIN} (${version}), playwright-core ${pwVersion()}`);
  console.log(`trials: ${TRIALS} per cadence, warm-up ${WARMUP_MS} ms, threshold RMS > ${THRESHOLD}, analyser polled every 5 ms (fftSize 1024)`);
  const results = [];
  for (const pageMs of PAGE_MS) results.push(await runCadence(pageMs, pageUrl));

  console.log('\nSummary (ms from audio.play(); nearest-rank p90)');
  console.log('  page-ms  metric              n  median     p90     max');
  for (const r of results) {
    for (const [name, s] of [['play->audible', r.audible], ['play->playing', r.playing], ['play->first signal', r.firstSignal], ['playing->audible', r.audibleMinusPlaying], ['behind live≈', r.behindLive]]) {
      console.log(`  ${String(r.pageMs).padStart(7)}  ${name.padEnd(18)} ${String(s.n).padStart(2)}  ${fmt(s.median)}  ${fmt(s.p90)}  ${fmt(s.max)}`);
    }
    if (r.failures) console.log(`  ${String(r.pageMs).padStart(7)}  ${r.failures} trial(s) never audible within ${TRIAL_TIMEOUT_MS} ms`);
  }
  if (env.JSON_OUT) {
    writeFileSync(env.JSON_OUT, JSON.stringify({ chromium: version, threshold: THRESHOLD, results }, null, 2));
    console.log(`raw results: ${env.JSON_OUT}`);
  }
  return results.some((r) => r.failures) ? 1 : 0;
}

let code = 2;
try {
  code = await main();
} catch (e) {
  console.error('error:', e?.stack ?? e);
} finally {
  await cleanupAll();
}
process.exit(code);
