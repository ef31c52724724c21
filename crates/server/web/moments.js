// The replay's pure parts (tested under Node by tests/web/public.mjs): a moment in a link
// (`?t=90`, `?t=1m30s`, `?t=1:30`, `?t=1h2m3s`) and chapters from the speaking timeline.

/** Seconds meant by a `t` parameter, or null for anything else (negative, garbage, absurd). */
export function parseMoment(t) {
  if (typeof t !== 'string') return null;
  const s = t.trim();
  let v = null;
  if (/^\d+(\.\d+)?s?$/.test(s)) v = parseFloat(s);
  else if (/^\d+(:[0-5]\d){1,2}$/.test(s)) v = s.split(':').reduce((acc, x) => acc * 60 + Number(x), 0);
  else {
    const m = s.match(/^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/);
    if (m && (m[1] || m[2] || m[3])) v = Number(m[1] || 0) * 3600 + Number(m[2] || 0) * 60 + Number(m[3] || 0);
  }
  return v !== null && Number.isFinite(v) && v >= 0 && v < 1e7 ? v : null;
}

/** The `t` value of a link to `seconds` into a replay: "1h2m3s", "1m30s", "45s". */
export function momentParam(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

/**
 * Chapters from who spoke when: consecutive segments (by start) of the same speaker, apart by
 * less than `gapMs`, are one chapter; returns [{ sub, name, start_ms, end_ms }] in order.
 */
export function chapters(segments, gapMs = 4000) {
  const out = [];
  for (const s of [...segments].sort((a, b) => a.start_ms - b.start_ms)) {
    const last = out[out.length - 1];
    if (last && last.sub === s.sub && s.start_ms - last.end_ms < gapMs) {
      last.end_ms = Math.max(last.end_ms, s.end_ms);
    } else {
      out.push({ sub: s.sub, name: s.name, start_ms: s.start_ms, end_ms: s.end_ms });
    }
  }
  return out;
}

const TS = /^(?:(\d+):)?([0-5]\d):([0-5]\d)\.(\d{3})$/;

/** Milliseconds of a WebVTT timestamp (`01:02:03.004` or `02:03.004`), or null. */
export function vttTime(s) {
  const m = TS.exec(s);
  if (!m) return null;
  return ((Number(m[1] || 0) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]);
}

/**
 * The cues of a WebVTT text: [{ start_ms, end_ms, text }] (header, NOTE/STYLE/REGION blocks
 * and cue settings skipped, entities decoded). Malformed blocks are skipped; anything that is
 * not WebVTT gives [].
 */
export function parseVtt(text) {
  if (typeof text !== 'string') return [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  if (!/^WEBVTT(?:[ \t].*)?$/.test(lines[0] || '')) return [];
  const cues = [];
  let i = 1;
  while (i < lines.length && lines[i] !== '') i++;
  while (i < lines.length) {
    while (i < lines.length && lines[i] === '') i++;
    const block = [];
    while (i < lines.length && lines[i] !== '') block.push(lines[i++]);
    if (!block.length || /^(NOTE|STYLE|REGION)\b/.test(block[0])) continue;
    const t = block[0].includes('-->') ? 0 : block[1]?.includes('-->') ? 1 : -1;
    if (t < 0) continue;
    const [a, rest] = block[t].split('-->');
    const start = vttTime(a.trim());
    const end = vttTime((rest || '').trim().split(/\s+/)[0]);
    if (start === null || end === null || end <= start) continue;
    const body = block.slice(t + 1).join('\n')
      .replace(/<[^>]*>/g, '')
      .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&nbsp;/g, '\u00a0').replace(/&amp;/g, '&');
    cues.push({ start_ms: start, end_ms: end, text: body });
  }
  return cues;
}
