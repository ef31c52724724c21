// The web app across a cluster: three nodes on one Redis, each page on a different node.
//
// Run through tests/browser/run_cluster_page.sh (a private network namespace with only loopback).
// Starts Debian's redis-server and three `tribune serve` nodes (n1, n2, n3) sharing it. Two
// spaces are placed on n1 and n2 first, so the least loaded node is n3; then, in headless
// Chromium:
//   1. the host (fake microphone: 440 Hz) creates a space on n1's home page: it is placed on n3,
//      and the host's page, served by n1, joins the stage (WHIP through n1, media to n3);
//   2. a guest (660 Hz) opens the space on n2, types a name and raises a hand; the request shows
//      on the host's page (events through n1's mirror), the host approves, the guest joins the
//      stage through n2; each hears the other (mix-minus) and not itself;
//   3. a listener opens the page through an nginx edge (deploy/nginx/edge.conf) whose upstreams
//      are all three nodes, presses Play and hears both;
//   4. the owner (n3) is killed (SIGKILL): a standby takes the space over, the guest's page
//      publishes again by itself (a new peer connection, connected, on the new owner) and the
//      listener through the edge hears the guest again.
// Everything started is stopped on every path; the run is bounded by DEADLINE_MS.
//
// Environment: TRIBUNE_BIN, CHROMIUM_BIN, DEADLINE_MS (default 240000), VERBOSE=1.

import { existsSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanupAll, guard, launchChromium, onCleanup, startChild, startServer, waitTone, writeToneWav } from './lib.mjs';
import { call, freePort, startNginxEdge, until } from './edges.mjs';

const DEADLINE_MS = Number(process.env.DEADLINE_MS || 240000);
const ADMIN = 'cluster-page-operator-key';
const SECRET = 'cluster-page-jwt-secret-0123456789';
const REDIS = '/usr/bin/redis-server';
const log = (...a) => console.log('[cluster-page]', ...a);

guard('cluster page', DEADLINE_MS);

async function main() {
  if (!existsSync(REDIS)) throw new Error(`no ${REDIS} (scripts/packages.sh test installs redis-server)`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tribune-cluster-page-'));
  chmodSync(tmp, 0o755);
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const redisPort = await freePort();
  startChild('redis', ['--bind', '127.0.0.1', '--port', String(redisPort), '--save', '', '--appendonly', 'no', '--dir', tmp], { bin: REDIS });
  await until('redis answers', async () => {
    const net = await import('node:net');
    return new Promise((resolve) => {
      const s = net.connect(redisPort, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
  }, 15000);
  const nodes = [];
  const procs = [];
  for (const i of [1, 2, 3]) {
    const port = await freePort();
    const listen = `127.0.0.1:${port}`;
    const { base, srv } = await startServer({
      adminKey: ADMIN, prefix: `tribune-cluster-page-n${i}-`, listen, name: `n${i}`,
      extraArgs: ['--redis', `redis://127.0.0.1:${redisPort}`, '--node-id', `n${i}`, '--public-url', `http://${listen}`, '--jwt-secret', SECRET],
    });
    nodes.push(base);
    procs.push(srv);
  }
  const [n1, n2, n3] = nodes;
  await until('the three nodes know each other', async () => {
    const r = await call('GET', `${n1}/api/cluster`, { token: ADMIN });
    return r.status === 200 && r.json.nodes.length === 3;
  });
  for (const node of ['n1', 'n2']) {
    const r = await call('POST', `${n1}/api/spaces`, { token: ADMIN, body: { title: `Busy ${node}`, node } });
    if (r.status !== 201) throw new Error(`create on ${node}: ${r.status} ${r.text}`);
  }
  log(`nodes ${nodes.join(' ')}`);

  const hostMic = path.join(tmp, 'mic440.wav');
  const guestMic = path.join(tmp, 'mic660.wav');
  const silence = path.join(tmp, 'silence.wav');
  writeToneWav(hostMic, { hz: 440 });
  writeToneWav(guestMic, { hz: 660 });
  writeToneWav(silence, { hz: 0 });
  const [hb, gb, lb] = await Promise.all([launchChromium(hostMic), launchChromium(guestMic), launchChromium(silence)]);
  const host = await hb.newPage();
  const guest = await gb.newPage();
  const listener = await lb.newPage();
  for (const [who, p] of [['host', host], ['guest', guest], ['listener', listener]]) {
    p.on('console', (m) => process.env.VERBOSE === '1' && log(`${who} console:`, m.text()));
  }

  // 1. The host creates the space on n1's home page; it is placed on n3.
  await host.goto(`${n1}/`);
  await host.getByLabel('Operator key', { exact: true }).fill(ADMIN);
  await host.getByLabel('Title', { exact: true }).fill('Across the cluster');
  await host.getByLabel('Your name', { exact: true }).fill('Hosta');
  await host.getByRole('button', { name: 'Create space', exact: true }).click();
  await host.waitForURL(/\/spaces\/[^/?#]+$/, { timeout: 15000 });
  const space = decodeURIComponent(new URL(host.url()).pathname.split('/')[2]);
  const owner = await until('the space is listed with its owner', async () => {
    const r = await call('GET', `${n2}/api/cluster`, { token: ADMIN });
    const o = r.json?.nodes?.find((n) => n.spaces.includes(space));
    return o?.id;
  });
  if (owner !== 'n3') throw new Error(`the space went to ${owner}, not to the least loaded node n3`);
  log(`space ${space} created on n1's page, owned by ${owner}`);
  await host.getByRole('button', { name: 'Join stage', exact: true }).click({ timeout: 15000 });
  await until('the host is connected on the stage', async () =>
    (await host.locator('.stage li[data-connected="true"]').count()) >= 1);
  log('host on stage through n1');

  // 2. The guest on n2: name, raised hand, approved on the host's page (n1), on stage via n2.
  await guest.goto(`${n2}/spaces/${encodeURIComponent(space)}`);
  await guest.getByLabel('Your name', { exact: true }).fill('Guesto');
  await guest.getByRole('button', { name: 'Raise hand', exact: true }).click();
  const requests = host.getByRole('list', { name: 'Requests to speak', exact: true });
  await requests.getByRole('button', { name: 'Approve Guesto', exact: true }).click({ timeout: 20000 });
  await guest.getByRole('button', { name: 'Join stage', exact: true }).click({ timeout: 20000 });
  await until('the guest is connected on the stage (seen by the host on n1)', async () =>
    (await host.locator('.stage li[data-connected="true"]').count()) >= 2);
  await waitTone(guest, { which: 'stageAnalyser', hz: 440, want: 'present', timeoutMs: 20000, label: 'the guest hears the host' });
  await waitTone(guest, { which: 'stageAnalyser', hz: 660, want: 'absent', timeoutMs: 10000, label: 'the guest does not hear itself' });
  await waitTone(host, { which: 'stageAnalyser', hz: 660, want: 'present', timeoutMs: 20000, label: 'the host hears the guest' });
  await waitTone(host, { which: 'stageAnalyser', hz: 440, want: 'absent', timeoutMs: 10000, label: 'the host does not hear itself' });
  log('guest raised a hand on n2, approved on n1, on stage; each hears the other');

  // 3. A listener through an edge over all three nodes hears both.
  const upstreams = nodes.map((b) => new URL(b).host);
  const edge = await startNginxEdge(tmp, upstreams);
  await listener.goto(`${edge.base}/spaces/${encodeURIComponent(space)}`);
  await listener.locator('#play').click();
  await waitTone(listener, { which: 'outputAnalyser', hz: 440, want: 'present', timeoutMs: 30000, label: 'the listener hears the host' });
  await waitTone(listener, { which: 'outputAnalyser', hz: 660, want: 'present', timeoutMs: 20000, label: 'the listener hears the guest' });
  // nginx spreads its origin requests over the upstreams: every node serves the space.
  const used = await until('the edge used all three nodes', async () => {
    const u = edge.upstreamsUsed().filter((a) => upstreams.includes(a));
    return u.length === 3 && u;
  }, 20000);
  log(`listener through the edge (origin requests went to ${used.join(', ')}) hears both`);

  // 4. The owner (n3) is killed: its hot standby takes the space over; the guest's page
  //    publishes again by itself, and the listener through the edge hears the guest again.
  const before = await guest.evaluate(() => { window.tribune.oldPc = window.tribune.pc; return !!window.tribune.pc; });
  if (!before) throw new Error('the guest has no peer connection before the kill');
  procs[2].child.kill('SIGKILL');
  await procs[2].exitP;
  const heir = await until('a standby took the space over', async () => {
    for (const b of [n1, n2]) {
      const r = await fetch(`${b}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } }).catch(() => null);
      const text = r ? await r.text() : '';
      if (/^tribune_cluster_takeovers_total 1$/m.test(text)) return b;
    }
    return false;
  }, 40000);
  log(`owner n3 killed; ${heir} took the space over`);
  await until('the guest published again (a new connection, connected)', async () =>
    guest.evaluate(() => !!window.tribune.pc && window.tribune.pc !== window.tribune.oldPc && window.tribune.pc.connectionState === 'connected'), 40000);
  await until('both are on the stage of the new owner', async () => {
    const r = await fetch(`${heir}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } }).catch(() => null);
    return /^tribune_speakers 2$/m.test(r ? await r.text() : '');
  }, 40000);
  await waitTone(listener, { which: 'outputAnalyser', hz: 660, want: 'present', timeoutMs: 40000, label: 'the listener hears the guest again' });
  log('the guest republished by itself; the listener through the edge hears the guest again');
  await Promise.all([hb.close(), gb.close(), lb.close()]);
  log('PASS');
}

main().then(async () => {
  await cleanupAll();
  process.exit(0);
}, async (e) => {
  console.error('[cluster-page] FAIL:', e?.stack || e);
  await cleanupAll();
  process.exit(1);
});
