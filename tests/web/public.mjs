// The listener page's pure parts (crates/server/web/public.js), under Node: the in-band message
// merge (the same rule as crates/engine/src/hls/meta.rs `apply`), the ID3 TXXX reader against
// a tag laid out as crates/media/src/fmp4/id3.rs writes it, the viewer sampling level (the same
// as crates/room/src/viewers.rs `level`), the beacon schedule, and the reaction batcher (at
// most one request per BATCH_MS, at most MAX_BATCH per request, Retry-After honoured). Timers
// and randomness are injected: nothing here waits for real time.

import assert from 'node:assert/strict';
import { applyMeta, id3Txxx, viewerLevel, Beacon, ReactionBatch, BATCH_MS, MAX_BATCH } from '../../crates/server/web/public.js';

// applyMeta: key messages replace, others update, null removes.
const st = { a: 1, gone: true };
assert.deepEqual([...applyMeta(st, { k: 1, a: 2, b: [1] })].sort(), ['a', 'b', 'gone']);
assert.deepEqual(st, { a: 2, b: [1] });
assert.deepEqual([...applyMeta(st, { b: null, c: 'x' })].sort(), ['b', 'c']);
assert.deepEqual(st, { a: 2, c: 'x' });
assert.equal(applyMeta(st, { a: 2 }).size, 0, 'unchanged value: no change');
assert.equal(applyMeta(st, [1, 2]).size, 0, 'not an object');

// id3Txxx: ID3v2.4, synchsafe sizes, UTF-8 TXXX frames.
const syncsafe = (n) => [(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f];
function tag(frames) {
  const body = [];
  for (const [d, v] of frames) {
    const payload = [3, ...Buffer.from(d), 0, ...Buffer.from(v)];
    body.push(...Buffer.from('TXXX'), ...syncsafe(payload.length), 0, 0, ...payload);
  }
  return new Uint8Array([...Buffer.from('ID3'), 4, 0, 0, ...syncsafe(body.length), ...body]);
}
const json = JSON.stringify({ k: 1, speaking: ['host-ab'], reactions: { '👏': 3 } });
assert.deepEqual(id3Txxx(tag([['tribune', json], ['other', 'x']])), [
  { description: 'tribune', value: json },
  { description: 'other', value: 'x' },
]);
assert.deepEqual(id3Txxx(new Uint8Array([1, 2, 3])), []);
assert.deepEqual(id3Txxx(tag([['tribune', json]]).subarray(0, 30)), [], 'truncated');
for (let i = 0; i < 2000; i++) {
  // Garbage never throws.
  const junk = new Uint8Array(Math.floor(Math.random() * 64)).map(() => Math.floor(Math.random() * 256));
  if (Math.random() < 0.5) junk.set([0x49, 0x44, 0x33, 4].slice(0, junk.length));
  id3Txxx(junk);
}

// viewerLevel: the server's vectors (crates/room/src/viewers.rs tests).
assert.equal(viewerLevel('f'.repeat(32)), 0);
assert.equal(viewerLevel(`0${'f'.repeat(31)}`), 4);
assert.equal(viewerLevel('0'.repeat(32)), 16);
assert.equal(viewerLevel(`0001${'f'.repeat(28)}`), 15);

// Beacon: a page in the sample sends once per interval; out of it, or inactive, nothing.
function beaconRun(viewer, count, active = () => true, rounds = 5) {
  const timers = [];
  const sent = [];
  const b = new Beacon('/b', viewer, {
    count: () => count,
    active,
    post: (url, body) => sent.push([url, body.viewer]),
    random: () => 0.5,
    setTimer: (f, ms) => timers.push([f, ms]),
    clearTimer: () => {},
  });
  b.start();
  const waits = [];
  for (let i = 0; i < rounds; i++) {
    const [f, ms] = timers.shift();
    waits.push(ms);
    f();
  }
  return { sent, waits };
}
let r = beaconRun('f'.repeat(32), { sample_log2: 0, interval_s: 30 });
assert.equal(r.sent.length, 5);
assert.deepEqual(r.waits, [15000, 30000, 30000, 30000, 30000], 'first at a random moment, then every interval (±10 %)');
assert.equal(beaconRun('f'.repeat(32), { sample_log2: 1, interval_s: 30 }).sent.length, 0, 'level 0 is out of a 1/2 sample');
assert.equal(beaconRun(`0${'f'.repeat(31)}`, { sample_log2: 3, interval_s: 30 }).sent.length, 5, 'level 4 is in a 1/8 sample');
assert.equal(beaconRun('f'.repeat(32), { sample_log2: 0, interval_s: 30 }, () => false).sent.length, 0, 'inactive');

// ReactionBatch: one request per BATCH_MS, at most MAX_BATCH each; a 429 keeps the batch.
{
  let now = 0;
  const timers = [];
  const sends = [];
  let answer = () => Promise.resolve();
  const dropped = [];
  const rb = new ReactionBatch((counts) => {
    sends.push({ at: now, counts });
    return answer();
  }, { setTimer: (f, ms) => timers.push({ f, at: now + ms }), now: () => now, onDropped: (c) => dropped.push(c) });
  const runTimers = async () => {
    while (timers.length) {
      timers.sort((a, b) => a.at - b.at);
      const t = timers.shift();
      now = Math.max(now, t.at);
      t.f();
      await new Promise((res) => setImmediate(res));
    }
  };
  for (let i = 0; i < 13; i++) assert.ok(rb.add('👏'));
  rb.add('🔥');
  await runTimers();
  assert.equal(sends.length, 2);
  assert.deepEqual(sends[0].counts, { '👏': MAX_BATCH });
  assert.deepEqual(sends[1].counts, { '👏': 3, '🔥': 1 });
  assert.ok(sends[1].at - sends[0].at >= BATCH_MS, 'one request per BATCH_MS');
  // A 429 with Retry-After: 5 is retried after 5 s with the same reactions.
  let first = true;
  answer = () => {
    if (first) {
      first = false;
      return Promise.reject(Object.assign(new Error('busy'), { status: 429, retryAfter: 5 }));
    }
    return Promise.resolve();
  };
  now += 10000;
  rb.add('😂');
  await runTimers();
  assert.equal(sends.length, 4);
  assert.deepEqual(sends[3].counts, { '😂': 1 });
  assert.ok(sends[3].at - sends[2].at >= 5000);
  // A final refusal drops the batch and says so.
  answer = () => Promise.reject(Object.assign(new Error('no'), { status: 403 }));
  now += 10000;
  rb.add('👍');
  await runTimers();
  assert.deepEqual(dropped, [{ '👍': 1 }]);
  // More than three batches pending: refused.
  answer = () => new Promise(() => {}); // never answers: everything stays pending
  for (let i = 0; i < 3 * MAX_BATCH; i++) rb.add('👏');
  assert.equal(rb.add('👏'), false);
}
console.log('public.mjs: ok');
