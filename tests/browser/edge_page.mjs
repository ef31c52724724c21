// The listener's page through a real edge costs the origin nothing per listener, until they act.
//
// Run through tests/browser/run_edge_page.sh (a private network namespace with only loopback).
// Starts `tribune serve` (the origin), a space whose host speaks a 440 Hz tone with
// `tribune speak`, and both edges of deploy/: nginx (deploy/nginx/edge.conf) and Varnish
// (deploy/varnish/edge.vcl, with `varnishncsa -b` logging what reaches the origin). Then, for
// each edge, a headless Chromium (fake microphone: 660 Hz) opens /spaces/{id} through the edge:
//   1. presses Play and hears 440 Hz (window.tribune.outputAnalyser); the stage shows the host,
//      its speaking indicator turns on (in-band metadata), the listener count rises when
//      anonymous beacons arrive at the origin, and a reaction another client sends shows up;
//   2. meanwhile the origin got, for this page, no join, event-stream, presence or token request
//      (the edge's own log of origin requests, and the origin's counters), and holds no
//      connection for it (no event stream open, no Ogg listener);
//   3. the page raises its hand: now a join and an event stream reach the origin; the host
//      approves (API), the page presses "Join stage" and is connected on the stage over WHIP.
// Everything started is stopped on every path; the run is bounded by DEADLINE_MS.
//
// Environment: TRIBUNE_BIN, CHROMIUM_BIN, DEADLINE_MS (default 240000), VERBOSE=1.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  cleanupAll, guard, launchChromium, onCleanup, repoRoot, sleep, startChild, startServer, waitTone,
  writeToneWav,
} from './lib.mjs';
import { call, freePort, startNginxEdge, startVarnishEdge, until } from './edges.mjs';

const DEADLINE_MS = Number(process.env.DEADLINE_MS || 240000);
const ADMIN = 'edge-page-operator-key';
const log = (...a) => console.log('[edge-page]', ...a);

guard('edge page', DEADLINE_MS);

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

const FORBIDDEN = /\/(join|events|events\/ticket|presence|tokens)(\?|$)/;

async function listenerThroughEdge(edge, ctx) {
  const { origin, space, hostSub, micWav } = ctx;
  log(`${edge.name}: ${edge.base}`);
  const before = {
    joins: await metric(origin, 'tribune_joins_total'),
    presence: await metric(origin, 'tribune_presence_total'),
    requests: edge.originRequests().length,
  };
  const browser = await launchChromium(micWav);
  const page = await browser.newPage();
  page.on('console', (m) => process.env.VERBOSE === '1' && log(`${edge.name} console:`, m.text()));
  await page.goto(`${edge.base}/spaces/${space}`);
  await page.locator('#play').click();
  await waitTone(page, { which: 'outputAnalyser', hz: 440, want: 'present', timeoutMs: 30000, label: `${edge.name} listener hears the host` });
  log(`${edge.name}: hears 440 Hz`);
  const hostItem = page.locator(`.stage li[data-sub="${hostSub}"]`);
  await until(`${edge.name}: the stage shows the host speaking`, async () => (await hostItem.getAttribute('data-speaking', { timeout: 1000 })) === 'true');
  log(`${edge.name}: the host's speaking indicator is on`);

  // Another client: anonymous beacons (the count rises) and a reaction (it shows up).
  const shown = async () => Number(await page.locator('#listener-count').textContent());
  const count0 = await shown();
  for (let i = 0; i < 7; i++) {
    const viewer = `${(0x80000000 + ctx.viewers++).toString(16)}${'0'.repeat(24)}`;
    const r = await call('POST', `${origin}/api/spaces/${space}/beacon`, { body: { viewer } });
    if (r.status !== 204) throw new Error(`beacon: ${r.status} ${r.text}`);
  }
  await until(`${edge.name}: the count rises above ${count0}`, async () => (await shown()) >= count0 + 7);
  log(`${edge.name}: count ${count0} → ${await shown()}`);
  const emoji = ctx.emoji;
  const r = await call('POST', `${origin}/api/spaces/${space}/reactions`, { token: ctx.fanToken, body: { counts: { [emoji]: 2 } } });
  if (r.status !== 204) throw new Error(`reaction: ${r.status} ${r.text}`);
  ctx.reacted += 2;
  await until(`${edge.name}: the page shows the ${emoji} reactions`, async () => {
    const t = await page.locator(`.reaction-totals [data-emoji="${emoji}"] .n`).textContent({ timeout: 1000 });
    return Number(t) >= ctx.reacted;
  });
  log(`${edge.name}: the other client's reaction shows`);

  // What reached the origin for this page: nothing a cache could not answer.
  await sleep(1500); // nginx flushes its log every second
  const mine = edge.originRequests().slice(before.requests);
  const bad = mine.filter((l) => FORBIDDEN.test(l));
  if (bad.length) throw new Error(`${edge.name}: the listener page reached the origin with ${JSON.stringify(bad)}`);
  if (!mine.some((l) => /snapshot\.json/.test(l))) throw new Error(`${edge.name}: no snapshot through the edge? ${JSON.stringify(mine.slice(0, 20))}`);
  const after = { joins: await metric(origin, 'tribune_joins_total'), presence: await metric(origin, 'tribune_presence_total') };
  if (after.joins !== before.joins || after.presence !== before.presence) {
    throw new Error(`${edge.name}: joins ${before.joins}→${after.joins}, presence ${before.presence}→${after.presence}`);
  }
  const streams = await metric(origin, 'tribune_events_subscribers');
  const ogg = await metric(origin, 'tribune_listeners');
  if (streams !== 0 || ogg !== 0) throw new Error(`${edge.name}: origin holds event streams ${streams}, Ogg listeners ${ogg}`);
  log(`${edge.name}: origin requests for the page: ${mine.length} (${[...new Set(mine.map((l) => l.replace(/\d+/g, 'N')))].slice(0, 12).join(', ')})`);

  // Acting: a name and a raised hand join and open the event stream; the host approves.
  await page.locator('#name').fill(`Fan ${edge.name}`);
  await page.getByRole('button', { name: 'Raise hand' }).click();
  await until(`${edge.name}: the page holds an event stream at the origin`, async () => (await metric(origin, 'tribune_events_subscribers')) >= 1);
  const sub = await page.evaluate(() => window.tribune.state.sub);
  if (!sub) throw new Error(`${edge.name}: no participant after raising a hand`);
  await sleep(1500);
  const acted = edge.originRequests().slice(before.requests);
  if (!acted.some((l) => /\/join(\?|$)/.test(l))) throw new Error(`${edge.name}: the join did not go through the edge to the origin`);
  const ok = await call('POST', `${origin}/api/spaces/${space}/stage/approve`, { token: ctx.hostToken, body: { sub } });
  if (ok.status >= 300) throw new Error(`approve: ${ok.status} ${ok.text}`);
  await page.getByRole('button', { name: 'Join stage' }).click({ timeout: 15000 });
  await until(`${edge.name}: the page is connected on the stage`, async () =>
    (await page.locator(`.stage li[data-sub="${sub}"]`).getAttribute('data-connected', { timeout: 1000 })) === 'true');
  log(`${edge.name}: raised a hand, approved, on stage`);
  await page.getByRole('button', { name: 'Leave stage' }).click();
  await until(`${edge.name}: left the stage`, async () => (await page.locator(`.stage li[data-sub="${sub}"]`).count()) === 0);
  await browser.close();
  await until(`${edge.name}: its event stream closed`, async () => (await metric(origin, 'tribune_events_subscribers')) === 0);
}

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tribune-edge-page-'));
  chmodSync(tmp, 0o755); // varnishd reads its VCL as its own user
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const micWav = path.join(tmp, 'mic660.wav');
  writeToneWav(micWav, { hz: 660 });
  const { base: origin } = await startServer({ adminKey: ADMIN, prefix: 'tribune-edge-page-' });
  const originPort = Number(new URL(origin).port);
  const created = await call('POST', `${origin}/api/spaces`, { token: ADMIN, body: { title: 'Edge show', host_name: 'Hosta' } });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const space = created.json.id;
  const hostToken = created.json.host_token;
  const hostSub = JSON.parse(Buffer.from(hostToken.split('.')[1], 'base64url')).sub;
  startChild('speak', ['speak', '--whip', `${origin}/api/spaces/${space}/whip`, '--token', hostToken, '--tone', '440', '--seconds', '200']);
  await until('the host is on stage', async () => (await metric(origin, 'tribune_speakers')) === 1);
  const fan = await call('POST', `${origin}/api/spaces/${space}/join`, { body: { name: 'Other' } });
  const ctx = { origin, space, hostSub, hostToken, micWav, fanToken: fan.json.token, viewers: 0, emoji: '🎉', reacted: 0 };
  const nginx = await startNginxEdge(tmp, `127.0.0.1:${originPort}`);
  const varnish = await startVarnishEdge(tmp, originPort);
  for (const edge of [nginx, varnish]) await listenerThroughEdge(edge, ctx);
  log('PASS');
}

main().then(async () => {
  await cleanupAll();
  process.exit(0);
}, async (e) => {
  console.error('[edge-page] FAIL:', e?.stack || e);
  await cleanupAll();
  process.exit(1);
});
