// The replay page's pure parts (crates/server/web/moments.js), under Node: the moment of a
// shared link (`?t=`), its inverse, and chapters from the speaking timeline; with random
// inputs for the parser (it never throws, and what it accepts is a finite, non-negative time).

import assert from 'node:assert/strict';
import { parseMoment, momentParam, chapters } from '../../crates/server/web/moments.js';

for (const [t, want] of [['90', 90], ['90s', 90], ['1m30s', 90], ['1:30', 90], ['1:02:03', 3723], ['1h2m3s', 3723],
  ['2h', 7200], ['0', 0], ['12.5', 12.5], [' 45 ', 45]]) {
  assert.equal(parseMoment(t), want, `t=${t}`);
}
for (const t of ['', '-5', 'abc', '1:75', '1m-3s', 'h', '1e9', 'Infinity', 'NaN', '99999999', null, undefined, '1:2']) {
  assert.equal(parseMoment(t), null, `t=${t}`);
}
for (const s of [0, 5, 59, 60, 61, 3599, 3600, 3723, 86399]) assert.equal(parseMoment(momentParam(s)), s, `round trip ${s}`);
assert.equal(momentParam(90), '1m30s');
assert.equal(momentParam(3723.9), '1h2m3s');

// Random strings: never throws; anything accepted is a finite time from 0 up to 1e7 s.
const alphabet = '0123456789:hms.- xe';
let seed = 7;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
for (let i = 0; i < 20000; i++) {
  const len = Math.floor(rnd() * 10);
  let t = '';
  for (let j = 0; j < len; j++) t += alphabet[Math.floor(rnd() * alphabet.length)];
  const v = parseMoment(t);
  assert.ok(v === null || (Number.isFinite(v) && v >= 0 && v < 1e7), `t=${JSON.stringify(t)} gave ${v}`);
}

// Chapters: consecutive segments of one speaker close together merge; another speaker, or a
// long pause, starts a new chapter; input order does not matter.
const seg = (sub, a, b) => ({ sub, name: sub.toUpperCase(), start_ms: a, end_ms: b });
const got = chapters([seg('b', 9000, 12000), seg('a', 0, 2000), seg('a', 3000, 5000), seg('a', 20000, 21000)]);
assert.deepEqual(got.map((c) => [c.sub, c.start_ms, c.end_ms]), [['a', 0, 5000], ['b', 9000, 12000], ['a', 20000, 21000]]);
assert.deepEqual(chapters([]), []);
console.log('moments: ok');

// The captions of a replay: WebVTT as the server writes it (crates/captions/src/vtt.rs).
import { parseVtt, vttTime } from '../../crates/server/web/moments.js';
assert.equal(vttTime('01:02:03.004'), 3723004);
assert.equal(vttTime('02:03.004'), 123004);
assert.equal(vttTime('2:03.004'), null);
assert.equal(vttTime('00:60:00.000'), null);
const vtt = 'WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello &lt;world&gt; &amp; you\n\nNOTE x\n\n2\n00:00:03.000 --> 00:00:04.000 align:start\nsecond\n\n00:00:05.000 --> 00:00:04.000\nbackwards\n';
assert.deepEqual(parseVtt(vtt), [
  { start_ms: 1000, end_ms: 2500, text: 'Hello <world> & you' },
  { start_ms: 3000, end_ms: 4000, text: 'second' },
]);
assert.deepEqual(parseVtt('not vtt'), []);
assert.deepEqual(parseVtt(undefined), []);
// Random texts: never throws; every cue it returns is well ordered.
const vttAlphabet = ['WEBVTT\n', '\n', '-->', ' ', '00:', '01.', '000', '5', ':', '.', 'a', '&amp;', '<b>', 'NOTE'];
for (let i = 0; i < 20000; i++) {
  let t = rnd() < 0.8 ? 'WEBVTT\n\n' : '';
  const n = Math.floor(rnd() * 30);
  for (let j = 0; j < n; j++) t += vttAlphabet[Math.floor(rnd() * vttAlphabet.length)];
  for (const c of parseVtt(t)) assert.ok(Number.isFinite(c.start_ms) && c.end_ms > c.start_ms, JSON.stringify(t));
}
console.log('captions parser: ok');
