// End to end: tribune's web app in three real browsers (host, guest, listener).
//
// Run through tests/browser/run_webapp.sh, which puts this script, the server and the browsers
// in a private network namespace (only loopback), so WebRTC cannot leave the machine.
//
// Starts `tribune serve` on loopback, writes three fake microphone files (440 Hz for the host,
// 660 Hz for the guest, silence for the listener: 48 kHz mono 16-bit, 10 s, -12 dBFS; Chromium
// loops them) and launches one headless Chromium process per participant with the fake-device
// flags (the fake microphone file is per process). A preflight page checks each process hears
// its own file. Then the scenario, each step asserted and screenshotted (every participant page)
// into target/browser-artifacts/webapp/NN-step-who.png:
//   1. host: `/` form (Operator key, Title, Your name) → "Create space" → /spaces/{id}, live;
//      "Join stage" → Hosta connected in the Stage list;
//   2. guest: "Your name" Guesto, "Raise hand"; host "Approve Guesto"; guest "Join stage" →
//      connected; mix-minus: the guest's stageAnalyser hears 440 not 660, the host's 660 not 440;
//   3. listener: "Play" → outputAnalyser hears 440 and 660; Stage shows Hosta and Guesto;
//      #listener-count >= 1; "React 👏" → the host's [data-emoji="👏"] count >= 1;
//   4. the listener's browser goes offline until its audio stops, then online: the player
//      reconnects by itself and both tones are back;
//   5. host "Options for Guesto", "Mute Guesto" → the listener loses 660, keeps 440; Guesto
//      data-muted="true";
//   6. host "End space", "End for everyone" in the dialog → listener #lifecycle ended; /spaces/{id}/replay
//      Timeline names Hosta and Guesto; "Play" → outputAnalyser hears 440.
// Tone thresholds: see lib.mjs (present = peak >= -70 dB and >= floor + 20 dB).
//
// The three participants reach the server three ways, so each path is exercised by a real
// browser: the host over plain HTTP on 127.0.0.1 (loopback is a secure context); the guest over
// HTTPS served by tribune itself (--tls-listen, rustls) at https://tribune.test; the listener, on
// a phone-sized touch viewport, over HTTPS through nginx terminating TLS with
// deploy/nginx/tls-proxy.conf at https://edge.test (tribune trusts it for X-Forwarded-For). The
// names resolve to 127.0.0.1 (--host-resolver-rules) and the certificate is a self-signed one
// made here with openssl; both HTTPS pages must be secure contexts (the guest's microphone
// depends on it). The guest raises its hand with the keyboard only (type the name, Tab, Enter),
// and axe-core checks the home, host, listener and replay pages (WCAG 2.1 A/AA rules): any
// serious or critical violation fails the run.
// Everything started is stopped on every path; the run is bounded by DEADLINE_MS.
//
// Environment:
//   TRIBUNE_BIN   tribune binary (default target/debug/tribune at the repo root)
//   CHROMIUM_BIN  default /usr/bin/chromium
//   DEADLINE_MS   hard limit for the whole run (default 150000)
//   ARTIFACTS     screenshot directory (default target/browser-artifacts/webapp at the repo root)
//   VERBOSE=1     echo tribune's stderr and the pages' consoles

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import {
  CHROMIUM_BIN,
  TRIBUNE_BIN,
  VERBOSE,
  cleanupAll,
  fmtSample,
  guard,
  isPresent,
  launchChromium,
  measureTones,
  onCleanup,
  here,
  repoRoot,
  sleep,
  startChild,
  startPageServer,
  startServer,
  stopping,
  waitTone,
  withTimeout,
  writeToneWav,
} from './lib.mjs';

const env = process.env;
const DEADLINE_MS = Number(env.DEADLINE_MS || 150000);
const ARTIFACTS = path.resolve(process.cwd(), env.ARTIFACTS || path.join(repoRoot, 'target/browser-artifacts/webapp'));
const ADMIN_KEY = 'webapp-test-operator-key';
const TITLE = 'Browser show';
const HOST = 'Hosta';
const GUEST = 'Guesto';
const LABEL = 'webapp browser';

const t0 = Date.now();
const elapsed = () => ((Date.now() - t0) / 1000).toFixed(1);
const log = (s) => console.log(`[${elapsed()} s] ${s}`);

// The participants: their browser process, page and page logs.
const people = {
  host: { wavHz: 440 },
  guest: { wavHz: 660 },
  listener: { wavHz: 0, phone: true },
};
const NGINX_BIN = process.env.NGINX_BIN || '/usr/sbin/nginx';
const AXE = readFileSync(path.join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
const warnings = []; // contract details outside the scenario's assertions
const passed = [];
let srvRef = null;
let baseUrl = 'http://unset';

// ---------------------------------------------------------------------------------------------
// Screenshots

mkdirSync(ARTIFACTS, { recursive: true });
for (const f of readdirSync(ARTIFACTS)) if (f.endsWith('.png')) rmSync(path.join(ARTIFACTS, f), { force: true });

async function shots(nn, step) {
  const out = [];
  for (const [who, p] of Object.entries(people)) {
    // Only pages of the app (a participant not yet in it is on the preflight page).
    if (!p.page || p.page.isClosed() || (nn > 0 && !p.page.url().startsWith(p.base || baseUrl))) continue;
    const file = path.join(ARTIFACTS, `${String(nn).padStart(2, '0')}-${step}-${who}.png`);
    try {
      // A passing announcement would sit over the page in a full-page shot.
      await p.page.evaluate(() => document.getElementById('toast')?.classList.remove('show')).catch(() => {});
      await p.page.screenshot({ path: file, fullPage: true, timeout: 5000 });
      out.push(path.basename(file));
    } catch (e) {
      console.error(`screenshot ${file}: ${e?.message ?? e}`);
    }
  }
  if (VERBOSE) log(`screenshots: ${out.join(' ')}`);
}

// ---------------------------------------------------------------------------------------------
// What a page shows: for failure messages.

function pageSummary() {
  const txt = (e) => (e?.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 100);
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const name = (e) => e.getAttribute('aria-label') || txt(e) || e.value || e.title || '?';
  const buttons = [...document.querySelectorAll('button, [role=button], input[type=submit], input[type=button]')]
    .filter(visible)
    .map((b) => name(b) + (b.disabled ? ' (disabled)' : ''));
  const inputs = [...document.querySelectorAll('input:not([type=submit]):not([type=button]), textarea, select')]
    .filter(visible)
    .map((i) => {
      const l = (i.labels && i.labels[0] && txt(i.labels[0])) || i.getAttribute('aria-label') || i.name || i.id || '?';
      return `${l} [${i.type || i.tagName.toLowerCase()}]`;
    });
  const lists = [...document.querySelectorAll('[aria-label]')]
    .filter((e) => e.tagName === 'UL' || e.tagName === 'OL' || e.getAttribute('role') === 'list')
    .map((e) => {
      const items = [...e.querySelectorAll('li, [role=listitem]')].map((li) => {
        const d = Object.entries(li.dataset).map(([k, v]) => `${k}=${v}`).join(',');
        return txt(li).slice(0, 60) + (d ? ` {${d}}` : '');
      });
      return `${e.tagName.toLowerCase()}[aria-label="${e.getAttribute('aria-label')}"]: ${items.length ? items.join(' | ') : '(empty)'}`;
    });
  let state;
  try {
    state = JSON.stringify(window.tribune && window.tribune.state);
  } catch (e) {
    state = String(e);
  }
  return {
    path: location.pathname + location.search,
    title: document.title,
    h1: txt(document.querySelector('h1')),
    lifecycle: txt(document.querySelector('#lifecycle')),
    listenerCount: txt(document.querySelector('#listener-count')),
    tribune: typeof window.tribune,
    state,
    buttons,
    inputs,
    lists,
    text: buttons.length || inputs.length ? undefined : txt(document.body).slice(0, 300),
  };
}

async function describe(who) {
  const p = people[who];
  if (!p.page || p.page.isClosed()) return `  ${who}: no page`;
  let s;
  try {
    s = await withTimeout(p.page.evaluate(pageSummary), 3000, 'page summary');
  } catch (e) {
    return `  ${who} page (${p.page.url()}): could not read it: ${e?.message ?? e}`;
  }
  const lines = [`  ${who} page ${s.path} — title "${s.title}", h1 "${s.h1}", #lifecycle "${s.lifecycle}", #listener-count "${s.listenerCount}", window.tribune ${s.tribune}, state ${s.state}`];
  lines.push(`    buttons: ${s.buttons.length ? s.buttons.map((b) => JSON.stringify(b)).join(', ') : '(none)'}`);
  lines.push(`    inputs: ${s.inputs.length ? s.inputs.join(', ') : '(none)'}`);
  for (const l of s.lists) lines.push(`    ${l}`);
  if (s.text !== undefined) lines.push(`    text: ${JSON.stringify(s.text)}`);
  return lines.join('\n');
}

class StepError extends Error {}

/** Fails with `msg` and what `whos`' pages show. */
async function fail(msg, ...whos) {
  const parts = [msg];
  for (const w of whos) parts.push(await describe(w));
  throw new StepError(parts.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// Waiting and acting

/** Polls `probe` (async → { ok, seen }) every 250 ms until ok; fails after `timeoutMs`. */
async function waitUntil(desc, probe, timeoutMs, ...whos) {
  const start = Date.now();
  let last = { ok: false, seen: 'nothing yet' };
  for (;;) {
    try {
      last = await probe();
    } catch (e) {
      last = { ok: false, seen: `error: ${e?.message ?? e}` };
    }
    if (last.ok) return last;
    if (Date.now() - start > timeoutMs) await fail(`${desc}: not after ${timeoutMs} ms; seen: ${last.seen}`, ...whos);
    await sleep(250);
  }
}

/** Waits for the button named exactly `name` (in `scope`, default the page) and clicks it. */
async function click(who, name, { scope, timeoutMs = 10000, scopeDesc } = {}) {
  const page = people[who].page;
  const loc = (scope || page).getByRole('button', { name, exact: true });
  try {
    await loc.first().waitFor({ state: 'visible', timeout: timeoutMs });
  } catch {
    await fail(`${who}: no visible button "${name}"${scopeDesc ? ` in ${scopeDesc}` : ''} within ${timeoutMs} ms`, who);
  }
  const n = await loc.count();
  if (n > 1) warnings.push(`${who}: ${n} buttons named "${name}" (clicked the first)`);
  try {
    await loc.first().click({ timeout: 5000 });
  } catch (e) {
    await fail(`${who}: clicking "${name}" failed: ${e?.message?.split('\n')[0]}`, who);
  }
  if (VERBOSE) log(`${who} clicked "${name}"`);
}

/** Opens `url` in `who`'s page; fails unless it answers 200 with HTML. */
async function open(who, url) {
  let res = null;
  let err = null;
  try {
    res = await people[who].page.goto(url, { timeout: 10000 });
  } catch (e) {
    err = e?.message?.split('\n')[0];
  }
  const ctype = res?.headers()['content-type'] || '';
  if (res && res.ok() && ctype.startsWith('text/html')) return;
  // What the server says, straight (the browser shows its own error page for a bare 404).
  let direct = '';
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
    const b = (await r.text()).replace(/\s+/g, ' ').slice(0, 160);
    direct = `GET ${new URL(url).pathname} → ${r.status} ${r.headers.get('content-type') || '(no content-type)'} ${JSON.stringify(b)}`;
  } catch (e) {
    direct = `direct fetch failed: ${e?.message ?? e}`;
  }
  await fail(`${who}: the web app page ${new URL(url).pathname} is not served (${err || `status ${res?.status()}, ${ctype}`}); ${direct}`);
}

/** Fills the input labelled exactly `label`. */
async function fill(who, label, value, timeoutMs = 10000) {
  const loc = people[who].page.getByLabel(label, { exact: true });
  try {
    await loc.first().waitFor({ state: 'visible', timeout: timeoutMs });
  } catch {
    await fail(`${who}: no visible input labelled "${label}" within ${timeoutMs} ms`, who);
  }
  await loc.first().fill(value, { timeout: 5000 });
}

async function text(who, selector) {
  return people[who].page.evaluate((s) => {
    const e = document.querySelector(s);
    return e ? e.textContent.replace(/\s+/g, ' ').trim() : null;
  }, selector);
}

async function waitText(who, selector, want, timeoutMs) {
  await waitUntil(
    `${who}: ${selector} text "${want}"`,
    async () => {
      const t = await text(who, selector);
      return { ok: t === want, seen: t === null ? `no ${selector} element` : JSON.stringify(t) };
    },
    timeoutMs,
    who,
  );
}

/** The Stage list as the page shows it: [{ sub, connected, muted, speaking, text }]. */
async function stageRows(who) {
  return people[who].page.evaluate(() => {
    const list = document.querySelector('[aria-label="Stage"]');
    if (!list) return null;
    const lis = [...list.querySelectorAll('li')];
    const withSub = lis.filter((li) => li.hasAttribute('data-sub'));
    return {
      tag: list.tagName.toLowerCase(),
      rows: (withSub.length ? withSub : lis).map((li) => ({
        sub: li.getAttribute('data-sub'),
        connected: li.getAttribute('data-connected'),
        muted: li.getAttribute('data-muted'),
        speaking: li.getAttribute('data-speaking'),
        text: li.textContent.replace(/\s+/g, ' ').trim().slice(0, 80),
      })),
    };
  });
}

const fmtRows = (s) =>
  !s
    ? 'no [aria-label="Stage"] element'
    : `${s.tag}[aria-label=Stage] ` +
      (s.rows.length
        ? s.rows.map((r) => `"${r.text}" {sub=${r.sub},connected=${r.connected},muted=${r.muted},speaking=${r.speaking}}`).join(' | ')
        : '(no li)');

/** Waits until the Stage list of `who` has a data-sub row naming `name` with `attrs`. */
async function waitStageRow(who, name, attrs, timeoutMs) {
  const want = Object.entries(attrs).map(([k, v]) => `data-${k}="${v}"`).join(' ');
  await waitUntil(
    `${who}: Stage list item for ${name}${want ? ' with ' + want : ''}`,
    async () => {
      const s = await stageRows(who);
      const row = s?.rows.find((r) => r.sub !== null && r.text.includes(name));
      return { ok: !!row && Object.entries(attrs).every(([k, v]) => row[k] === v), seen: fmtRows(s) };
    },
    timeoutMs,
    who,
  );
}

async function tone(who, which, hz, want, timeoutMs) {
  const label = `${who}: ${which}`;
  try {
    const t = Date.now();
    const s = await waitTone(people[who].page, { which, hz, want, timeoutMs, label });
    log(`  ${who} ${which}: ${hz} Hz ${want} after ${((Date.now() - t) / 1000).toFixed(1)} s: ${fmtSample(s)}`);
    return s;
  } catch (e) {
    await fail(e.message, who);
  }
}

/** The running count in `who`'s [data-emoji=emoji] (data-count, else the largest number in its text). */
async function reactionCount(who, emoji) {
  return people[who].page.evaluate((emoji) => {
    const e = document.querySelector(`[data-emoji="${emoji}"]`);
    if (!e) return { n: null, seen: `no [data-emoji="${emoji}"] element` };
    const t = e.textContent.replace(/\s+/g, ' ').trim();
    const nums = [e.getAttribute('data-count') || '', t].join(' ').match(/\d+/g) || [];
    return { n: nums.length ? Math.max(...nums.map(Number)) : null, seen: `${e.tagName.toLowerCase()} text ${JSON.stringify(t)}` };
  }, emoji);
}

async function checkContract(who, what, probe) {
  try {
    const ok = await probe();
    if (!ok) warnings.push(`${who}: ${what}`);
  } catch (e) {
    warnings.push(`${who}: ${what} (${e?.message?.split('\n')[0]})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Setup

const PREFLIGHT_PAGE = `<!doctype html><meta charset="utf-8"><title>tribune test preflight</title>
<h1>preflight</h1><p id="out">…</p>
<script>
window.preflight = async function () {
  const out = {};
  // ICE candidates gathered before any media permission: raw loopback addresses unless
  // WebRtcHideLocalIpsWithMdns is still on (then they are *.local names).
  const pc = new RTCPeerConnection();
  pc.createDataChannel('x');
  await pc.setLocalDescription(await pc.createOffer());
  await Promise.race([
    new Promise((r) => { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); }),
    new Promise((r) => setTimeout(r, 3000)),
  ]);
  out.candidates = (pc.localDescription.sdp.match(/^a=candidate:.*$/gm) || []).map((l) => l.split(' ').slice(4, 8).join(' '));
  pc.close();
  const raw = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  const processed = await navigator.mediaDevices.getUserMedia({ audio: true });
  const ctx = new AudioContext();
  if (ctx.state !== 'running') await ctx.resume();
  const analyse = (stream) => {
    const a = ctx.createAnalyser();
    a.fftSize = 8192;
    a.smoothingTimeConstant = 0.5;
    ctx.createMediaStreamSource(stream).connect(a);
    return a;
  };
  window.tribune = { outputAnalyser: analyse(raw), stageAnalyser: analyse(processed) };
  out.track = raw.getAudioTracks()[0].label;
  out.ctx = ctx.state;
  document.getElementById('out').textContent = JSON.stringify(out);
  return out;
};
</script>`;

async function preflight(pageUrl) {
  await Promise.all(
    Object.entries(people).map(async ([who, p]) => {
      await p.page.goto(pageUrl, { timeout: 10000 });
      const r = await withTimeout(p.page.evaluate(() => window.preflight()), 10000, `${who} preflight`);
      p.preflight = r;
      const other = p.wavHz === 440 ? 660 : 440;
      if (p.wavHz) {
        await waitTone(p.page, { which: 'outputAnalyser', hz: p.wavHz, want: 'present', timeoutMs: 8000, label: `${who} fake microphone` });
        await waitTone(p.page, { which: 'outputAnalyser', hz: other, want: 'absent', timeoutMs: 4000, label: `${who} fake microphone` });
      } else {
        for (const hz of [440, 660]) await waitTone(p.page, { which: 'outputAnalyser', hz, want: 'absent', timeoutMs: 4000, label: `${who} fake microphone` });
      }
      // With the browser's default audio processing (echo cancellation, noise suppression, AGC):
      // informative only — a page using getUserMedia({audio: true}) gets this.
      await sleep(600);
      const s = await measureTones(p.page, 'stageAnalyser');
      p.processed = s;
      if (p.wavHz && !isPresent(s, p.wavHz)) {
        warnings.push(`${who}: with default getUserMedia processing the ${p.wavHz} Hz fake microphone reads ${fmtSample(s)}`);
      }
      if (r.candidates.some((c) => c.includes('.local'))) warnings.push(`${who}: mDNS ICE candidates despite WebRtcHideLocalIpsWithMdns disabled: ${r.candidates.join('; ')}`);
      if (VERBOSE) log(`${who} preflight: ${JSON.stringify(r)}; with default processing: ${fmtSample(s)}`);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// The scenario

/** The page must be an HTTPS secure context (where getUserMedia is allowed off localhost). */
async function secure(who) {
  const s = await people[who].page.evaluate(() => ({ secure: window.isSecureContext, origin: location.origin }));
  if (!s.secure || !s.origin.startsWith('https://')) await fail(`${who}: ${s.origin} is not a secure HTTPS context`, who);
  log(`  ${who}: ${s.origin} is a secure context`);
}

/** axe-core on the page as it is: serious or critical WCAG 2.1 A/AA violations fail the run. */
async function accessible(who, what) {
  const page = people[who].page;
  await page.evaluate(AXE); // through the DevTools protocol: the page's CSP does not apply
  const r = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  const fmt = (v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`;
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of r.violations.filter((x) => !bad.includes(x))) warnings.push(`${who} ${what}: axe ${fmt(v)}`);
  if (bad.length) await fail(`${who}: ${what} has accessibility violations:\n    ${bad.map(fmt).join('\n    ')}`, who);
  log(`  ${who}: ${what}: axe found no serious or critical violation (${r.passes.length} rules passed)`);
}

/** nginx terminating TLS in front of tribune (deploy/nginx/tls-proxy.conf); returns its port. */
async function startNginx(tmp, origin, cert, key) {
  if (!existsSync(NGINX_BIN)) throw new Error(`no nginx at ${NGINX_BIN} (apt-get install -y nginx)`);
  const port = await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
  const prefix = path.join(tmp, 'nginx');
  mkdirSync(prefix, { recursive: true });
  const conf = readFileSync(path.join(repoRoot, 'deploy/nginx/tls-proxy.conf'), 'utf8')
    .replaceAll('@USER@', process.getuid?.() === 0 ? 'root' : os.userInfo().username)
    .replaceAll('@PORT@', `127.0.0.1:${port}`)
    .replaceAll('@ORIGIN@', origin)
    .replaceAll('@CERT@', cert)
    .replaceAll('@KEY@', key)
    .replaceAll('@PREFIX@', prefix);
  const confPath = path.join(prefix, 'nginx.conf');
  writeFileSync(confPath, conf);
  const ng = startChild('nginx', ['-c', confPath, '-p', prefix, '-e', path.join(prefix, 'error.log'), '-g', 'daemon off;'], { bin: NGINX_BIN });
  const up = async () => new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
  for (let i = 0; i < 50; i++) {
    if (ng.exited()) throw new Error(`nginx exited: ${ng.stderrTail()} ${readFileSync(path.join(prefix, 'error.log'), 'utf8').slice(-500)}`);
    if (await up()) return port;
    await sleep(100);
  }
  throw new Error('nginx did not answer /healthz over TLS in 5 s');
}

let space = null;
let currentStep = 0;

async function step(nn, slug, f) {
  currentStep = nn;
  const s0 = Date.now();
  await f();
  passed.push(`${nn} ${slug}`);
  log(`step ${nn} ${slug}: ok (${((Date.now() - s0) / 1000).toFixed(1)} s)`);
  await shots(nn, slug);
}

async function main() {
  if (!existsSync(TRIBUNE_BIN)) throw new Error(`no tribune binary at ${TRIBUNE_BIN} (set TRIBUNE_BIN)`);
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`no chromium at ${CHROMIUM_BIN} (apt-get install -y chromium)`);

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tribune-webapp-'));
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  for (const p of Object.values(people)) {
    p.wav = writeToneWav(path.join(tmp, p.wavHz ? `${p.wavHz}.wav` : 'silent.wav'), { hz: p.wavHz });
  }

  // A self-signed certificate for both HTTPS names.
  const cert = path.join(tmp, 'cert.pem');
  const key = path.join(tmp, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=tribune.test',
    '-addext', 'subjectAltName=DNS:tribune.test,DNS:edge.test,IP:127.0.0.1'], { stdio: 'ignore' });
  const { base, https: tlsBase, srv } = await startServer({
    adminKey: ADMIN_KEY,
    prefix: 'tribune-webapp-data-',
    extraArgs: ['--advertise', '127.0.0.1', '--tls-listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key,
      '--trusted-proxy', '127.0.0.1'],
  });
  srvRef = srv;
  baseUrl = base;
  const edgePort = await startNginx(tmp, new URL(base).host, cert, key);
  people.host.base = base;
  people.guest.base = `https://tribune.test:${new URL(tlsBase).port}`;
  people.listener.base = `https://edge.test:${edgePort}`;
  log(`server ${base}, ${tlsBase} (tribune's TLS, as ${people.guest.base}); nginx TLS proxy ${people.listener.base}`);

  // One Chromium process per participant (each with its own fake microphone file).
  await Promise.all(
    Object.entries(people).map(async ([who, p]) => {
      p.browser = await launchChromium(p.wav, {
        extraArgs: ['--host-resolver-rules=MAP tribune.test 127.0.0.1, MAP edge.test 127.0.0.1'],
      });
      const phone = p.phone ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true } : {};
      // The certificate is self-signed: trusted for this test (the pages stay secure contexts).
      p.page = await (await p.browser.newContext({ ignoreHTTPSErrors: true, ...phone })).newPage();
      p.console = [];
      const note = (line) => {
        const s = line.replace(/token=[\w.-]+/g, 'token=…'); // keep tokens out of logs
        p.console.push(s);
        if (p.console.length > 40) p.console.shift();
        if (VERBOSE) console.error(`[${who}] ${s}`);
      };
      p.page.on('console', (m) => note(`${m.type()}: ${m.text()}`));
      p.page.on('pageerror', (e) => note(`pageerror: ${e.message}`));
      const mine = p.base;
      p.page.on('requestfailed', (r) => {
        if (r.url().startsWith(mine)) note(`request failed: ${r.method()} ${r.url().slice(mine.length)} ${r.failure()?.errorText}`);
      });
      p.page.on('response', (r) => {
        if (r.url().startsWith(mine) && r.status() >= 400) {
          r.text()
            .then((b) => note(`HTTP ${r.status()}: ${r.request().method()} ${r.url().slice(mine.length)} ${b.replace(/\s+/g, ' ').slice(0, 200)}`))
            .catch(() => note(`HTTP ${r.status()}: ${r.request().method()} ${r.url().slice(mine.length)}`));
        }
      });
      p.page.on('dialog', (d) => {
        note(`dialog ${d.type()}: ${d.message()} (accepted)`);
        d.accept().catch(() => {});
      });
    }),
  );
  log('3 chromium processes launched');

  const pageUrl = await startPageServer({ '/': { type: 'text/html; charset=utf-8', body: PREFLIGHT_PAGE } });
  await preflight(pageUrl);
  log('preflight: each browser hears its own fake microphone (host 440 Hz, guest 660 Hz, listener silence)');
  await shots(0, 'preflight');

  const host = people.host.page;
  const guest = people.guest.page;
  const listener = people.listener.page;

  await step(1, 'host-live', async () => {
    await open('host', `${base}/`);
    await accessible('host', 'home page');
    await fill('host', 'Operator key', ADMIN_KEY);
    await fill('host', 'Title', TITLE);
    await fill('host', 'Your name', HOST);
    await click('host', 'Create space');
    try {
      await host.waitForURL(/\/spaces\/[^/?#]+$/, { timeout: 10000 });
    } catch {
      await fail(`host: after "Create space" the URL is ${host.url()}, not /spaces/{id}`, 'host');
    }
    space = decodeURIComponent(new URL(host.url()).pathname.split('/')[2]);
    log(`space ${space}`);
    await waitUntil(
      `host: h1 "${TITLE}"`,
      async () => {
        const h = await text('host', 'h1');
        return { ok: h === TITLE, seen: JSON.stringify(h) };
      },
      5000,
      'host',
    );
    await waitText('host', '#lifecycle', 'live', 10000);
    await click('host', 'Join stage');
    await waitStageRow('host', HOST, { connected: 'true' }, 15000);
    await accessible('host', 'space page (host, on stage)');
  });

  await step(2, 'guest-on-stage', async () => {
    const gbase = people.guest.base;
    await open('guest', `${gbase}/spaces/${encodeURIComponent(space)}`);
    await secure('guest');
    // By keyboard only: the name, then Tab to "Raise hand", then Enter.
    await fill('guest', 'Your name', GUEST);
    await guest.getByLabel('Your name', { exact: true }).focus();
    await guest.keyboard.press('Tab');
    const focused = await guest.evaluate(() => document.activeElement?.textContent?.trim());
    if (focused !== 'Raise hand') await fail(`guest: Tab from "Your name" focuses ${JSON.stringify(focused)}, not "Raise hand"`, 'guest');
    await guest.keyboard.press('Enter');
    const requests = host.getByRole('list', { name: 'Requests to speak', exact: true });
    await click('host', `Approve ${GUEST}`, { scope: requests, scopeDesc: 'list "Requests to speak"' });
    await click('guest', 'Join stage');
    await waitStageRow('guest', GUEST, { connected: 'true' }, 15000);
    await waitStageRow('host', GUEST, { connected: 'true' }, 10000);
    // Mix-minus: each speaker hears the other one, not itself.
    await tone('guest', 'stageAnalyser', 440, 'present', 15000);
    await tone('guest', 'stageAnalyser', 660, 'absent', 5000);
    await tone('host', 'stageAnalyser', 660, 'present', 15000);
    await tone('host', 'stageAnalyser', 440, 'absent', 5000);
  });

  await step(3, 'listener-hears', async () => {
    await open('listener', `${people.listener.base}/spaces/${encodeURIComponent(space)}`);
    await secure('listener');
    await click('listener', 'Play');
    await tone('listener', 'outputAnalyser', 440, 'present', 25000);
    await tone('listener', 'outputAnalyser', 660, 'present', 10000);
    await waitStageRow('listener', HOST, {}, 10000);
    await waitStageRow('listener', GUEST, {}, 5000);
    await waitUntil(
      'listener: #listener-count >= 1',
      async () => {
        const t = await text('listener', '#listener-count');
        return { ok: /^\d+$/.test(t ?? '') && Number(t) >= 1, seen: t === null ? 'no #listener-count element' : JSON.stringify(t) };
      },
      10000,
      'listener',
    );
    // Contract details outside the scenario: reported, not asserted.
    await checkContract('listener', 'no button "Pause" after "Play"', () =>
      listener.getByRole('button', { name: 'Pause', exact: true }).isVisible());
    await checkContract('listener', 'no range input labelled "Volume"', async () =>
      (await listener.getByLabel('Volume', { exact: true }).getAttribute('type', { timeout: 2000 })) === 'range');
    for (const e of ['👏', '❤️', '😂', '🔥', '💯']) {
      const b = listener.getByRole('button', { name: `React ${e}`, exact: true, includeHidden: true });
      const n = await b.count();
      if (!n) warnings.push(`listener: no button "React ${e}"`);
      else if (!(await b.first().isVisible())) warnings.push(`listener: button "React ${e}" exists but is not visible (collapsed, e.g. under "More reactions")`);
    }
    await accessible('listener', 'space page (listener, phone)');
    await click('listener', 'React 👏');
    await waitUntil(
      'host: [data-emoji="👏"] count >= 1',
      async () => {
        const r = await reactionCount('host', '👏');
        return { ok: r.n !== null && r.n >= 1, seen: r.seen };
      },
      10000,
      'host',
    );
  });

  await step(4, 'listener-reconnects', async () => {
    // The listener's network goes away long enough to drain its buffer, then comes back: the
    // player must find its way back to the live audio by itself (nobody presses anything).
    const ctx = listener.context();
    await ctx.setOffline(true);
    await tone('listener', 'outputAnalyser', 440, 'absent', 20000);
    await shots(4, 'listener-offline');
    await ctx.setOffline(false);
    await tone('listener', 'outputAnalyser', 440, 'present', 30000);
    await tone('listener', 'outputAnalyser', 660, 'present', 10000);
  });

  await step(5, 'guest-muted', async () => {
    // Moderation is in the speaker's menu on the stage.
    await click('host', `Options for ${GUEST}`);
    await click('host', `Mute ${GUEST}`);
    await tone('listener', 'outputAnalyser', 660, 'absent', 15000);
    await tone('listener', 'outputAnalyser', 440, 'present', 5000);
    if (VERBOSE) {
      for (let i = 0; i < 10; i++) {
        await sleep(500);
        log(`  listener after the mute: ${fmtSample(await measureTones(listener, 'outputAnalyser'))}`);
      }
    }
    await waitStageRow('host', GUEST, { muted: 'true' }, 10000);
    await waitStageRow('listener', GUEST, { muted: 'true' }, 10000);
  });

  await step(6, 'ended-replay', async () => {
    await click('host', 'End space');
    // Confirmed in the page's own dialog.
    await click('host', 'End for everyone', { scope: host.getByRole('dialog'), scopeDesc: 'the confirmation dialog' });
    await waitText('listener', '#lifecycle', 'ended', 15000);
    await open('listener', `${people.listener.base}/spaces/${encodeURIComponent(space)}/replay`);
    await waitUntil(
      `listener: replay h1 contains "${TITLE}"`,
      async () => {
        const h = await text('listener', 'h1');
        return { ok: (h ?? '').includes(TITLE), seen: JSON.stringify(h) };
      },
      10000,
      'listener',
    );
    await waitUntil(
      `listener: Timeline names ${HOST} and ${GUEST}`,
      async () => {
        const t = await listener.evaluate(() => {
          const l = document.querySelector('[aria-label="Timeline"]');
          return l ? { tag: l.tagName.toLowerCase(), items: [...l.querySelectorAll('li')].map((li) => li.textContent.replace(/\s+/g, ' ').trim().slice(0, 80)) } : null;
        });
        if (!t) return { ok: false, seen: 'no [aria-label="Timeline"] element' };
        const all = t.items.join(' | ');
        return { ok: all.includes(HOST) && all.includes(GUEST), seen: `${t.tag}: ${all || '(no li)'}` };
      },
      10000,
      'listener',
    );
    await click('listener', 'Play');
    await tone('listener', 'outputAnalyser', 440, 'present', 20000);
    await accessible('listener', 'replay page');
  });
}

async function failureReport() {
  const out = [];
  for (const [who, p] of Object.entries(people)) {
    if (p.console?.length) out.push(`  ${who} console (last ${p.console.length}):\n    ${p.console.join('\n    ')}`);
  }
  if (srvRef) out.push(`  tribune serve stderr (tail):\n${srvRef.stderrTail().replace(/\x1b\[[0-9;]*m/g, '').split('\n').slice(-25).map((l) => '    ' + l).join('\n')}`);
  return out.join('\n');
}

let code = 0;
guard(LABEL, DEADLINE_MS, async () => {
  console.error(`${LABEL}: at step ${currentStep}; passed: ${passed.join(', ') || 'none'}`);
  await shots(currentStep, 'deadline');
  for (const who of Object.keys(people)) console.error(await describe(who));
  console.error(await failureReport());
  console.error(`screenshots: ${ARTIFACTS}`);
});
try {
  await main();
  log(`${LABEL}: OK (steps ${passed.join(', ')})`);
} catch (e) {
  // After the deadline or a signal, their handler reports, cleans up and exits.
  if (stopping()) await new Promise(() => {});
  code = 1;
  console.error(`${LABEL}: FAIL at step ${currentStep}: ${e?.message ?? e}`);
  if (!(e instanceof StepError) && e?.stack && VERBOSE) console.error(e.stack);
  console.error(`passed: ${passed.join(', ') || 'none'}`);
  await shots(currentStep, 'fail');
  console.error(await failureReport());
}
if (warnings.length) console.error(`${LABEL}: notes:\n  ${warnings.join('\n  ')}`);
console.log(`screenshots: ${ARTIFACTS}`);
await cleanupAll();
process.exit(code);
