// The web app's retry policy (crates/server/web/api.js: retryDelay, retrying), run under Node
// against a loopback HTTP server that resets the first two connections, then answers 503
// without Retry-After, then 429 with Retry-After, then 200: the page's own `api()` call gets
// through, having waited a jittered exponential back-off after each failure the server did not
// time and the server's Retry-After (plus jitter) after the one it did; a 4xx answer is final.
// No timing decides anything: the waits are recorded through the `sleep` hook, not slept.

import assert from 'node:assert/strict';
import http from 'node:http';
import { api, retryDelay, retrying, BACKOFF } from '../../crates/server/web/api.js';

// The policy on its own: the bounds of each wait.
for (let attempt = 0; attempt < 8; attempt++) {
  const step = Math.min(BACKOFF.capS, BACKOFF.baseS * 2 ** attempt);
  for (const status of [0, 500, 502, 503]) {
    assert.equal(retryDelay({ status }, attempt, () => 0), step / 2, `low end, ${status} #${attempt}`);
    assert.equal(retryDelay({ status }, attempt, () => 1), step, `high end, ${status} #${attempt}`);
  }
}
assert.equal(retryDelay({ status: 0 }, 100, () => 1), BACKOFF.capS, 'capped');
assert.equal(retryDelay({ status: 429, retryAfter: 7 }, 3, () => 0.5), 8, 'Retry-After plus jitter');
assert.equal(retryDelay({ status: 503, retryAfter: 4 }, 0, () => 0), 4);
for (const status of [400, 401, 403, 404, 409, 410, 413, 415]) {
  assert.equal(retryDelay({ status }, 0), null, `${status} is final`);
}
assert.equal(retryDelay({ status: 429 }, 0), null, 'a 429 that does not say when is final');

// Against a real server: reset, reset, 503 (no Retry-After), 429 (Retry-After: 3), 200.
let requests = 0;
const server = http.createServer((req, res) => {
  requests++;
  if (requests <= 2) {
    req.socket.destroy();
  } else if (requests === 3) {
    res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"overloaded","message":"busy"}');
  } else if (requests === 4) {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '3' }).end('{"error":"rate_limited"}');
  } else {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  }
});
await new Promise((r, j) => server.listen(0, '127.0.0.1', r).once('error', j));
const url = `http://127.0.0.1:${server.address().port}/api/spaces/x/join`;
try {
  const waits = [];
  const seen = [];
  const got = await retrying(() => api('POST', url, { body: { name: 'n' }, timeoutMs: 5000 }), {
    random: () => 0.5,
    sleep: async (s) => { waits.push(s); },
    onWait: (_s, e) => seen.push(e.status),
  });
  assert.deepEqual(got, { ok: true });
  assert.equal(requests, 5, 'four failures, then through');
  assert.deepEqual(seen, [0, 0, 503, 429], 'resets are network failures (status 0)');
  // Exponential with jitter for the untimed ones (steps 1, 2, 4 s at random 0.5), then 3 s + 1.
  assert.deepEqual(waits, [0.75, 1.5, 3, 4]);

  // A final answer is not retried, and the attempts are bounded.
  requests = 100;
  const bad = http.createServer((_req, res) => res.writeHead(404).end('{"error":"not_found"}'));
  await new Promise((r) => bad.listen(0, '127.0.0.1', r));
  let tries = 0;
  await assert.rejects(
    retrying(() => { tries++; return api('GET', `http://127.0.0.1:${bad.address().port}/x`); }, { sleep: async () => {} }),
    (e) => e.status === 404,
  );
  assert.equal(tries, 1, 'a 404 is final');
  bad.close();
  let down = 0;
  await assert.rejects(
    retrying(() => { down++; return Promise.reject(Object.assign(new Error('x'), { status: 0 })); }, { attempts: 5, sleep: async () => {} }),
  );
  assert.equal(down, 5, 'at most `attempts` tries');
  console.log('web retry policy: OK');
} finally {
  server.close();
}
