// Live captions in a real browser: a captioned space (tribune serve --captions-model, Whisper
// base) where a speaker plays espeak-ng speech of a fixed script, and a listener's page in
// headless Chromium:
//   - the page's caption line shows a word of the script while it plays (from the in-band
//     metadata), the "Captions" toggle hides it and is remembered across a reload;
//   - hls.js (its full build, on a page of its own) lists the WebVTT subtitles rendition and,
//     with it selected, the audio element's text track gets cues holding the script's words;
//   - after the end, the replay page lists the captions, a search finds a word, and choosing a
//     line seeks the recording to it;
//   - axe-core finds no serious or critical violation with captions on; screenshots of the
//     caption line at 1280×800 and 390×844 go to target/browser-artifacts/captions/.
//
// Run through tests/browser/run_captions_page.sh (a private network namespace, loopback only).
// Environment: TRIBUNE_BIN, CHROMIUM_BIN, TRIBUNE_TEST_CAPTIONS_MODEL (default
// target/models/whisper-base), DEADLINE_MS (default 180000), ARTIFACTS, VERBOSE.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TRIBUNE_BIN, VERBOSE, cleanupAll, guard, here, launchChromium, onCleanup, repoRoot, sleep, startPageServer, startServer, stopping } from './lib.mjs';

const env = process.env;
const DEADLINE_MS = Number(env.DEADLINE_MS || 180000);
const ARTIFACTS = path.resolve(process.cwd(), env.ARTIFACTS || path.join(repoRoot, 'target/browser-artifacts/captions'));
const MODEL = path.resolve(process.cwd(), env.TRIBUNE_TEST_CAPTIONS_MODEL || path.join(repoRoot, 'target/models/whisper-base'));
const AXE = readFileSync(path.join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
const ADMIN = 'captions-page-operator-key';
const LABEL = 'captions page';
const SCRIPT = 'The quick brown fox jumps over the lazy dog. Every word spoken in this room is written down as it is said. Captions help people who cannot hear the conversation.';
/** Words of the script a caption must hold one of (short or common words left out). */
const WORDS = ['quick', 'fox', 'jumps', 'lazy', 'dog', 'every', 'word', 'spoken', 'room', 'written', 'down', 'said', 'captions', 'help', 'people', 'cannot', 'hear', 'conversation'];
const hasWord = (t) => WORDS.some((w) => (t || '').toLowerCase().replace(/[^a-z ]/g, ' ').split(/\s+/).includes(w));

const t0 = Date.now();
const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);
mkdirSync(ARTIFACTS, { recursive: true });

let base;
async function call(method, p, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10000) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : null;
}

async function until(what, probe, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let seen;
  for (;;) {
    try {
      seen = await probe();
      if (seen === true) return;
    } catch (e) {
      seen = `error: ${e?.message ?? e}`;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(seen)?.slice(0, 300)})`);
    await sleep(300);
  }
}

async function axe(page, what) {
  await page.evaluate(AXE);
  const r = await page.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) throw new Error(`${what}: ${bad.map((v) => `${v.impact} ${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`).join('; ')}`);
}

async function main() {
  if (!existsSync(path.join(MODEL, 'model.bin'))) throw new Error(`no captions model at ${MODEL}: run scripts/captions-model.sh ${MODEL}`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tribune-captions-page-'));
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const wav = path.join(tmp, 'script.wav');
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '145', '-g', '8', '-w', wav, SCRIPT]);
  const srv = await startServer({ adminKey: ADMIN, prefix: 'tribune-captions-page-', extraArgs: ['--advertise', '127.0.0.1', '--captions-model', MODEL] });
  base = srv.base;
  const space = await call('POST', '/api/spaces', { token: ADMIN, body: { title: 'Captioned show', host_name: 'Hosta' } });
  const tok = await call('POST', `/api/spaces/${space.id}/tokens`, { token: space.host_token, body: { role: 'speaker', name: 'Reader' } });
  const speaker = spawn(TRIBUNE_BIN, ['speak', '--bind', '127.0.0.1', '--whip', `${base}/api/spaces/${space.id}/whip`, '--token', tok.token,
    '--file', wav, '--loop', '--seconds', '150'], { stdio: ['ignore', 'ignore', VERBOSE ? 'inherit' : 'ignore'] });
  onCleanup(() => speaker.exitCode === null && speaker.kill('SIGINT'));
  log(`server ${base}, space ${space.id}, a speaker reading the script in a loop`);

  const browser = await launchChromium(null);
  for (const [size, opts] of [['desktop', { viewport: { width: 1280, height: 800 } }], ['phone', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }]]) {
    const ctx = await browser.newContext(opts);
    onCleanup(() => ctx.close().catch(() => {}));
    const page = await ctx.newPage();
    await page.goto(`${base}/spaces/${space.id}`);
    await page.locator('#play').click();
    await until(`${size}: the caption line shows a word of the script`, async () => {
      const s = await page.evaluate(() => ({ caption: window.tribune.state.caption, captions: window.tribune.state.captions, shown: !document.getElementById('caption').hidden, text: document.getElementById('caption').textContent }));
      return (s.captions && s.shown && hasWord(s.text)) || s;
    }, 60000);
    log(`${size}: caption line: ${JSON.stringify(await page.locator('#caption').textContent())}`);
    await page.screenshot({ path: path.join(ARTIFACTS, `live-caption-${size}.png`), fullPage: true });
    await axe(page, `${size}: the live page with captions`);
    if (size === 'desktop') {
      // The toggle hides the line, and the choice is remembered.
      await page.getByRole('button', { name: 'Captions on', exact: true }).click();
      await until('captions off hides the line', async () => page.evaluate(() => document.getElementById('caption').hidden && !window.tribune.state.captionsOn), 5000);
      await page.reload();
      await until('after a reload captions stay off', async () => page.evaluate(() => window.tribune?.state?.captions === true && window.tribune.state.captionsOn === false), 15000);
      await page.getByRole('button', { name: 'Captions off', exact: true }).click();
    }
    await ctx.close();
  }

  // hls.js itself (the full build, as any site would use it; the app vendors the light build
  // and shows its own caption line): it lists the subtitles rendition and, selected, puts its
  // cues on the audio element's text track.
  {
    const pageUrl = await startPageServer({
      '/': { type: 'text/html; charset=utf-8', body: '<!doctype html><meta charset="utf-8"><title>hls.js captions</title><audio id="a" crossorigin="anonymous"></audio><script src="/hls.min.js"></script>' },
      '/hls.min.js': { type: 'text/javascript; charset=utf-8', file: path.join(here, 'node_modules/hls.js/dist/hls.min.js') },
    });
    const ctx = await browser.newContext();
    onCleanup(() => ctx.close().catch(() => {}));
    const page = await ctx.newPage();
    await page.goto(pageUrl);
    await page.evaluate((src) => {
      const el = document.getElementById('a');
      const hls = new window.Hls({ lowLatencyMode: true, subtitleDisplay: false });
      window.hls = hls;
      hls.on(window.Hls.Events.SUBTITLE_TRACKS_UPDATED, () => { hls.subtitleTrack = 0; });
      hls.loadSource(src);
      hls.attachMedia(el);
      el.play().catch(() => {});
    }, `${base}/spaces/${space.id}/hls/index.m3u8`);
    await until('hls.js lists the subtitles rendition', async () => page.evaluate(() => {
      const t = window.hls.subtitleTracks;
      return (t.length === 1 && t[0].lang === 'en' && /Captions/.test(t[0].name)) || t.map((x) => x.name);
    }), 20000);
    await until('hls.js puts the rendition\'s cues on the audio element', async () => {
      const cues = await page.evaluate(() => {
        const el = document.getElementById('a');
        const out = [];
        for (const t of el.textTracks) {
          if (t.mode === 'disabled') t.mode = 'hidden';
          for (const c of t.cues || []) out.push({ text: c.text, start: c.startTime, end: c.endTime, now: el.currentTime });
        }
        return out;
      });
      return cues.some((c) => hasWord(c.text) && c.start >= 0 && Math.abs(c.start - c.now) < 120) || cues;
    }, 60000);
    log('hls.js: the subtitles rendition is listed and its cues, near the playing time, hold the script\'s words');
    await ctx.close();
  }

  // The replay: the captions listed, searchable, each seeking.
  speaker.kill('SIGINT');
  await call('POST', `/api/spaces/${space.id}/end`, { token: space.host_token });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  onCleanup(() => ctx.close().catch(() => {}));
  const page = await ctx.newPage();
  await page.goto(`${base}/spaces/${space.id}/replay`);
  await until('the replay lists the captions', async () => (await page.locator('.captions-list li').count()) >= 2, 30000);
  await page.getByLabel('Search the captions', { exact: true }).fill('fox');
  await until('the search finds "fox"', async () => {
    const items = await page.locator('.captions-list li').allTextContents();
    return (items.length >= 1 && items.every((t) => t.toLowerCase().includes('fox'))) || items;
  }, 5000);
  const start = Number(await page.locator('.captions-list li').first().getAttribute('data-start'));
  await page.locator('.captions-list li button').first().click();
  await until('choosing a caption seeks to it', async () => {
    const t = await page.evaluate(() => window.tribune.replay.audio.currentTime * 1000);
    return (t >= start - 500 && t < start + 5000) || t;
  }, 15000);
  await page.screenshot({ path: path.join(ARTIFACTS, 'replay-captions-desktop.png'), fullPage: true });
  await axe(page, 'the replay with captions');
  log('replay: captions listed, "fox" found, a line seeks the recording');
}

let code = 0;
guard(LABEL, DEADLINE_MS);
try {
  await main();
  log(`${LABEL}: OK`);
} catch (e) {
  if (stopping()) await new Promise(() => {});
  code = 1;
  console.error(`${LABEL}: FAIL: ${e?.message ?? e}`);
}
console.log(`screenshots: ${ARTIFACTS}`);
await cleanupAll();
process.exit(code);
