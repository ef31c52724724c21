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

/** "Tue 3 Dec, 19:30 CET" in the user's locale and time zone, from Unix seconds. */
export function formatStart(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
  });
}

/** The user's time zone, e.g. "Europe/Paris" (or "" when the browser does not say). */
export function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    return '';
  }
}

/** "in 5 min", "in 2 h 10 min", "in 3 days" from Unix seconds; "any moment now" once due. */
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

/** A countdown to Unix seconds: "2 days 3 h 04 min", "1:02:03", "4:05"; null once due. */
export function countdown(unixSeconds) {
  const s = Math.floor(unixSeconds - Date.now() / 1000);
  if (s <= 0) return null;
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const p = (n) => String(n).padStart(2, '0');
  if (d) return `${d} day${d > 1 ? 's' : ''} ${hh} h ${p(mm)} min`;
  return hh ? `${hh}:${p(mm)}:${p(s % 60)}` : `${mm}:${p(s % 60)}`;
}

/** "42 min", "1 h 05 min", "35 s" from seconds. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** Characters as people see them (extended grapheme clusters): 20 family emoji are 20. */
export function graphemes(text) {
  if (typeof Intl !== 'undefined' && Intl.Segmenter) {
    let n = 0;
    for (const _ of new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)) n++;
    return n;
  }
  return [...text].length;
}

/** A stable colour for a participant (a hue from their id), dark enough for white initials. */
export function avatarColor(sub) {
  let hash = 2166136261;
  for (const c of String(sub || '')) hash = Math.imul(hash ^ c.codePointAt(0), 16777619);
  return `hsl(${(hash >>> 0) % 360} 50% 32%)`;
}

/** The avatar of a participant: initials on their colour. */
export function avatar(name, sub, extra = null) {
  return h('span', { class: 'avatar', 'aria-hidden': 'true', style: `background:${avatarColor(sub)}` }, initials(name), extra);
}

/**
 * Copies `text` to the clipboard (the async API where allowed, else a selected text area);
 * resolves to true when it worked. `window.tribune.copied` keeps the last text copied.
 */
export async function copyText(text) {
  window.tribune = window.tribune || {};
  window.tribune.copied = text;
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const t = h('textarea', { 'aria-hidden': 'true', readonly: true, style: 'position:fixed;top:0;left:0;opacity:0;width:1px;height:1px' });
    t.value = text;
    document.body.append(t);
    t.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    t.remove();
    return ok;
  }
}

/** A "Copy link" button: copies `url()` (absolute) and says so. */
export function copyButton(label, url, { cls = 'small', ariaLabel, control = 'copy-link' } = {}) {
  return h('button', {
    type: 'button', class: cls, 'data-control': control, 'aria-label': ariaLabel || null,
    onclick: async () => {
      const u = typeof url === 'function' ? url() : url;
      announce((await copyText(u)) ? 'Link copied.' : `Copy this link: ${u}`);
    },
  }, label);
}

/**
 * Asks to confirm in an in-page dialog (modal, focus trapped by the browser, Escape cancels).
 * Resolves to true when `confirmLabel` is pressed.
 */
export function confirmDialog({ title, body, confirmLabel, danger = true }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'danger solid' : 'primary', 'data-control': 'confirm' }, confirmLabel);
    const cancel = h('button', { type: 'button', 'data-control': 'cancel' }, 'Cancel');
    const d = h('dialog', { 'aria-labelledby': 'dialog-h', 'aria-describedby': 'dialog-p' },
      h('h2', { id: 'dialog-h' }, title),
      h('p', { id: 'dialog-p' }, body),
      h('div', { class: 'row' }, cancel, ok));
    let answered = false;
    const done = (v) => {
      if (answered) return;
      answered = true;
      d.close();
      d.remove();
      resolve(v);
    };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    d.addEventListener('close', () => done(false));
    document.body.append(d);
    d.showModal();
    cancel.focus();
  });
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
