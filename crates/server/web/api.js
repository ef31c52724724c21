// The JSON API as the pages use it, and what the browser remembers: the participant token per
// space (localStorage, so a reload keeps one's identity and role), the display name, and, only
// when asked, the operator key.

import { solveInWorker } from './pow.js';

/** An API refusal: `status` (HTTP), `code` and `message` from the server's JSON error. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter, body) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

/**
 * Calls the API: `api('POST', '/api/spaces/x/join', { token, body })`. Resolves to the parsed
 * JSON (or null for 204), rejects with ApiError (status 0 for a network failure).
 *
 * When the server's shield asks for proof of work (403 `proof_of_work_required`), the
 * challenge is solved (`onSolving()` is called first, to tell the user) and the request
 * retried once with it.
 */
export async function api(method, path, opts = {}) {
  try {
    return await call(method, path, opts);
  } catch (e) {
    const c = e.body?.challenge;
    if (e.code !== 'proof_of_work_required' || !c || opts.pow) throw e;
    opts.onSolving?.();
    const pow = await solveInWorker(c.challenge, c.bits);
    return call(method, path, { ...opts, pow });
  }
}

async function call(method, path, { token, body, pow, timeoutMs = 15000 } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (pow) headers['tribune-pow'] = pow;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the server (${e.name === 'TimeoutError' ? 'timed out' : e.message})`);
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const retry = Number(res.headers.get('retry-after')) || undefined;
    throw new ApiError(res.status, json?.error ?? 'http', json?.message ?? `${res.status} ${res.statusText}`, retry, json);
  }
  return json;
}

/** The back-off after a failure the server did not time: 1 s, doubling, at most 30 s. */
export const BACKOFF = { baseS: 1, capS: 30 };

/**
 * How long to wait before trying a failed API call (an ApiError) again, in seconds, or null not
 * to retry: the page never gives up on a busy server. A refusal that says when (429 or 503 with
 * Retry-After) waits that long plus up to 2 s of jitter. A network failure (a reset or refused
 * connection, a timeout: status 0) and a 5xx without Retry-After wait the jittered exponential
 * back-off, each wait drawn from the upper half of BACKOFF's doubling step, so a crowd thrown
 * off together comes back spread out. Any other answer (a 4xx that means what it says) is final.
 */
export function retryDelay(e, attempt, random = Math.random) {
  const status = e?.status;
  if ((status === 429 || status === 503) && e.retryAfter) return e.retryAfter + random() * 2;
  if (status === 0 || (status >= 500 && status <= 599)) {
    const step = Math.min(BACKOFF.capS, BACKOFF.baseS * 2 ** Math.min(attempt, 16));
    return step / 2 + random() * (step / 2);
  }
  return null;
}

/**
 * Calls `fn` until it resolves, waiting retryDelay() between tries (`onWait(seconds, error)`
 * is told first), for at most `attempts` tries; then, or on a final answer, rejects with the
 * last error. `sleep` and `random` are there for tests.
 */
export async function retrying(fn, { attempts = 20, onWait = () => {}, random = Math.random, sleep } = {}) {
  const pause = sleep ?? ((s) => new Promise((r) => setTimeout(r, s * 1000)));
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const wait = attempt + 1 < attempts ? retryDelay(e, attempt, random) : null;
      if (wait === null) throw e;
      onWait(wait, e);
      await pause(wait);
    }
  }
}

const tokenKey = (space) => `tribune.session.${space}`;

/** This browser's participant in `space`: { token, sub, name, role, exp } or null. */
export function loadSession(space) {
  try {
    const s = JSON.parse(localStorage.getItem(tokenKey(space)) || 'null');
    if (!s || !s.token) return null;
    if (s.exp && s.exp * 1000 < Date.now()) return { ...s, expired: true };
    return s;
  } catch {
    return null;
  }
}

/** Remembers the participant for `space` (null forgets it). */
export function saveSession(space, session) {
  try {
    if (session) localStorage.setItem(tokenKey(space), JSON.stringify(session));
    else localStorage.removeItem(tokenKey(space));
  } catch {
    // Private mode or storage full: the page still works until it is closed.
  }
}

/** Claims of a JWT (not verified: the server does that), or null. */
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return null;
  }
}

/** A session from a token alone (e.g. a host or co-host link). */
export function sessionFromToken(token) {
  const c = claims(token);
  if (!c || !c.sub) return null;
  return { token, sub: c.sub, name: c.name, role: c.role, exp: c.exp, space: c.space };
}

export function loadName() {
  try {
    return localStorage.getItem('tribune.name') || '';
  } catch {
    return '';
  }
}

export function saveName(name) {
  try {
    localStorage.setItem('tribune.name', name);
  } catch {
    // ignored: see saveSession
  }
}

export function loadAdminKey() {
  try {
    return localStorage.getItem('tribune.adminKey') || '';
  } catch {
    return '';
  }
}

export function saveAdminKey(key) {
  try {
    if (key) localStorage.setItem('tribune.adminKey', key);
    else localStorage.removeItem('tribune.adminKey');
  } catch {
    // ignored: see saveSession
  }
}
