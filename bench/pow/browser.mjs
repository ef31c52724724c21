// The web app's proof-of-work solver (crates/server/web/pow.js) in headless Chromium: solve
// times at the server's default difficulty, in a module Worker as the app runs it.
//
//   node bench/pow/browser.mjs [BITS] [CHALLENGES]      (defaults: 21, 20)
//
// Needs Debian's chromium and tests/browser/node_modules (npm ci there). The page and pow.js are
// served from memory through Playwright's routing (no tribune server needed); challenges are
// made up in the right format (the work does not depend on the signature).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const require = createRequire(join(root, 'tests', 'browser', 'package.json'));
const { chromium } = require('playwright-core');

const bits = Number(process.argv[2] || 21);
const n = Number(process.argv[3] || 20);
const pow = readFileSync(join(root, 'crates', 'server', 'web', 'pow.js'), 'utf8');

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium' });
try {
  const page = await browser.newPage();
  await page.route('http://pow.test/**', (route) => {
    const js = route.request().url().endsWith('.js');
    route.fulfill({
      status: 200,
      contentType: js ? 'text/javascript' : 'text/html',
      body: js ? pow : '<!doctype html><title>pow</title>',
    });
  });
  await page.goto('http://pow.test/');
  const ms = await page.evaluate(async ({ bits, n }) => {
    const { solveInWorker } = await import('/pow.js');
    const out = [];
    for (let i = 0; i < n; i++) {
      const c = `1.space-${i}.1700000040.${bits}.00112233445566778899aabbccddeeff`;
      const t0 = performance.now();
      await solveInWorker(c, bits);
      out.push(performance.now() - t0);
    }
    return out;
  }, { bits, n });
  ms.sort((a, b) => a - b);
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  const r = {
    engine: `chromium ${browser.version()}`, bits, n,
    median_ms: ms[Math.floor(n / 2)], p90_ms: ms[Math.min(n - 1, Math.floor(n * 0.9))], mean_ms: mean,
    hashes_per_s: 2 ** bits / (mean / 1000),
  };
  console.log(JSON.stringify(r));
} finally {
  await browser.close();
}
