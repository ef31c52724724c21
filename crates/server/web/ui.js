// Small DOM and formatting helpers shared by the pages. No framework: `h()` builds elements,
// `announce()` speaks a short message through the page's polite live region.

/**
 * Builds an element: h('button', { class: 'x', onclick: f, 'aria-label': 'Play' }, 'Play').
 * Attributes starting with `on` become listeners; `null`/`false` attributes are skipped;
 * children may be strings, nodes, arrays, or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    // Through the CSSOM: the Content-Security-Policy blocks style attributes set as markup.
    else if (k === 'style') el.style.cssText = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let toastTimer = null;

/** Shows `msg` briefly and has screen readers read it. */
export function announce(msg) {
  const t = document.getElementById('toast');
  if (!t) return;
  t.textContent = msg;
  t.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove('show'), 5000);
}

/** "Tue 3 Dec, 19:30" in the user's locale, from Unix seconds. */
export function formatStart(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
  });
}

/** "in 5 min", "in 2 h 10 min", "now" from Unix seconds. */
export function relativeStart(unixSeconds) {
  const s = Math.round(unixSeconds - Date.now() / 1000);
  if (s <= 0) return 'any moment now';
  const m = Math.round(s / 60);
  if (m < 1) return `in ${s} s`;
  if (m < 60) return `in ${m} min`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `in ${hrs} h ${m % 60} min`;
  return `in ${Math.round(hrs / 24)} days`;
}

/** "1:02:03" or "2:03" from milliseconds. */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = String(total % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** A count for people: 1234 → "1,234", 1234567 → "1.2 M". */
export function count(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)} M`;
  return Number(n).toLocaleString();
}

/** Up to two initials of a display name, for avatars. */
export function initials(name) {
  return (name || '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0]).join('').toUpperCase();
}

/** Role names as shown. */
export const ROLE_LABEL = { host: 'Host', cohost: 'Co-host', speaker: 'Speaker', listener: 'Listener' };

/** Exponential back-off: 1 s, 2 s, 4 s … capped at `max` ms, with ±20 % jitter. */
export function backoff(attempt, max = 15000) {
  const base = Math.min(max, 1000 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** Sleeps `ms`. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
