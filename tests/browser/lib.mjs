// Shared helpers of the browser tests (hls_browser.mjs, webapp.mjs).
//
// - a cleanup registry: everything started registers how to undo it; `cleanupAll()` runs the
//   undo steps last-in first-out, once, on success, failure, a signal or the deadline;
// - `guard(label, deadlineMs)`: SIGINT/SIGTERM and a hard deadline both clean up and exit;
// - `startChild` / `startServer`: tribune processes, stopped with SIGINT (SIGKILL after 3 s);
// - `startPageServer`: a tiny loopback HTTP server for test pages;
// - `launchChromium(wavPath)`: Debian's headless Chromium, with audio output (no --mute-audio)
//   and, given a WAV, a fake microphone playing that file in a loop;
// - `writeToneWav`: the WAV files those fake microphones play;
// - `measureTones` / `waitTone`: tone detection on an AnalyserNode exposed by the page.
//
// Environment: TRIBUNE_BIN (default target/debug/tribune at the repo root; a relative path is
// taken from the current directory), CHROMIUM_BIN (default /usr/bin/chromium), VERBOSE=1.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
const env = process.env;
export const TRIBUNE_BIN = env.TRIBUNE_BIN
  ? path.resolve(process.cwd(), env.TRIBUNE_BIN)
  : path.resolve(repoRoot, 'target/debug/tribune');
export const CHROMIUM_BIN = env.CHROMIUM_BIN || '/usr/bin/chromium';
export const VERBOSE = env.VERBOSE === '1';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves to `p`'s value, or rejects with `what` timed out after `ms`. */
export function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, j) => {
      timer = setTimeout(() => j(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Cleanup: everything started is registered here and undone on exit, error, signal or deadline.

const cleanups = [];
let cleaning = null;
let stoppingFlag = false;

/** True once a signal or the deadline started stopping everything (the run's result is then theirs). */
export const stopping = () => stoppingFlag;

/** Registers `f` (sync or async) to run at cleanup; returns `f`. */
export function onCleanup(f) {
  cleanups.push(f);
  return f;
}

export function cleanupAll() {
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

/**
 * Installs the signal handlers and the hard deadline of a test named `label`. `onDeadline`
 * (optional, async) runs first when the deadline hits, for at most 8 s (e.g. screenshots).
 */
export function guard(label, deadlineMs, onDeadline) {
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, async () => {
      if (stoppingFlag) return; // already stopping
      stoppingFlag = true;
      console.error(`${label}: ${sig}, stopping`);
      await cleanupAll();
      process.exit(130);
    });
  }
  const deadline = setTimeout(async () => {
    stoppingFlag = true;
    console.error(`${label}: FAIL: deadline of ${deadlineMs} ms reached`);
    if (onDeadline) {
      try {
        await withTimeout(Promise.resolve().then(onDeadline), 8000, 'deadline hook');
      } catch (e) {
        console.error(`${label}: ${e?.message ?? e}`);
      }
    }
    await cleanupAll();
    process.exit(3);
  }, deadlineMs);
  deadline.unref();
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** Spawns `bin args`; it is stopped (SIGINT, then SIGKILL after 3 s) at cleanup. */
export function startChild(name, args, { bin = TRIBUNE_BIN } = {}) {
  if (stoppingFlag) throw new Error(`stopping: ${name} not started`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderrTail = (stderrTail + d).slice(-4000);
    if (VERBOSE) process.stderr.write(`[${name}] ${d}`);
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
  onCleanup(stop);
  return { child, exitP, stop, exited: () => exited, stderrTail: () => stderrTail };
}

/**
 * Starts `tribune serve` on loopback (ports chosen by the OS) with a fresh data dir and the
 * operator key `adminKey`; `extraArgs` are appended. Resolves to `{ base, srv, dataDir }` once
 * the first stdout line, "tribune listening on http://ADDR (media on udp ADDR)", arrived.
 * Given `dataDir` (a restart), that directory is used and left in place.
 */
export async function startServer({ adminKey = 'browser-test-operator-key', prefix = 'tribune-browser-', extraArgs = [], listen = '127.0.0.1:0', name = 'serve', dataDir: given = null } = {}) {
  // `dataDir`: an existing one (a restart), removed by whoever made it.
  const dataDir = given ?? mkdtempSync(path.join(os.tmpdir(), prefix));
  if (!given) onCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
  const srv = startChild(name, [
    'serve', '--listen', listen, '--udp', '127.0.0.1:0',
    '--admin-key', adminKey, '--data-dir', dataDir, '--log', 'info', ...extraArgs,
  ]);
  // With --tls-listen a second line names the HTTPS address.
  const tls = extraArgs.includes('--tls-listen');
  const [base, https] = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`tribune serve printed no listen line in 15 s; stderr:\n${srv.stderrTail()}`)),
      15000,
    );
    srv.child.stdout.setEncoding('utf8');
    srv.child.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      if (lines.length < (tls ? 3 : 2)) return;
      clearTimeout(timer);
      const m = lines[0].match(/^tribune listening on (http:\/\/\S+) \(media on udp \S+\)$/);
      const t = tls ? lines[1].match(/^tribune listening on (https:\/\/\S+)$/) : [null, null];
      if (m && t) resolve([m[1].replace(/\/$/, ''), t[1] && t[1].replace(/\/$/, '')]);
      else reject(new Error(`unexpected first lines from tribune serve: ${lines.slice(0, 2).join(' / ')}`));
    });
    srv.exitP.then(({ code, sig }) => {
      clearTimeout(timer);
      reject(new Error(`tribune serve exited (code ${code}, signal ${sig}) before listening; stderr:\n${srv.stderrTail()}`));
    });
  });
  for (const u of [base, https]) {
    if (u && new URL(u).hostname !== '127.0.0.1') throw new Error(`not loopback: ${u}`);
  }
  return { base, https, srv, dataDir };
}

/**
 * A loopback HTTP server for test pages: `routes` maps a path to `{ type, body }` (a string or
 * Buffer) or `{ type, file }` (read at each request). `/favicon.ico` is 204, anything else 404.
 * Resolves to its base URL ending in `/`.
 */
export async function startPageServer(routes) {
  const server = http.createServer((req, res) => {
    const r = routes[req.url];
    if (r) {
      res.writeHead(200, { 'content-type': r.type, 'cache-control': 'no-store' });
      res.end(r.file ? readFileSync(r.file) : r.body);
    } else if (req.url === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((r, j) => server.listen(0, '127.0.0.1', r).once('error', j));
  onCleanup(() => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }));
  return `http://127.0.0.1:${server.address().port}/`;
}

// ---------------------------------------------------------------------------------------------
// Chromium

// Playwright's own `--disable-features=…` list, read from playwright-core (Chromium keeps only
// the last --disable-features switch, so ours must carry Playwright's list too). Null if the
// list cannot be found (then ours is appended and replaces it; harmless for these tests).
let pwDisabled;
function playwrightDisabledFeatures() {
  if (pwDisabled !== undefined) return pwDisabled;
  pwDisabled = null;
  try {
    const src = readFileSync(path.join(here, 'node_modules/playwright-core/lib/coreBundle.js'), 'utf8');
    const m = src.match(/disabledFeatures = \[([\s\S]*?)\]\.filter\(Boolean\)/);
    if (m) {
      const list = [...m[1].replace(/\/\/[^\n]*/g, '').matchAll(/"([A-Za-z0-9_]+)"/g)].map((x) => x[1]);
      if (list.length) pwDisabled = list;
    }
  } catch {
    // not found: see above
  }
  return pwDisabled;
}

/** The flags of a participant with a fake microphone playing `wavPath` (looped by Chromium). */
export function fakeMicArgs(wavPath) {
  return [
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wavPath}`,
    '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
  ];
}

/**
 * Launches one headless Chromium process (its own fake devices: the fake microphone file is a
 * per-process flag). Given `wavPath`, the process gets the fake-microphone flags and
 * `--disable-features=WebRtcHideLocalIpsWithMdns`. Closed at cleanup.
 */
export async function launchChromium(wavPath, { extraArgs = [] } = {}) {
  const ignoreDefaultArgs = ['--mute-audio'];
  const args = [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (wavPath) {
    args.push(...fakeMicArgs(wavPath).filter((a) => !args.includes(a)));
    const pw = playwrightDisabledFeatures();
    if (pw) ignoreDefaultArgs.push(`--disable-features=${pw.join(',')}`);
    args.push(`--disable-features=${[...(pw || []), 'WebRtcHideLocalIpsWithMdns'].join(',')}`);
  }
  args.push(...extraArgs);
  if (stoppingFlag) throw new Error('stopping: chromium not launched');
  const browser = await chromium.launch({
    executablePath: CHROMIUM_BIN,
    // Headless through --headless=new: Playwright's own headless mode would add --mute-audio.
    headless: false,
    ignoreDefaultArgs,
    args,
    timeout: 30000,
  });
  const close = onCleanup(() => withTimeout(browser.close(), 10000, 'browser.close').catch(() => {}));
  if (stoppingFlag) {
    await close(); // the cleanup run may be over already
    throw new Error('stopping');
  }
  return browser;
}

// ---------------------------------------------------------------------------------------------
// Fake microphones

/**
 * Writes a RIFF/WAVE PCM file: mono, 16-bit, `rate` Hz, `seconds` long, a sine of `hz` at
 * `dbfs` (peak level), or silence when `hz` is 0. With a whole number of cycles in the file
 * (440 or 660 Hz over 10 s) Chromium's looping has no click.
 */
export function writeToneWav(file, { hz, seconds = 10, rate = 48000, dbfs = -12 }) {
  const n = Math.round(seconds * rate);
  const amp = hz ? 32767 * 10 ** (dbfs / 20) : 0;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16); // fmt chunk size
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28); // byte rate
  buf.writeUInt16LE(2, 32); // block align
  buf.writeUInt16LE(16, 34); // bits per sample
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(amp * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + 2 * i);
  writeFileSync(file, buf);
  return file;
}

// ---------------------------------------------------------------------------------------------
// Tone detection
//
// The page exposes AnalyserNodes as `window.tribune.<which>` (outputAnalyser, stageAnalyser).
// One sample reads the analyser's current spectrum (getFloatFrequencyData, dB) and gives, for
// each probed frequency f, its peak: the strongest bin within ±2 bins of f, and its noise floor:
// the median of the bins within ±200 Hz of f, leaving out ±10 bins around every probed frequency
// (so a second tone does not raise the floor of the first). A local floor makes a broadband
// transient (a click raises every bin at once) read as no tone. Bins come from frequencyBinCount
// and context.sampleRate, whatever fftSize the page chose.
//
// Thresholds: a tone is PRESENT when its peak is at least -70 dB and at least 20 dB above its
// floor. A -12 dBFS sine through the browser's microphone processing and Opus reads about -30 to
// -60 dB in an AnalyserNode (Blackman window); the bins of coded audio away from any tone read
// -90 dB or less, silence -Infinity (reported as -200). waitTone(present) needs 2 consecutive
// present samples; waitTone(absent) 3 consecutive samples (200 ms apart) where it is not present.

export const PRESENT_MIN_DB = -70;
export const PRESENT_SNR_DB = 20;
export const SAMPLE_MS = 200;

/** Page function: one spectrum sample of window.tribune[which] at `freqs`. */
export function pageMeasure({ which, freqs, spread = 2, exclude = 10, floorHz = 200 }) {
  const t = window.tribune;
  const a = t ? t[which] : undefined;
  if (!a || typeof a.getFloatFrequencyData !== 'function') {
    return { error: `window.tribune${t ? '.' + which : ''} is ${a === null ? 'null' : typeof a}` };
  }
  const n = a.frequencyBinCount;
  const rate = a.context.sampleRate;
  const binHz = rate / (2 * n);
  const spec = new Float32Array(n);
  a.getFloatFrequencyData(spec);
  const val = (b) => (Number.isFinite(spec[b]) ? spec[b] : -200);
  const r1 = (x) => Math.round(x * 10) / 10;
  const bins = freqs.map((f) => Math.round(f / binHz));
  const w = Math.round(floorHz / binHz);
  const tones = {};
  const floors = {};
  freqs.forEach((f, i) => {
    let p = -200;
    for (let b = bins[i] - spread; b <= bins[i] + spread; b++) if (b >= 0 && b < n) p = Math.max(p, val(b));
    const near = [];
    for (let b = Math.max(1, bins[i] - w); b <= Math.min(n - 1, bins[i] + w); b++) {
      if (!bins.some((x) => Math.abs(b - x) <= exclude)) near.push(val(b));
    }
    near.sort((x, y) => x - y);
    tones[f] = r1(p);
    floors[f] = near.length ? r1(near[near.length >> 1]) : -200;
  });
  return { tones, floors, fftSize: a.fftSize, binHz: Math.round(binHz * 100) / 100, ctx: a.context.state };
}

export function isPresent(sample, hz) {
  if (!sample || sample.error) return false;
  const p = sample.tones[hz];
  return p >= PRESENT_MIN_DB && p >= sample.floors[hz] + PRESENT_SNR_DB;
}

/** "440 Hz -31.2/-98.0 dB, 660 Hz …" (peak/floor), or the error. */
export const fmtSample = (s) =>
  !s
    ? 'no sample'
    : s.error
      ? s.error
      : Object.keys(s.tones).map((f) => `${f} Hz ${s.tones[f]}/${s.floors[f]} dB`).join(', ') + ` (peak/floor; ctx ${s.ctx}, fft ${s.fftSize})`;

/** One sample of `page`'s window.tribune[which] at `freqs` (default 440 and 660 Hz). */
export async function measureTones(page, which, freqs = [440, 660]) {
  return page.evaluate(pageMeasure, { which, freqs });
}

/**
 * Waits until `hz` is present (2 consecutive samples) or absent (3 consecutive samples) in
 * `page`'s window.tribune[which]. Throws, with the best and the last sample, after `timeoutMs`.
 * `freqs` are the frequencies probed together (kept out of the floor). Resolves to the last sample.
 */
export async function waitTone(page, { which, hz, want, timeoutMs, label, freqs = [440, 660] }) {
  const need = want === 'present' ? 2 : 3;
  const t0 = Date.now();
  let run = 0;
  let last = null;
  let best = null;
  const seen = [];
  for (;;) {
    let s;
    try {
      s = await page.evaluate(pageMeasure, { which, freqs });
    } catch (e) {
      s = { error: `evaluate failed: ${e?.message ?? e}` };
    }
    last = s;
    const present = isPresent(s, hz);
    if (!s.error && (!best || s.tones[hz] - s.floors[hz] > best.tones[hz] - best.floors[hz])) best = s;
    seen.push(s.error ? 'E' : present ? '+' : '-');
    run = present === (want === 'present') ? run + 1 : 0;
    if (run >= need) return s;
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(
        `${label}: ${hz} Hz not ${want} in window.tribune.${which} within ${timeoutMs} ms ` +
          `(need ${need} consecutive samples; present=peak>=${PRESENT_MIN_DB} dB and >=floor+${PRESENT_SNR_DB} dB); ` +
          `samples (+ present, - not, E error) ${seen.join('').slice(-60)}; last: ${fmtSample(last)}; ` +
          `most prominent ${hz} Hz: ${fmtSample(best)}`,
      );
    }
    await sleep(SAMPLE_MS);
  }
}
