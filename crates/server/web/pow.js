// Proof of work for the shield: turns a challenge into a ticket (the `Tribune-Pow` value).
//
// The rule (the server's shield module documents it): find NONCE, 1 to 32 characters of
// [A-Za-z0-9_-], such that SHA-256 of the ASCII bytes of `CHALLENGE:NONCE` starts with `bits`
// zero bits. The challenge is the same for every client of a space for a minute, so the nonce
// starts with random characters, then an 8-hex-digit counter.
//
// Speed: WebCrypto's digest() is a promise per hash, far too slow for ~2^bits attempts, so this
// is a plain SHA-256 on 32-bit words. The message has a fixed length; the counter sits on a word
// boundary, so each attempt writes two words and compresses the last one or two blocks from a
// precomputed midstate. It runs in a module Worker (this same file; the page's CSP allows
// `worker-src 'self'`) so the page stays responsive, or on the main thread if Workers fail.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

const W = new Int32Array(64);

/** One SHA-256 compression of `m[off..off+16]` into `s` (8 words). */
function compress(s, m, off) {
  for (let i = 0; i < 16; i++) W[i] = m[off + i];
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15];
    const y = W[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  s[0] = (s[0] + a) | 0; s[1] = (s[1] + b) | 0; s[2] = (s[2] + c) | 0; s[3] = (s[3] + d) | 0;
  s[4] = (s[4] + e) | 0; s[5] = (s[5] + f) | 0; s[6] = (s[6] + g) | 0; s[7] = (s[7] + h) | 0;
}

/** `bytes` (ASCII codes) padded as SHA-256 wants, as big-endian words. */
function padded(bytes) {
  const blocks = Math.ceil((bytes.length + 9) / 64);
  const m = new Int32Array(blocks * 16);
  bytes.forEach((b, i) => { m[i >> 2] |= b << (24 - 8 * (i & 3)); });
  const n = bytes.length;
  m[n >> 2] |= 0x80 << (24 - 8 * (n & 3));
  m[m.length - 1] = n * 8; // messages here are far below 2^29 bytes
  return m;
}

const ascii = (str) => Array.from(str, (ch) => ch.charCodeAt(0) & 0x7f);

/** SHA-256 of an ASCII string, as lowercase hex (for tests). */
export function sha256Hex(str) {
  const m = padded(ascii(str));
  const s = Int32Array.from(IV);
  for (let off = 0; off < m.length; off += 16) compress(s, m, off);
  return Array.from(s, (w) => (w >>> 0).toString(16).padStart(8, '0')).join('');
}

/** Leading zero bits of a state. */
function zeroBits(s) {
  let n = 0;
  for (let i = 0; i < 8; i++) {
    const z = Math.clz32(s[i]);
    n += z;
    if (z < 32) break;
  }
  return n;
}

const HEX = '0123456789abcdef';
/** 16-bit value → its 4 hex characters as one big-endian word. */
const HEX4 = new Int32Array(65536);
for (let v = 0; v < 65536; v++) {
  HEX4[v] = (HEX.charCodeAt(v >> 12) << 24) | (HEX.charCodeAt((v >> 8) & 15) << 16)
    | (HEX.charCodeAt((v >> 4) & 15) << 8) | HEX.charCodeAt(v & 15);
}

function randomHex(n) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => HEX[x & 15]).join('');
}

/**
 * Solves `challenge` for `bits` leading zero bits; returns `CHALLENGE:NONCE`. Synchronous and
 * CPU-bound (use `solveInWorker` from a page).
 */
export function solve(challenge, bits) {
  const head = `${challenge}:`;
  for (;;) {
    // Random characters, as many as put the counter on a word boundary (8 to 11).
    const r = 8 + ((4 - ((head.length + 8) % 4)) % 4);
    const prefix = head + randomHex(r);
    const m = padded(ascii(prefix + '00000000'));
    const at = prefix.length >> 2; // word index of the counter
    const first = (at >> 4) * 16; // the first block the counter touches
    const mid = Int32Array.from(IV);
    for (let off = 0; off < first; off += 16) compress(mid, m, off);
    const s = new Int32Array(8);
    for (let n = 0; n < 0x100000000; n++) {
      m[at] = HEX4[n >>> 16];
      m[at + 1] = HEX4[n & 0xffff];
      s.set(mid);
      for (let off = first; off < m.length; off += 16) compress(s, m, off);
      if (zeroBits(s) >= bits) {
        return prefix + counterHex(n);
      }
    }
    // 2^32 attempts without luck: new random characters.
  }
}

function counterHex(n) {
  return (n >>> 0).toString(16).padStart(8, '0');
}

/** Solves in a module Worker (this file) when possible, else on this thread. */
export async function solveInWorker(challenge, bits) {
  let worker;
  try {
    worker = new Worker(new URL(import.meta.url), { type: 'module' });
  } catch {
    return solve(challenge, bits);
  }
  try {
    return await new Promise((resolve, reject) => {
      worker.onmessage = (ev) => resolve(ev.data.ticket);
      worker.onerror = (ev) => reject(ev);
      worker.postMessage({ challenge, bits });
    });
  } catch {
    return solve(challenge, bits);
  } finally {
    worker.terminate();
  }
}

// As a Worker: solve what the page sends.
if (typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope) {
  globalThis.onmessage = (ev) => {
    const { challenge, bits } = ev.data;
    globalThis.postMessage({ ticket: solve(challenge, bits) });
  };
}
