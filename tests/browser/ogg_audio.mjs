// A plain browser <audio> element plays a tribune space's Ogg/Opus live stream (live.opus).
//
// Starts `tribune serve` on loopback, creates a space, publishes a 440 Hz tone with `tribune
// speak`, waits a few seconds (so the page joins mid-stream: the shared pages are numbered far
// past the header pages), then opens headless Chromium on a page of a loopback server of this
// script (another origin: live.opus sends Access-Control-Allow-Origin: *). The page sets
// `audio.src` to live.opus — no MSE, no library: the browser's own Ogg demuxer and Opus decoder —
// routes the element through createMediaElementSource into an AnalyserNode and looks for the
// tone. Chromium buffers about 32 KB (~8 s at 32 kb/s) before it starts, hence the long limit.
//
// Passes when the tone is heard and the element's currentTime advanced. Bounded by DEADLINE_MS
// (default 90 s); everything started is stopped.
//
// Environment: TRIBUNE_BIN, CHROMIUM_BIN, DEADLINE_MS, VERBOSE (as hls_browser.mjs).

import { existsSync } from 'node:fs';
import {
  CHROMIUM_BIN,
  TRIBUNE_BIN,
  cleanupAll,
  guard,
  launchChromium,
  sleep,
  startChild,
  startPageServer,
  startServer,
} from './lib.mjs';

const env = process.env;
const DEADLINE_MS = Number(env.DEADLINE_MS || 90000);
const TONE_HZ = 440;
const WARMUP_MS = 4000;
const PLAY_TIMEOUT_MS = 40000;
const ADMIN_KEY = 'ogg-audio-operator-key';

guard('ogg audio element', DEADLINE_MS);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>tribune ogg audio test</title></head>
<body>
<script>
window.runTest = async function (src, { toneHz, timeoutMs, fftSize, marginDb }) {
  const t0 = performance.now();
  const ctx = new AudioContext();
  if (ctx.state !== 'running') await ctx.resume();
  const audio = new Audio();
  audio.crossOrigin = 'anonymous';
  const analyser = ctx.createAnalyser();
  analyser.fftSize = fftSize;
  analyser.smoothingTimeConstant = 0;
  ctx.createMediaElementSource(audio).connect(analyser);
  analyser.connect(ctx.destination);
  audio.src = src;
  let playError = null;
  audio.play().catch((e) => { playError = String(e); });
  const spec = new Float32Array(analyser.frequencyBinCount);
  const bin = Math.round(toneHz / (ctx.sampleRate / fftSize));
  let best = null;
  let tone = null;
  while (!tone && performance.now() - t0 < timeoutMs) {
    await new Promise((r) => setTimeout(r, 100));
    analyser.getFloatFrequencyData(spec);
    let peak = -Infinity;
    for (let b = bin - 1; b <= bin + 1; b++) peak = Math.max(peak, spec[b]);
    const around = [];
    for (let b = Math.round(bin / 2); b <= bin * 2; b++) {
      if (Math.abs(b - bin) > 8 && Number.isFinite(spec[b])) around.push(spec[b]);
    }
    around.sort((a, b) => a - b);
    const floor = around.length ? around[around.length >> 1] : -Infinity;
    const snr = peak - floor;
    if (Number.isFinite(snr) && (!best || snr > best.snr)) best = { snr: +snr.toFixed(1), peak: +peak.toFixed(1) };
    if (Number.isFinite(peak) && peak > -70 && snr >= marginDb) {
      tone = { t: +((performance.now() - t0) / 1000).toFixed(2), snr: +snr.toFixed(1) };
    }
  }
  const out = {
    tone, best, playError, currentTime: audio.currentTime,
    error: audio.error ? audio.error.code + ' ' + audio.error.message : null,
  };
  audio.pause();
  audio.removeAttribute('src');
  audio.load();
  await ctx.close();
  return out;
};
</script>
</body></html>`;

async function main() {
  if (!existsSync(TRIBUNE_BIN)) throw new Error(`no tribune binary at ${TRIBUNE_BIN} (set TRIBUNE_BIN)`);
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`no chromium at ${CHROMIUM_BIN} (apt-get install -y chromium)`);
  const { base, srv } = await startServer({ adminKey: ADMIN_KEY, prefix: 'tribune-ogg-audio-' });
  const res = await fetch(`${base}/api/spaces`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: '{}',
    signal: AbortSignal.timeout(5000),
  });
  const space = await res.json();
  if (!res.ok || !space.id) throw new Error(`POST /api/spaces: ${res.status} ${JSON.stringify(space)}`);
  const speak = startChild('speak', [
    'speak', '--whip', `${base}/api/spaces/${space.id}/whip`, '--token', space.host_token,
    '--tone', String(TONE_HZ), '--seconds', '60',
  ]);
  await sleep(WARMUP_MS);
  if (speak.exited()) throw new Error(`tribune speak exited early; stderr:\n${speak.stderrTail()}`);
  if (srv.exited()) throw new Error(`tribune serve exited early; stderr:\n${srv.stderrTail()}`);

  const pageUrl = await startPageServer({ '/': { type: 'text/html; charset=utf-8', body: PAGE } });
  const browser = await launchChromium(null);
  const page = await (await browser.newContext()).newPage();
  await page.goto(pageUrl, { timeout: 10000 });
  const r = await page.evaluate(
    ({ src, opts }) => window.runTest(src, opts),
    { src: `${base}/spaces/${space.id}/live.opus`, opts: { toneHz: TONE_HZ, timeoutMs: PLAY_TIMEOUT_MS, fftSize: 8192, marginDb: 30 } },
  );
  if (!r.tone || !(r.currentTime > 0)) {
    throw new Error(`no ${TONE_HZ} Hz tone from <audio src=live.opus>: ${JSON.stringify(r)}`);
  }
  return `ogg audio element: OK (tone at ${r.tone.t} s after play, snr ${r.tone.snr} dB)`;
}

let code = 0;
try {
  console.log(await main());
} catch (e) {
  console.error(`ogg audio element: FAIL: ${e?.message ?? e}`);
  code = 1;
}
await cleanupAll();
process.exit(code);
