// Time until audible in tribune's own web app: from the click on "Play" on /spaces/{id} to the
// first moment the speaker's 440 Hz tone is present in the page's output analyser.
//
// The goal measured: "audible within a couple of seconds of pressing play" (README, The web app).
//
// What it does (loopback only, bounded by DEADLINE_MS, stops everything it started):
// 1. Starts `tribune serve` on 127.0.0.1 (ports chosen by the OS, fresh data dir, --admin-key)
//    with tests/browser/lib.mjs's startServer, creates a space (POST /api/spaces with the operator
//    key) and publishes a 440 Hz tone into it with
//    `tribune speak --whip BASE/api/spaces/ID/whip --token HOST_TOKEN --tone 440 --seconds N`.
// 2. Waits until the speaker logged "WebRTC connected" and live.m3u8 lists 3 segments: the
//    listener joins a space that is already on air.
// 3. Launches one headless Chromium (Debian's /usr/bin/chromium, playwright-core) with the flags
//    of lib.mjs's launchChromium minus the fake-microphone ones AND minus
//    --autoplay-policy=no-user-gesture-required: the click on Play is the user gesture, as for a
//    real visitor. Timer throttling of background pages is switched off so the 20 ms poll holds.
// 4. Per mode, TRIALS trials. Each: a fresh browser context (empty cache, no stored session) opens
//    /spaces/ID, waits until the "Play" button is visible (getByRole('button', { name: 'Play',
//    exact: true })), clicks it, and the page measures in its own clock:
//    - click → audible: a capturing `click` listener on window (it runs before the app's handler)
//      stamps performance.now() and starts a poll every 20 ms of window.tribune.outputAnalyser
//      (getFloatFrequencyData, with lib.mjs's pageMeasure and isPresent, injected verbatim):
//      present = the peak within ±2 bins of 440 Hz is ≥ −70 dB and ≥ 20 dB above the median of
//      the bins within ±200 Hz. The first present sample ends the trial;
//    - load → Play-ready: performance.now() (navigation start = 0) when a MutationObserver first
//      sees #play connected, rendered and reading "Play"; node's goto → visible is kept too;
//    - click → the audio element's first `playing` event, and the player's mode.
//    Modes (each trial checks window.tribune.page.player.mode):
//    - `hls`: the app as it is, hls.js over MSE (LL-HLS); mode 'hls.js';
//    - `ogg`: the app's Ogg fallback (/live.opus in its <audio>); mode 'ogg'. An init script sets
//      window.MediaSource and window.ManagedMediaSource to undefined before the page's scripts
//      run, AND makes canPlayType answer '' for HLS types: Chromium 156 has a built-in HLS player
//      (canPlayType('application/vnd.apple.mpegurl') answers 'maybe'; recorded in the JSON), which
//      the app takes before the Ogg stream, so hiding MSE alone gives `native`, not Ogg;
//    - `native`: MSE hidden only, so Chromium's own HLS player plays index.m3u8; mode 'native-hls'.
// 5. Prints a table (median, nearest-rank p90, max, n per mode) and writes JSON.
//
// Usage: bench/audible-webapp/run.sh [hls] [ogg] [native]     (default: hls)
// Environment:
//   TRIBUNE_BIN       default target/release/tribune at the repo root (relative: from the cwd)
//   CHROMIUM_BIN      default /usr/bin/chromium
//   TRIALS            trials per mode (default 10)
//   TRIAL_TIMEOUT_MS  per-trial limit from the click (default 20000; a plain Ogg <audio> in
//                     Chromium needs ~9–10 s, see bench/audible)
//   JSON_OUT          default bench/json/audible-webapp.json ("" to skip)
//   DEADLINE_MS       hard limit for the whole run (default: from the modes and trials)
//   VERBOSE=1         echo tribune's stderr and the pages' consoles
// node_modules: tests/browser/node_modules (playwright-core 1.65.1, pinned; `npm ci` there).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const env = process.env;
// lib.mjs reads TRIBUNE_BIN when it loads (its default is the debug build): set ours first.
if (!env.TRIBUNE_BIN) env.TRIBUNE_BIN = path.join(repoRoot, 'target/release/tribune');
const lib = await import('../../tests/browser/lib.mjs');
const { chromium } = await import('../../tests/browser/node_modules/playwright-core/index.mjs');
const { TRIBUNE_BIN, CHROMIUM_BIN, VERBOSE, cleanupAll, guard, onCleanup, sleep, startChild, startServer, stopping, withTimeout } = lib;

const ADMIN_KEY = 'audible-webapp-operator-key';
const HZ = 440;
const POLL_MS = 20;
const MODES = process.argv.slice(2).length ? process.argv.slice(2) : ['hls'];
for (const m of MODES) if (!['hls', 'ogg', 'native'].includes(m)) throw new Error(`unknown mode ${m} (hls, ogg or native)`);
const TRIALS = int(env.TRIALS, 10);
const TRIAL_TIMEOUT_MS = int(env.TRIAL_TIMEOUT_MS, 20000);
const READY_TIMEOUT_MS = 15000;
const PAUSE_BETWEEN_MS = 300;
const JSON_OUT = env.JSON_OUT ?? path.join(repoRoot, 'bench/json/audible-webapp.json');
const DEADLINE_MS = int(env.DEADLINE_MS, 60000 + MODES.length * TRIALS * (TRIAL_TIMEOUT_MS + READY_TIMEOUT_MS / 3 + 3000));

function int(s, dflt) {
  if (s === undefined || s === '') return dflt;
  const n = Number.parseInt(s, 10);
  if (!Number.isFinite(n) || n < 1) throw new Error(`not a positive integer: ${s}`);
  return n;
}

const t0 = Date.now();
const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${s}`);
const loadavg = () => {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return null;
  }
};
const pkgVersion = (p) => {
  try {
    return JSON.parse(readFileSync(p, 'utf8')).version;
  } catch {
    return '?';
  }
};

// ---------------------------------------------------------------------------------------------
// In-page instrumentation, installed by an init script before the app's own scripts run.
// lib.mjs's tone detection is injected as source, so "present" here is exactly the tests' rule.

const INIT = `(() => {
  const PRESENT_MIN_DB = ${lib.PRESENT_MIN_DB};
  const PRESENT_SNR_DB = ${lib.PRESENT_SNR_DB};
  const pageMeasure = ${lib.pageMeasure.toString()};
  const isPresent = ${lib.isPresent.toString()};
  const B = (window.__bench = { ready: null, click: null, playing: null, audible: null, polls: 0, maxGapMs: 0,
    samples: 0, errors: 0, last: null, best: null, mode: null, latency: null, done: false });
  const isPlay = (el) => el && el.id === 'play' && el.isConnected && el.getClientRects().length > 0 &&
    el.textContent.trim() === 'Play';
  new MutationObserver((_, obs) => {
    if (B.ready === null && isPlay(document.getElementById('play'))) {
      B.ready = performance.now();
      obs.disconnect();
    }
  }).observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
  // The audio element's first 'playing' after the click (media events do not bubble: capture).
  document.addEventListener('playing', () => {
    if (B.click !== null && B.playing === null) B.playing = performance.now() - B.click;
  }, true);
  addEventListener('click', (e) => {
    const btn = e.target && e.target.closest ? e.target.closest('button') : null;
    if (B.click !== null || !btn || btn.textContent.trim() !== 'Play') return;
    B.click = performance.now();
    const limit = ${TRIAL_TIMEOUT_MS};
    let prev = B.click;
    const timer = setInterval(() => {
      const now = performance.now();
      B.polls++;
      B.maxGapMs = Math.max(B.maxGapMs, now - prev);
      prev = now;
      const t = window.tribune;
      if (t && t.outputAnalyser) {
        const s = pageMeasure({ which: 'outputAnalyser', freqs: [${HZ}] });
        if (s.error) B.errors++;
        else {
          B.samples++;
          B.last = s;
          if (!B.best || s.tones[${HZ}] - s.floors[${HZ}] > B.best.tones[${HZ}] - B.best.floors[${HZ}]) B.best = s;
        }
        if (isPresent(s, ${HZ})) {
          B.audible = now - B.click;
          B.sample = s;
          const p = t.page && t.page.player;
          B.mode = p ? p.mode : null;
          B.latency = p && p.hls && Number.isFinite(p.hls.latency) ? p.hls.latency : null;
          B.currentTime = p ? p.el.currentTime : null;
        }
      }
      if (B.audible !== null || now - B.click > limit) {
        clearInterval(timer);
        const p = t && t.page && t.page.player;
        if (B.mode === null && p) B.mode = p.mode;
        B.done = true;
      }
    }, ${POLL_MS});
  }, true);
})();`;

// No MSE: hls.js reports itself unsupported. Chromium 156 then still has its own HLS player
// (canPlayType('application/vnd.apple.mpegurl') is not ''), which the app takes next (mode
// `native-hls`): that is the `native` mode.
const NO_MSE = `(() => {
  window.__bench_hlsType = document.createElement('audio').canPlayType('application/vnd.apple.mpegurl');
  window.MediaSource = undefined;
  window.ManagedMediaSource = undefined;
})();`;
// The `ogg` mode also hides the browser's own HLS, so the app falls back to /live.opus.
const NO_NATIVE_HLS = `(() => {
  const orig = HTMLMediaElement.prototype.canPlayType;
  HTMLMediaElement.prototype.canPlayType = function (type) {
    return /mpegurl/i.test(String(type)) ? '' : orig.call(this, type);
  };
})();`;
const EXPECT = { hls: 'hls.js', native: 'native-hls', ogg: 'ogg' };

// ---------------------------------------------------------------------------------------------
// Server, space, speaker

async function createSpace(base) {
  const res = await fetch(`${base}/api/spaces`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title: 'Audible bench', description: '440 Hz tone' }),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST /api/spaces: ${res.status} ${text}`);
  const j = JSON.parse(text);
  if (!j.id || !j.host_token) throw new Error(`POST /api/spaces: no id/host_token in ${text}`);
  return j;
}

async function startSpeaker(base, space, seconds) {
  const speak = startChild('speak', [
    'speak', '--whip', `${base}/api/spaces/${encodeURIComponent(space.id)}/whip`, '--token', space.host_token,
    '--tone', String(HZ), '--seconds', String(seconds),
  ]);
  const deadline = Date.now() + 20000;
  while (!speak.stderrTail().includes('WebRTC connected')) {
    if (speak.exited()) throw new Error(`tribune speak exited: ${JSON.stringify(speak.exited())}\n${speak.stderrTail()}`);
    if (Date.now() > deadline) throw new Error(`tribune speak did not connect in 20 s\n${speak.stderrTail()}`);
    await sleep(20);
  }
  return speak;
}

async function waitSegments(base, id, n) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const r = await fetch(`${base}/spaces/${encodeURIComponent(id)}/hls/live.m3u8`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
    const text = r && r.ok ? await r.text() : '';
    if ((text.match(/#EXTINF/g) || []).length >= n) return;
    if (Date.now() > deadline) throw new Error(`live.m3u8 did not list ${n} segments in 30 s:\n${text}`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------
// Chromium: launchChromium's flags without the fake microphone and without the autoplay switch.

async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: false, // --headless=new below: Playwright's own headless mode adds --mute-audio
    ignoreDefaultArgs: ['--mute-audio'],
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // keep the 20 ms poll at full rate whatever Chromium thinks of the page's visibility
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
    timeout: 30000,
  });
  onCleanup(() => withTimeout(browser.close(), 10000, 'browser.close').catch(() => {}));
  return browser;
}

// ---------------------------------------------------------------------------------------------
// One trial

async function trial(browser, url, mode, n) {
  const context = await browser.newContext();
  const closeCtx = onCleanup(() => withTimeout(context.close(), 5000, 'context.close').catch(() => {}));
  const logs = [];
  try {
    if (mode !== 'hls') await context.addInitScript(NO_MSE);
    if (mode === 'ogg') await context.addInitScript(NO_NATIVE_HLS);
    await context.addInitScript(INIT);
    const page = await context.newPage();
    page.on('console', (m) => {
      logs.push(`${m.type()}: ${m.text()}`);
      if (VERBOSE) console.error(`[page ${n}] ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    const nav = Date.now();
    await page.goto(url, { timeout: READY_TIMEOUT_MS, waitUntil: 'commit' });
    const play = page.getByRole('button', { name: 'Play', exact: true });
    await play.waitFor({ state: 'visible', timeout: READY_TIMEOUT_MS });
    const readyNodeMs = Date.now() - nav;
    await play.click({ timeout: 5000 });
    let B = null;
    const deadline = Date.now() + TRIAL_TIMEOUT_MS + 5000;
    for (;;) {
      B = await page.evaluate(() => {
        const b = window.__bench;
        const nt = performance.getEntriesByType('navigation')[0];
        return { ...b, dcl: nt ? nt.domContentLoadedEventEnd : null, hlsType: window.__bench_hlsType ?? null,
          status: (document.querySelector('.player-status') || {}).textContent || '' };
      });
      if (B.done) break;
      if (B.click === null && Date.now() - nav > READY_TIMEOUT_MS + 5000) throw new Error('the click on Play was not seen by the page');
      if (Date.now() > deadline) throw new Error('the page poll did not finish');
      await sleep(100);
    }
    return {
      trial: n,
      mode,
      playerMode: B.mode,
      audibleMs: B.audible,
      readyMs: B.ready,
      readyNodeMs,
      domContentLoadedMs: B.dcl,
      playingMs: B.playing,
      nativeHlsCanPlayType: B.hlsType,
      hlsLatencyS: B.latency,
      currentTimeS: B.currentTime ?? null,
      sample: B.sample ?? null,
      best: B.audible === null ? B.best : undefined,
      last: B.audible === null ? B.last : undefined,
      polls: B.polls,
      maxPollGapMs: B.maxGapMs,
      analyserErrors: B.errors,
      playerStatus: B.status,
      logs: logs.slice(-20),
    };
  } catch (e) {
    return { trial: n, mode, error: String(e?.message ?? e), logs: logs.slice(-20) };
  } finally {
    await closeCtx();
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics (nearest-rank quantiles, as the other benches)

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return null;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function summary(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return { n: v.length, median: median(v), p90: quantile(v, 0.9), max: v.length ? Math.max(...v) : null, min: v.length ? Math.min(...v) : null };
}
const f = (x, w = 6) => (x == null ? '-' : `${Math.round(x)}`).padStart(w);

// ---------------------------------------------------------------------------------------------

async function main() {
  if (!existsSync(TRIBUNE_BIN)) throw new Error(`no tribune binary at ${TRIBUNE_BIN} (cargo build --release -p tribune)`);
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`no chromium at ${CHROMIUM_BIN}`);
  const loadBefore = loadavg();
  const { base } = await startServer({ adminKey: ADMIN_KEY, prefix: 'tribune-audible-webapp-' });
  const space = await createSpace(base);
  const url = `${base}/spaces/${encodeURIComponent(space.id)}`;
  log(`tribune ${TRIBUNE_BIN}: ${base}, space ${space.id}`);
  await startSpeaker(base, space, Math.ceil(DEADLINE_MS / 1000) + 10);
  await waitSegments(base, space.id, 3);
  log(`speaker on air (${HZ} Hz), live.m3u8 lists 3 segments`);
  const browser = await launchBrowser();
  const version = browser.version();
  const pw = pkgVersion(path.join(repoRoot, 'tests/browser/node_modules/playwright-core/package.json'));
  log(`chromium ${version} (${CHROMIUM_BIN}), playwright-core ${pw}; ${TRIALS} trials per mode, poll ${POLL_MS} ms`);

  const results = [];
  for (const mode of MODES) {
    log(`mode ${mode}: ${url}`);
    console.log('   trial  mode         ready ms  click→playing  click→audible  hls.latency s  status');
    const trials = [];
    for (let i = 1; i <= TRIALS; i++) {
      if (stopping()) throw new Error('stopping');
      const r = await trial(browser, url, mode, i);
      if (!r.error && r.playerMode !== EXPECT[mode]) r.error = `player mode ${r.playerMode}, not ${EXPECT[mode]}`;
      if (!r.error && r.audibleMs === null) {
        r.error = `${HZ} Hz not present within ${TRIAL_TIMEOUT_MS} ms of the click; best ${JSON.stringify(r.best)}; last ${JSON.stringify(r.last)}`;
      }
      trials.push(r);
      console.log(
        `   ${String(i).padStart(5)}  ${String(r.playerMode ?? '-').padEnd(10)} ${f(r.readyMs, 9)}  ${f(r.playingMs, 13)}  ${f(r.audibleMs, 13)}  ${
          (r.hlsLatencyS == null ? '-' : r.hlsLatencyS.toFixed(2)).padStart(13)}  ${r.error ? `FAIL: ${r.error}` : r.playerStatus}`,
      );
      if (r.error && r.logs?.length) console.log(`          page log: ${r.logs.slice(-5).join(' | ')}`);
      await sleep(PAUSE_BETWEEN_MS);
    }
    const ok = trials.filter((t) => !t.error);
    results.push({
      mode,
      clickToAudible: summary(ok.map((t) => t.audibleMs)),
      clickToPlaying: summary(ok.map((t) => t.playingMs)),
      loadToPlayReady: summary(trials.map((t) => t.readyMs)),
      gotoToPlayVisibleNode: summary(trials.map((t) => t.readyNodeMs)),
      hlsLatencyAtAudibleS: summary(ok.map((t) => t.hlsLatencyS)),
      maxPollGapMs: Math.max(0, ...ok.map((t) => t.maxPollGapMs)),
      failures: trials.length - ok.length,
      trials,
    });
  }
  const loadAfter = loadavg();

  console.log(`\nSummary (ms; nearest-rank p90; audible = ${HZ} Hz peak >= ${lib.PRESENT_MIN_DB} dB and >= floor + ${lib.PRESENT_SNR_DB} dB in window.tribune.outputAnalyser, polled every ${POLL_MS} ms)`);
  console.log('  mode    metric                          n  median     p90     max');
  for (const r of results) {
    for (const [name, s] of [
      ['click → audible', r.clickToAudible],
      ['click → playing event', r.clickToPlaying],
      ['page load → Play ready', r.loadToPlayReady],
      ['goto → Play visible (node)', r.gotoToPlayVisibleNode],
    ]) {
      console.log(`  ${r.mode.padEnd(6)}  ${name.padEnd(28)} ${String(s.n).padStart(3)}  ${f(s.median)}  ${f(s.p90)}  ${f(s.max)}`);
    }
    if (r.failures) console.log(`  ${r.mode.padEnd(6)}  ${r.failures} trial(s) failed (see above)`);
  }
  console.log(`  load average before / after: ${loadBefore} / ${loadAfter}`);

  if (JSON_OUT) {
    mkdirSync(path.dirname(JSON_OUT), { recursive: true });
    writeFileSync(JSON_OUT, JSON.stringify({
      what: 'click on Play in the web app (/spaces/{id}) → 440 Hz present in window.tribune.outputAnalyser',
      chromium: version,
      playwrightCore: pw,
      hlsJs: pkgVersion(path.join(repoRoot, 'tests/browser/node_modules/hls.js/package.json')),
      trialsPerMode: TRIALS,
      pollMs: POLL_MS,
      presentMinDb: lib.PRESENT_MIN_DB,
      presentSnrDb: lib.PRESENT_SNR_DB,
      trialTimeoutMs: TRIAL_TIMEOUT_MS,
      nproc: os.cpus().length,
      loadBefore,
      loadAfter,
      results,
    }, null, 2));
    log(`JSON: ${path.relative(process.cwd(), JSON_OUT) || JSON_OUT}`);
  }
  return results.some((r) => r.failures) ? 1 : 0;
}

guard('audible-webapp', DEADLINE_MS);
let code = 2;
try {
  code = await main();
} catch (e) {
  console.error('audible-webapp: error:', e?.stack ?? e);
} finally {
  await cleanupAll();
}
process.exit(code);
