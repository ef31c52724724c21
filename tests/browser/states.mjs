// The web app state by state, at a desktop (1280×800) and a phone (390×844) size, in headless
// Chromium, with the longest unbroken text the server accepts (a 120-character title, a
// 300-character description, 64-character names, all without a space to break at).
//
// Run through tests/browser/run_states.sh (a private network namespace with only loopback).
//
// Asserted, for every page and state (home; a space scheduled, live, interrupted, ended, each
// as a listener and as its host; the replay):
//   - no page is wider than its viewport (`scrollWidth <= innerWidth`, checked in the page);
//   - the visible controls (`data-control`) are exactly those of the table STATES below;
//   - axe-core finds no serious or critical WCAG 2.1 A/AA violation;
//   - a full-page screenshot goes to target/browser-artifacts/states/{page}-{role}-{size}.png.
// Then the links and the rest of the page's promises:
//   - the operator form: a wrong key is an error (role=alert, aria-invalid), a title of 20
//     family emoji is accepted (limits count what people see), and creating a space lands on
//     it with its links to share;
//   - "Copy link" copies the space's link, which opens it as a listener; "Copy host link"
//     opens it as its host in a fresh browser; a speaker link opens it invited to speak, and
//     "Join stage" puts that guest on stage over WebRTC;
//   - "Add to calendar" downloads an .ics that Python's icalendar parses, with the right start,
//     and whose lines are CRLF-terminated and at most 75 octets;
//   - "Remind me" on a space about to start: the notification fires, and the audio starts by
//     itself when the host starts it;
//   - reactions from someone else float over the stage, and the listener count rises live;
//   - Remove asks for confirmation (cancelled: the speaker stays);
//   - the replay opened at `?t=` starts there.
//
// Environment: TRIBUNE_BIN, CHROMIUM_BIN, DEADLINE_MS (default 240000), ARTIFACTS, VERBOSE.

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  TRIBUNE_BIN, VERBOSE, cleanupAll, guard, here, launchChromium, onCleanup, repoRoot, sleep,
  startServer, stopping, writeToneWav,
} from './lib.mjs';

const env = process.env;
const DEADLINE_MS = Number(env.DEADLINE_MS || 240000);
const ARTIFACTS = path.resolve(process.cwd(), env.ARTIFACTS || path.join(repoRoot, 'target/browser-artifacts/states'));
const ADMIN = 'states-test-operator-key';
const AXE = readFileSync(path.join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
const PYTHON = '/usr/bin/python3'; // Debian's, where python3-icalendar is installed
const LABEL = 'web app states';

// The longest unbroken text the server takes (graphemes: crates/server/src/api/mod.rs).
const unbroken = (word, n) => word.repeat(Math.ceil(n / word.length)).slice(0, n);
const TITLE = unbroken('Supercalifragilisticexpialidocious', 120);
const DESCRIPTION = unbroken('Pneumonoultramicroscopicsilicovolcanoconiosis', 300);
const HOST_NAME = unbroken('Wolfeschlegelsteinhausenbergerdorff', 64);
const GUEST_NAME = unbroken('Venkatanarasimharajuvaripeta', 64);
const FAN_NAME = unbroken('Taumatawhakatangihangakoauauotamatea', 64);

const SIZES = {
  desktop: { viewport: { width: 1280, height: 800 } },
  phone: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
};

// What each state shows: the visible `data-control`s, as a listener and as the host.
const SHARE = ['share-link', 'share-link-url', 'host-link', 'make-invite'];
const STATES = {
  scheduled: {
    listener: ['copy-link', 'remind', 'calendar'],
    host: ['copy-link', 'calendar', 'start', 'end', ...SHARE],
  },
  live: {
    listener: ['copy-link', 'listener-count', 'play', 'volume', 'react', 'name', 'raise-hand'],
    host: ['copy-link', 'listener-count', 'play', 'volume', 'react', 'join-stage', 'end', ...SHARE, 'audience-search'],
  },
  interrupted: {
    listener: ['copy-link', 'listener-count', 'play', 'volume'],
    host: ['copy-link', 'listener-count', 'play', 'volume', 'resume', 'end', ...SHARE, 'audience-search'],
  },
  ended: {
    listener: ['copy-link', 'replay'],
    host: ['copy-link', 'replay'],
  },
  replay: {
    listener: ['copy-link', 'play', 'seek', 'copy-moment', 'download'],
  },
};

const t0 = Date.now();
const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);
const checked = [];
const warnings = [];

mkdirSync(ARTIFACTS, { recursive: true });
for (const f of readdirSync(ARTIFACTS)) if (f.endsWith('.png')) rmSync(path.join(ARTIFACTS, f), { force: true });

// ---------------------------------------------------------------------------------------------
// The API, straight (Node's fetch, loopback)

let base = 'http://unset';
async function call(method, p, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10000) });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: r.status, json, text };
}

async function must(method, p, opts, want = [200, 201, 204]) {
  const r = await call(method, p, opts);
  if (!want.includes(r.status)) throw new Error(`${method} ${p}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

async function createSpace(extra = {}) {
  return must('POST', '/api/spaces', { token: ADMIN, body: { title: TITLE, description: DESCRIPTION, host_name: HOST_NAME, ...extra } });
}

/** `tribune speak` with a tone, as a speaker named `name`; stopped at cleanup. */
function speaker(space, hostToken, name, seconds, hz = 440) {
  return must('POST', `/api/spaces/${space}/tokens`, { token: hostToken, body: { role: 'speaker', name } }).then((t) => {
    const child = spawn(TRIBUNE_BIN, ['speak', '--bind', '127.0.0.1', '--whip', `${base}/api/spaces/${space}/whip`,
      '--token', t.token, '--tone', String(hz), '--seconds', String(seconds)], { stdio: ['ignore', 'ignore', VERBOSE ? 'inherit' : 'ignore'] });
    const exited = new Promise((r) => child.once('exit', r));
    onCleanup(async () => {
      if (child.exitCode === null) child.kill('SIGINT');
      await Promise.race([exited, sleep(3000)]);
    });
    return { child, exited, sub: t.sub };
  });
}

async function until(what, probe, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  let seen;
  for (;;) {
    try {
      seen = await probe();
      if (seen === true) return;
    } catch (e) {
      seen = `error: ${e?.message ?? e}`;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(seen)})`);
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------
// In the page

/** Page function: the viewport, the document's width, and the elements sticking out. */
function pageWidth() {
  const w = window.innerWidth;
  const sw = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > w + 1 && el.checkVisibility?.() !== false) {
      out.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ').join('.')}` : ''} right=${Math.round(r.right)}`);
    }
    if (out.length >= 5) break;
  }
  return { innerWidth: w, scrollWidth: sw, out };
}

/** Page function: the visible `data-control`s, sorted and unique. */
function visibleControls() {
  const seen = new Set();
  for (const el of document.querySelectorAll('[data-control]')) {
    if (el.closest('dialog')) continue;
    const vis = el.checkVisibility ? el.checkVisibility({ checkOpacity: false, checkVisibilityCSS: true }) : !!el.offsetParent;
    if (vis) seen.add(el.dataset.control);
  }
  return [...seen].sort();
}

async function axe(page, what) {
  await page.evaluate(AXE);
  const r = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  const fmt = (v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`;
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of r.violations.filter((x) => !bad.includes(x))) warnings.push(`${what}: axe ${fmt(v)}`);
  if (bad.length) throw new Error(`${what}: accessibility violations:\n    ${bad.map(fmt).join('\n    ')}`);
}

/** Everything asserted of one page in one state, then its screenshot. */
async function examine(page, { name, state, role, size }) {
  const what = `${name} (${role}, ${size})`;
  await page.evaluate(() => document.fonts?.ready);
  await sleep(400); // layout after the last render (the description's "Show more" is measured)
  const w = await page.evaluate(pageWidth);
  if (w.scrollWidth > w.innerWidth) {
    throw new Error(`${what}: the page is ${w.scrollWidth} px wide in a ${w.innerWidth} px viewport; sticking out: ${w.out.join(', ') || '(none found)'}`);
  }
  if (state) {
    const want = [...STATES[state][role]].sort();
    const got = await page.evaluate(visibleControls);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`${what}: visible controls ${JSON.stringify(got)}, want ${JSON.stringify(want)} (missing ${JSON.stringify(want.filter((x) => !got.includes(x)))}, extra ${JSON.stringify(got.filter((x) => !want.includes(x)))})`);
    }
  }
  await axe(page, what);
  const file = path.join(ARTIFACTS, `${name}-${role}-${size}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 10000 });
  checked.push(`${name}/${role}/${size}`);
  if (VERBOSE) log(`  ${what}: ok (${w.scrollWidth}/${w.innerWidth} px)`);
}

async function waitState(page, want, what) {
  await until(`${what}: window.tribune.state ${JSON.stringify(want)}`, async () => {
    const s = await page.evaluate(() => window.tribune?.state ?? null);
    if (!s) return 'no state';
    for (const [k, v] of Object.entries(want)) if (s[k] !== v) return s;
    return true;
  });
}

// ---------------------------------------------------------------------------------------------

let browser;
const contexts = [];
async function context(size, { session } = {}) {
  const ctx = await browser.newContext({ ...SIZES[size], permissions: ['clipboard-read', 'clipboard-write', 'notifications'] });
  contexts.push(ctx);
  // Record notifications (headless shows none): the page's reminder is checked through this.
  await ctx.addInitScript(() => {
    window.__notified = [];
    const N = window.Notification;
    if (!N) return;
    const Wrapped = function (title, opts) {
      window.__notified.push({ title, body: opts?.body });
      return new N(title, opts);
    };
    Object.defineProperty(Wrapped, 'permission', { get: () => N.permission });
    Wrapped.requestPermission = (...a) => N.requestPermission(...a);
    window.Notification = Wrapped;
  });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => warnings.push(`pageerror (${size}): ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) warnings.push(`HTTP ${r.status()} (${size}): ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') warnings.push(`console error (${size}): ${m.text()}`);
    if (VERBOSE) console.error(`[page ${size}] ${m.type()}: ${m.text()}`);
  });
  if (session) await page.goto(`${base}/spaces/${session.space}#token=${session.token}`);
  return { ctx, page };
}

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tribune-states-'));
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const wav = writeToneWav(path.join(tmp, 'mic.wav'), { hz: 550 });
  const serverArgs = { adminKey: ADMIN, prefix: 'tribune-states-data-', extraArgs: ['--advertise', '127.0.0.1'] };

  // A space that will be interrupted: live before a restart.
  let srv = await startServer(serverArgs);
  base = srv.base;
  const interrupted = await createSpace();
  const dataDir = srv.dataDir;
  await srv.srv.stop();
  srv = await startServer({ ...serverArgs, dataDir });
  onCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
  base = srv.base;
  log(`server ${base} (restarted: ${interrupted.id} is interrupted)`);

  const now = Math.floor(Date.now() / 1000);
  const scheduled = await createSpace({ starts_at: now + 3 * 3600 + 120 });
  const soon = await createSpace({ title: 'Starting in a moment', starts_at: now + 12 });
  const live = await createSpace();
  const ended = await createSpace();
  const onLive = await speaker(live.id, live.host_token, GUEST_NAME, 200);
  const onEnded = await speaker(ended.id, ended.host_token, GUEST_NAME, 200, 660);
  // Someone with a long name asks to speak (the host's requests list).
  const fan = await must('POST', `/api/spaces/${live.id}/join`, { body: { name: FAN_NAME } });
  await must('POST', `/api/spaces/${live.id}/stage/raise-hand`, { token: fan.token });
  const connected = async (id, sub) => (await must('GET', `/spaces/${id}/snapshot.json`)).stage.some((p) => p.sub === sub && p.connected);
  await until('the speakers are on stage', async () => (await connected(live.id, onLive.sub)) && (await connected(ended.id, onEnded.sub)), 20000);
  await sleep(5000); // a recording of some seconds, for the replay's ?t= and its chapters
  onEnded.child.kill('SIGINT');
  await onEnded.exited;
  await must('POST', `/api/spaces/${ended.id}/end`, { token: ADMIN });
  log('spaces: scheduled, soon, live (a speaker on), interrupted, ended (with a timeline)');

  browser = await launchChromium(wav);

  // The reminder first: its space starts in a few seconds.
  {
    const { page } = await context('desktop');
    await page.goto(`${base}/spaces/${soon.id}`);
    await waitState(page, { lifecycle: 'scheduled' }, 'soon');
    await page.getByRole('button', { name: 'Remind me', exact: true }).click();
    await waitState(page, { reminder: true }, 'soon: reminder armed');
    await until('soon: a notification at the start time', async () => {
      const n = await page.evaluate(() => window.__notified);
      return n.some((x) => x.title === 'Starting in a moment') || n;
    }, 30000);
    await must('POST', `/api/spaces/${soon.id}/start`, { token: soon.host_token });
    await until('soon: the audio starts by itself once live', async () => {
      const s = await page.evaluate(() => window.tribune.state);
      return (s.lifecycle === 'live' && s.player === 'playing') || s;
    }, 30000);
    log('reminder: notified at the start time; the audio started by itself when the space went live');
  }

  // Every page and state, at both sizes.
  for (const size of Object.keys(SIZES)) {
    const anon = await context(size);
    await anon.page.goto(`${base}/`);
    await waitState(anon.page, { page: 'home' }, `home ${size}`);
    await examine(anon.page, { name: 'home', role: 'visitor', size });
    for (const [state, s] of [['scheduled', scheduled], ['live', live], ['interrupted', interrupted], ['ended', ended]]) {
      const l = await context(size);
      await l.page.goto(`${base}/spaces/${s.id}`);
      await waitState(l.page, { lifecycle: state, role: 'listener' }, `${state} listener ${size}`);
      if (state === 'live') {
        await l.page.locator('#play').click();
        await waitState(l.page, { player: 'playing' }, `live listener ${size} plays`);
      }
      await examine(l.page, { name: state, state, role: 'listener', size });
      const host = await context(size, { session: { space: s.id, token: s.host_token } });
      await waitState(host.page, { lifecycle: state, role: state === 'ended' ? 'listener' : 'host' }, `${state} host ${size}`);
      if (state === 'live') {
        // The audience list, the requests (a 64-character name) are there at once.
        await until(`live host ${size}: the request to speak`, async () => (await host.page.getByRole('button', { name: `Approve ${FAN_NAME}`, exact: true }).count()) === 1);
      }
      await examine(host.page, { name: state, state, role: 'host', size });
      if (state === 'live' && size === 'phone') {
        // The speaker's menu open, on a phone.
        await host.page.getByRole('button', { name: `Options for ${GUEST_NAME}`, exact: true }).click();
        await host.page.getByRole('button', { name: `Mute ${GUEST_NAME}`, exact: true }).waitFor({ timeout: 5000 });
        const w = await host.page.evaluate(pageWidth);
        if (w.scrollWidth > w.innerWidth) throw new Error(`live host phone, menu open: ${w.scrollWidth} px wide in ${w.innerWidth}: ${w.out.join(', ')}`);
        await host.page.screenshot({ path: path.join(ARTIFACTS, 'live-host-menu-phone.png'), fullPage: true });
      }
      await host.ctx.close();
      await l.ctx.close();
    }
    const r = await context(size);
    await r.page.goto(`${base}/spaces/${ended.id}/replay`);
    await waitState(r.page, { page: 'replay' }, `replay ${size}`);
    await until(`replay ${size}: chapters`, async () => (await r.page.locator('.chapters li[data-start]').count()) >= 1);
    await examine(r.page, { name: 'replay', state: 'replay', role: 'listener', size });
    await r.ctx.close();
    await anon.ctx.close();
  }
  log(`states × controls, widths, axe, screenshots: ${checked.length} pages`);

  // Links: copy link (listener), host link (host), speaker link (guest on stage).
  {
    const l = await context('desktop');
    await l.page.goto(`${base}/spaces/${live.id}`);
    await waitState(l.page, { lifecycle: 'live' }, 'links: listener');
    await l.page.getByRole('button', { name: 'Copy link to this space', exact: true }).click();
    const copied = await l.page.evaluate(() => navigator.clipboard.readText());
    if (copied !== `${base}/spaces/${live.id}`) throw new Error(`"Copy link" copied ${JSON.stringify(copied)}`);
    const fresh = await context('phone');
    await fresh.page.goto(copied);
    await waitState(fresh.page, { lifecycle: 'live', role: 'listener', tokenRole: null }, 'the copied link opens as a listener');

    // Someone else's reactions float over the stage; the count rises as beacons arrive.
    await l.page.locator('#play').click();
    await waitState(l.page, { player: 'playing' }, 'links: listener plays');
    const count0 = Number((await l.page.locator('#listener-count').textContent()).replace(/\D/g, ''));
    for (let i = 0; i < 5; i++) {
      await must('POST', `/api/spaces/${live.id}/beacon`, { body: { viewer: `${(0x80000000 + i).toString(16)}${'0'.repeat(24)}` } });
    }
    await must('POST', `/api/spaces/${live.id}/reactions`, { token: fan.token, body: { counts: { '🔥': 3 } } });
    await until('reactions float by', async () => (await l.page.evaluate(() => window.tribune.floated || 0)) >= 1);
    await until(`the listener count rises above ${count0}`, async () => Number((await l.page.locator('#listener-count').textContent()).replace(/\D/g, '')) >= count0 + 5);
    log('copy link opens as a listener; reactions floated; the count rose live');

    const host = await context('desktop', { session: { space: live.id, token: live.host_token } });
    await waitState(host.page, { role: 'host' }, 'links: host');
    await host.page.locator('[data-control="host-link"]').click();
    const hostLink = await host.page.evaluate(() => navigator.clipboard.readText());
    if (!hostLink.startsWith(`${base}/spaces/${live.id}#token=`)) throw new Error(`"Copy host link" copied ${JSON.stringify(hostLink)}`);
    const other = await context('phone');
    await other.page.goto(hostLink);
    await waitState(other.page, { role: 'host' }, 'the host link opens as the host');
    if (await other.page.evaluate(() => location.hash)) throw new Error('the host link left its token in the address bar');

    // Remove asks first: cancelled, the speaker stays.
    await host.page.getByRole('button', { name: `Options for ${GUEST_NAME}`, exact: true }).click();
    await host.page.getByRole('button', { name: `Remove ${GUEST_NAME}`, exact: true }).click();
    const dialog = host.page.getByRole('dialog');
    await dialog.waitFor({ timeout: 5000 });
    await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
    await sleep(1000);
    const still = (await must('GET', `/spaces/${live.id}/snapshot.json`)).stage.some((p) => p.sub === onLive.sub);
    if (!still) throw new Error('Remove, cancelled, removed the speaker anyway');

    await host.page.getByLabel('Guest\'s name', { exact: true }).fill('Invited Ivy');
    await host.page.getByRole('button', { name: 'Create speaker link', exact: true }).click();
    const input = host.page.getByLabel('Speaker link for Invited Ivy', { exact: true });
    await input.waitFor({ timeout: 5000 });
    const speakerLink = await input.inputValue();
    const guest = await context('desktop');
    await guest.page.goto(speakerLink);
    await waitState(guest.page, { lifecycle: 'live', tokenRole: 'speaker' }, 'the speaker link opens invited to speak');
    await guest.page.getByRole('button', { name: 'Join stage', exact: true }).click();
    await waitState(guest.page, { role: 'speaker', onStage: true, connected: true }, 'the invited guest is on stage');
    await examine(guest.page, { name: 'live-speaker', role: 'guest', size: 'desktop' });
    log('host link opens as the host; Remove asks first; a speaker link puts its guest on stage');
  }

  // The operator form: a wrong key, the emoji title, the links after creating.
  {
    const { page } = await context('phone');
    await page.goto(`${base}/`);
    await page.getByLabel('Operator key', { exact: true }).fill('not-the-key');
    await page.getByLabel('Title', { exact: true }).fill('👨‍👩‍👧‍👦'.repeat(20));
    await page.getByRole('button', { name: 'Create space', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'That is not the operator key.' }).waitFor({ timeout: 5000 });
    if ((await page.getByLabel('Operator key', { exact: true }).getAttribute('aria-invalid')) !== 'true') throw new Error('a wrong key is not marked invalid');
    await page.screenshot({ path: path.join(ARTIFACTS, 'home-wrong-key-phone.png'), fullPage: true });
    await page.getByLabel('Operator key', { exact: true }).fill(ADMIN);
    await page.getByRole('button', { name: 'Create space', exact: true }).click();
    await page.waitForURL(/\/spaces\/[^/?#]+$/, { timeout: 10000 });
    await waitState(page, { role: 'host', lifecycle: 'live' }, 'created');
    await page.getByText('Your space is ready.').waitFor({ timeout: 5000 });
    const h1 = await page.locator('h1').textContent();
    if (h1 !== '👨‍👩‍👧‍👦'.repeat(20)) throw new Error(`the emoji title came back as ${JSON.stringify(h1)}`);
    await examine(page, { name: 'created', role: 'host', size: 'phone' });
    log('operator form: wrong key shown as an error; 20 family emoji accepted; created with its links');
  }

  // Add to calendar: the download parses, with the right start.
  {
    const { page } = await context('desktop');
    await page.goto(`${base}/spaces/${scheduled.id}`);
    await waitState(page, { lifecycle: 'scheduled' }, 'calendar');
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('[data-control="calendar"]').click()]);
    const file = path.join(tmp, 'space.ics');
    await download.saveAs(file);
    const raw = readFileSync(file);
    const text = raw.toString('utf8');
    if (!download.suggestedFilename().endsWith('.ics')) throw new Error(`download named ${download.suggestedFilename()}`);
    const lines = text.split('\r\n');
    if (lines.pop() !== '') throw new Error('the .ics does not end with CRLF');
    for (const l of lines) {
      if (Buffer.byteLength(l) > 75) throw new Error(`.ics line of ${Buffer.byteLength(l)} octets: ${l}`);
      if (l.includes('\n') || l.includes('\r')) throw new Error(`.ics bare line break in ${JSON.stringify(l)}`);
    }
    const out = execFileSync(PYTHON, ['-c', `
import sys, icalendar
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
ev = [c for c in cal.walk() if c.name == 'VEVENT']
assert len(ev) == 1, len(ev)
e = ev[0]
print(int(e.decoded('DTSTART').timestamp()), int(e.decoded('DTEND').timestamp()))
print(str(e.get('SUMMARY')))
print(str(e.get('URL')))
`, file], { encoding: 'utf8' }).split('\n');
    const [start, end] = out[0].split(' ').map(Number);
    if (start !== scheduled.starts_at || end !== scheduled.starts_at + 3600) throw new Error(`.ics start ${start} end ${end}, want ${scheduled.starts_at}`);
    if (out[1] !== TITLE) throw new Error(`.ics SUMMARY ${JSON.stringify(out[1])}`);
    if (out[2] !== `${base}/spaces/${scheduled.id}`) throw new Error(`.ics URL ${JSON.stringify(out[2])}`);
    log('Add to calendar: icalendar parses it, start and end right, lines folded at 75 octets');
  }

  // The replay at a moment.
  {
    const { page } = await context('desktop');
    await page.goto(`${base}/spaces/${ended.id}/replay?t=0m2s`);
    await waitState(page, { page: 'replay' }, 'replay ?t');
    const start = await page.evaluate(() => window.tribune.replay.start);
    if (start !== 2) throw new Error(`?t=0m2s read as ${start}`);
    await page.locator('#play').click();
    await until('the replay plays from 2 s', async () => {
      const t = await page.evaluate(() => window.tribune.replay.audio.currentTime);
      return (t >= 2 && t < 6) || t;
    }, 10000);
    log('the replay opened at ?t= plays from there');
  }
}

let code = 0;
guard(LABEL, DEADLINE_MS);
try {
  await main();
  log(`${LABEL}: OK (${checked.length} pages checked)`);
} catch (e) {
  if (stopping()) await new Promise(() => {});
  code = 1;
  console.error(`${LABEL}: FAIL: ${e?.message ?? e}`);
  if (VERBOSE && e?.stack) console.error(e.stack);
}
if (warnings.length) console.error(`${LABEL}: notes:\n  ${[...new Set(warnings)].slice(0, 40).join('\n  ')}`);
console.log(`screenshots: ${ARTIFACTS}`);
for (const c of contexts) await c.close().catch(() => {});
await cleanupAll();
process.exit(code);
