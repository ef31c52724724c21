// The replay page: the space's recording with seeking, and the timeline of who spoke.
// The recording is the Ogg/Opus file (seekable through HTTP Range) where the browser plays Ogg
// Opus, else the HLS DVR playlist (hls.js, or Safari's own HLS). The timeline comes from
// `GET /api/spaces/{id}/timeline` (milliseconds into the recording): one lane per speaker, and
// a list of segments that seek when chosen.

import { api } from './api.js';
import { h, replace, clock } from './ui.js';
import { audioContext, analyser } from './player.js';

export async function showReplay(main, id) {
  const base = `/api/spaces/${encodeURIComponent(id)}`;
  let space;
  let timeline;
  try {
    [space, timeline] = await Promise.all([api('GET', base), api('GET', `${base}/timeline`)]);
  } catch (e) {
    document.title = 'Replay not found · tribune';
    replace(main, h('h1', {}, e.status === 404 ? 'No such space' : 'Cannot load this replay'),
      h('p', { class: 'error' }, e.message), h('p', {}, h('a', { href: '/' }, 'See the spaces')));
    return;
  }
  document.title = `${space.title} (replay) · tribune`;
  const audio = h('audio', { id: 'replay-audio', controls: true, preload: 'metadata', 'aria-label': `Recording of ${space.title}` });
  const play = h('button', { type: 'button', class: 'primary', id: 'play' }, 'Play');
  const where = h('span', { class: 'muted', 'aria-live': 'off' }, '0:00');
  const lanes = h('div', { class: 'lanes', 'aria-hidden': 'true' });
  const list = h('ol', { class: 'timeline', 'aria-label': 'Timeline' });
  replace(main,
    h('h1', {}, space.title, h('span', { class: 'muted' }, ' — replay')),
    space.description ? h('p', { class: 'description' }, space.description) : null,
    space.state !== 'ended'
      ? h('p', { class: 'notice' }, 'This space is still on: ', h('a', { href: `/spaces/${encodeURIComponent(id)}` }, 'join it live'), '. The recording below grows as it goes.')
      : null,
    h('section', { class: 'card', 'aria-labelledby': 'rec-h' },
      h('h2', { id: 'rec-h' }, 'Recording'),
      h('div', { class: 'player-row' }, play, where),
      audio,
      h('p', { class: 'small muted' }, h('a', { href: space.recording_url, download: `${id}.opus` }, 'Download the recording (Ogg/Opus)'))),
    h('section', { class: 'card', 'aria-labelledby': 'tl-h' },
      h('h2', { id: 'tl-h' }, 'Who spoke when'),
      lanes,
      list));

  let hls = null;
  let sourced = false;
  const source = async () => {
    if (sourced) return;
    sourced = true;
    if (audio.canPlayType('audio/ogg; codecs=opus')) {
      audio.src = space.recording_url;
      return;
    }
    const dvr = `/spaces/${encodeURIComponent(id)}/hls/dvr.m3u8`;
    const Hls = (await import('./hls.light.min.mjs').catch(() => null))?.default;
    if (Hls && Hls.isSupported()) {
      hls = new Hls();
      hls.loadSource(dvr);
      hls.attachMedia(audio);
    } else {
      audio.src = dvr;
    }
  };
  // Browsers fetch only the metadata until asked to play (duration and seeking need the end).
  source();

  let graph = false;
  const route = () => {
    if (graph) return;
    graph = true;
    const ctx = audioContext();
    const an = analyser(ctx);
    ctx.createMediaElementSource(audio).connect(an);
    an.connect(ctx.destination);
    window.tribune.outputAnalyser = an;
  };
  play.addEventListener('click', async () => {
    route();
    if (audio.paused) await audio.play().catch((e) => console.warn(e));
    else audio.pause();
  });
  audio.addEventListener('play', () => {
    route();
    play.textContent = 'Pause';
  });
  audio.addEventListener('pause', () => {
    play.textContent = 'Play';
  });
  audio.addEventListener('timeupdate', () => {
    where.textContent = clock(audio.currentTime * 1000);
    const ms = audio.currentTime * 1000;
    for (const li of list.querySelectorAll('li[data-start]')) {
      const on = ms >= Number(li.dataset.start) && ms < Number(li.dataset.end);
      li.classList.toggle('now', on);
    }
  });

  const seek = async (ms) => {
    route();
    audio.currentTime = ms / 1000;
    if (audio.paused) await audio.play().catch(() => {});
  };

  const segs = timeline.segments;
  if (!segs.length) {
    replace(list, h('li', { class: 'muted' }, 'Nobody spoke long enough to be on the timeline.'));
    return;
  }
  const total = Math.max(...segs.map((s) => s.end_ms), 1);
  const names = [...new Map(segs.map((s) => [s.sub, s.name])).entries()];
  replace(lanes, names.map(([sub, name]) => h('div', { class: 'lane' },
    h('span', { class: 'lane-name' }, name),
    h('span', { class: 'lane-track' }, segs.filter((s) => s.sub === sub).map((s) => h('span', {
      class: 'seg',
      style: `left:${(100 * s.start_ms) / total}%;width:${Math.max(0.4, (100 * (s.end_ms - s.start_ms)) / total)}%`,
      title: `${name} ${clock(s.start_ms)}–${clock(s.end_ms)}`,
      onclick: () => seek(s.start_ms),
    }))))));
  replace(list, segs.map((s) => h('li', { 'data-start': s.start_ms, 'data-end': s.end_ms, 'data-sub': s.sub },
    h('button', { type: 'button', class: 'link', onclick: () => seek(s.start_ms) },
      h('span', { class: 'name' }, s.name), ' ', h('span', { class: 'when' }, `${clock(s.start_ms)}–${clock(s.end_ms)}`)))));
  window.tribune.replay = { audio, hls };
}
