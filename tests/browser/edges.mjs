// The two edges of deploy/ for the browser tests and benchmarks: nginx (deploy/nginx/edge.conf)
// and Varnish (deploy/varnish/edge.vcl, with `varnishncsa -b` logging what reaches the origin),
// started on a free loopback port in front of an origin, stopped by lib.mjs's cleanupAll.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, sleep, startChild } from './lib.mjs';

export const NGINX_BIN = '/usr/sbin/nginx';
export const VARNISHD = '/usr/sbin/varnishd';

export const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.on('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});

/** A JSON API call: `{ status, json, text }` (`json` null when the body is not JSON). */
export async function call(method, url, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body) headers['content-type'] = 'application/json';
  const r = await fetch(url, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: r.status, json, text };
}

export async function until(what, f, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    await sleep(250);
  }
  throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)})`);
}


/**
 * nginx with deploy/nginx/edge.conf in front of `origin` (host:port, or an array of them: the
 * upstream's servers, e.g. every node of a cluster), under `tmp`.
 */
export async function startNginxEdge(tmp, origin) {
  const origins = Array.isArray(origin) ? origin : [origin];
  if (!existsSync(NGINX_BIN)) throw new Error(`no nginx at ${NGINX_BIN} (scripts/packages.sh test)`);
  const port = await freePort();
  const prefix = path.join(tmp, 'nginx');
  mkdirSync(path.join(prefix, 'cache'), { recursive: true });
  const conf = readFileSync(path.join(repoRoot, 'deploy/nginx/edge.conf'), 'utf8')
    .replaceAll('@USER@', process.getuid?.() === 0 ? 'root' : os.userInfo().username)
    .replaceAll('@PORT@', `127.0.0.1:${port}`)
    .replace('server @ORIGIN@ max_fails=0;', origins.map((o) => `server ${o} max_fails=0;`).join('\n        '))
    .replaceAll('@ORIGIN@', origins[0])
    .replaceAll('@CACHE@', path.join(prefix, 'cache'))
    .replaceAll('@PREFIX@', prefix);
  const confPath = path.join(prefix, 'edge.conf');
  writeFileSync(confPath, conf);
  startChild('nginx', ['-c', confPath, '-p', prefix, '-e', path.join(prefix, 'error.log'), '-g', 'daemon off;'], { bin: NGINX_BIN });
  const base = `http://127.0.0.1:${port}`;
  await until('nginx edge answers', async () => (await fetch(`${base}/healthz`)).ok, 10000);
  // Origin requests: access-log lines with an upstream address (flushed every second).
  const originRequests = () => {
    const file = path.join(prefix, 'access.log');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8').split('\n')
      .filter((l) => / up=\d/.test(l))
      .map((l) => (l.match(/"(\S+) (\S+)"/) || []).slice(1).join(' '));
  };
  // The upstream addresses origin requests went to (several with several origins).
  const upstreamsUsed = () => {
    const file = path.join(prefix, 'access.log');
    if (!existsSync(file)) return [];
    return [...new Set([...readFileSync(file, 'utf8').matchAll(/ up=(\S+)/g)].map((m) => m[1]))];
  };
  return { name: 'nginx', base, originRequests, upstreamsUsed };
}

/** Varnish with deploy/varnish/edge.vcl in front of 127.0.0.1:`originPort`, under `tmp`. */
export async function startVarnishEdge(tmp, originPort) {
  if (!existsSync(VARNISHD)) throw new Error(`no varnishd at ${VARNISHD} (scripts/packages.sh test)`);
  const port = await freePort();
  const dir = path.join(tmp, 'varnish');
  mkdirSync(dir, { recursive: true });
  const vcl = readFileSync(path.join(repoRoot, 'deploy/varnish/edge.vcl'), 'utf8')
    .replaceAll('@ORIGIN_HOST@', '127.0.0.1')
    .replaceAll('@ORIGIN_PORT@', String(originPort));
  writeFileSync(path.join(dir, 'edge.vcl'), vcl);
  startChild('varnishd', ['-F', '-a', `127.0.0.1:${port}`, '-f', path.join(dir, 'edge.vcl'), '-n', path.join(dir, 'n'), '-s', 'malloc,64m'], { bin: VARNISHD });
  const base = `http://127.0.0.1:${port}`;
  await until('varnish edge answers', async () => (await fetch(`${base}/healthz`)).ok, 15000);
  const logFile = path.join(dir, 'backend.log');
  const ncsa = startChild('varnishncsa', ['-b', '-F', '%m %U%q', '-n', path.join(dir, 'n'), '-w', logFile], { bin: '/usr/bin/varnishncsa' });
  await sleep(1000);
  if (ncsa.exited()) throw new Error(`varnishncsa exited: ${ncsa.stderrTail()}`);
  const originRequests = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter(Boolean) : []);
  return { name: 'varnish', base, originRequests };
}
