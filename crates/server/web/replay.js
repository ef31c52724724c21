// The replay page: one player (ours: play, a position slider, the times, a link to this moment),
// one lane per speaker with a playhead, and chapters from who spoke when, each seeking to its
// moment. `?t=90` (or `1m30s`, `1:30`) starts the replay there.
//
// The recording is the Ogg/Opus file (seekable through HTTP Range) where the browser plays Ogg
// Opus, else the HLS DVR playlist (hls.js, or Safari's own HLS). The timeline comes from
// `GET /api/spaces/{id}/timeline` (milliseconds into the recording). The audio element has no
// controls of its own, so the page shows exactly one player.

import { api } from './api.js';
import { h, replace, clock, avatar, formatStart, duration, copyButton } from './ui.js';
import { audioContext, analyser } from './player.js';
import { parseMoment, momentParam, chapters, parseVtt } from './moments.js';

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
  const start = parseMoment(new URLSearchParams(location.search).get('t'));
  const segs = timeline.segments;
  const known = space.started_at && space.ended_at ? (space.ended_at - space.started_at) * 1000 : 0;
  let total = Math.max(known, ...segs.map((s) => s.end_ms), 1);

  const audio = h('audio', { id: 'replay-audio', preload: 'metadata', 'aria-hidden': 'true' });
  const play = h('button', { type: 'button', class: 'primary play', id: 'play', 'data-control': 'play' }, 'Play');
  const seek = h('input', { type: 'range', class: 'seek', id: 'seek', min: 0, max: Math.round(total / 1000), step: 1, value: start ?? 0, 'aria-label': 'Position', 'data-control': 'seek' });
  const now = h('span', { id: 'now' }, clock((start ?? 0) * 1000));
  const end = h('span', { id: 'total' }, clock(total));
  const lanes = h('div', { class: 'lanes', 'aria-hidden': 'true' });
  const captionList = h('ol', { class: 'captions-list', 'aria-label': 'Captions' });
  const captionSearch = h('input', { type: 'search', id: 'caption-q', placeholder: 'Search what was said', autocomplete: 'off', 'data-control': 'caption-search' });
  const captionCount = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const captionCard = h('section', { class: 'card', 'aria-labelledby': 'cap-h', hidden: true },
    h('h2', { id: 'cap-h' }, 'Captions'),
    h('div', { class: 'field' }, h('label', { for: 'caption-q' }, 'Search the captions'), captionSearch),
    captionCount,
    captionList,
    h('p', { class: 'small muted' }, h('a', { href: `/spaces/${encodeURIComponent(id)}/captions.vtt`, download: `${id}.vtt` }, 'Download the captions (WebVTT)')));
  const list = h('ol', { class: 'chapters', 'aria-label': 'Timeline' });
  const when = space.ended_at ?? space.started_at;
  replace(main,
    h('p', { class: 'status-line' },
      h('span', { class: 'badge ended' }, 'replay'),
      when ? h('span', {}, h('time', { datetime: new Date(when * 1000).toISOString() }, formatStart(when))) : null,
      space.started_at && space.ended_at ? h('span', {}, duration(space.ended_at - space.started_at)) : null,
      h('span', { class: 'spacer' }),
      copyButton('Copy link', `${location.origin}/spaces/${encodeURIComponent(id)}/replay`, { ariaLabel: 'Copy link to this replay' })),
    h('h1', {}, space.title),
    space.description ? h('p', { class: 'description open' }, space.description) : null,
    space.state !== 'ended'
      ? h('div', { class: 'notice' }, h('p', {}, 'This space is still on: ', h('a', { href: `/spaces/${encodeURIComponent(id)}` }, 'join it live'), '. The recording below grows as it goes.'))
      : null,
    h('section', { class: 'card', 'aria-labelledby': 'rec-h' },
      h('h2', { id: 'rec-h' }, 'Recording'),
      audio,
      h('div', { class: 'player-row' }, play,
        copyButton('Copy link to this moment', () => momentUrl(), { control: 'copy-moment' })),
      seek,
      h('div', { class: 'times' }, now, end),
      start ? h('p', { class: 'muted small', id: 'starts-at' }, `Starts at ${clock(start * 1000)} (from the link).`) : null,
      h('p', { class: 'small muted' }, h('a', { href: space.recording_url, download: `${id}.opus`, 'data-control': 'download' }, 'Download the recording (Ogg/Opus)'))),
    h('section', { class: 'card', 'aria-labelledby': 'tl-h' },
      h('h2', { id: 'tl-h' }, 'Who spoke when'),
      lanes,
      list),
    captionCard);
  const momentUrl = () => `${location.origin}/spaces/${encodeURIComponent(id)}/replay?t=${momentParam(audio.currentTime || Number(seek.value) || 0)}`;

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
  if (start) audio.addEventListener('loadedmetadata', () => { if (audio.currentTime < 0.5) audio.currentTime = start; }, { once: true });
  audio.addEventListener('durationchange', () => {
    if (Number.isFinite(audio.duration) && audio.duration > 0) {
      total = audio.duration * 1000;
      seek.max = String(Math.round(audio.duration));
      end.textContent = clock(total);
      drawLanes();
    }
  });

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
    if (audio.paused) {
      if (start && audio.currentTime < 0.5) audio.currentTime = start;
      await audio.play().catch((e) => console.warn(e));
    } else {
      audio.pause();
    }
  });
  audio.addEventListener('play', () => {
    route();
    play.textContent = 'Pause';
  });
  audio.addEventListener('pause', () => {
    play.textContent = 'Play';
  });
  let dragging = false;
  seek.addEventListener('input', () => {
    dragging = true;
    now.textContent = clock(Number(seek.value) * 1000);
  });
  seek.addEventListener('change', () => {
    dragging = false;
    audio.currentTime = Number(seek.value);
  });
  const playheads = [];
  audio.addEventListener('timeupdate', () => {
    const ms = audio.currentTime * 1000;
    if (!dragging) {
      seek.value = String(Math.floor(audio.currentTime));
      now.textContent = clock(ms);
    }
    seek.setAttribute('aria-valuetext', `${clock(ms)} of ${clock(total)}`);
    for (const p of playheads) p.style.left = `${Math.min(100, (100 * ms) / total)}%`;
    for (const li of [...list.querySelectorAll('li[data-start]'), ...captionList.querySelectorAll('li[data-start]')]) {
      li.classList.toggle('now', ms >= Number(li.dataset.start) && ms < Number(li.dataset.end));
    }
  });

  const seekTo = async (ms) => {
    route();
    audio.currentTime = ms / 1000;
    if (audio.paused) await audio.play().catch(() => {});
  };

  // The captions, when the space has them: every line seeks to its moment; search filters.
  fetch(`/spaces/${encodeURIComponent(id)}/captions.vtt`).then(async (res) => {
    if (!res.ok) return;
    const cues = parseVtt(await res.text());
    if (!cues.length) return;
    captionCard.hidden = false;
    const show = () => {
      const q = captionSearch.value.trim().toLocaleLowerCase();
      const hits = q ? cues.filter((c) => c.text.toLocaleLowerCase().includes(q)) : cues;
      captionCount.textContent = q ? `${hits.length} of ${cues.length} lines match “${captionSearch.value.trim()}”` : `${cues.length} lines`;
      replace(captionList, hits.map((c) => h('li', { 'data-start': c.start_ms, 'data-end': c.end_ms },
        h('button', { type: 'button', onclick: () => seekTo(c.start_ms) },
          h('span', { class: 'when' }, clock(c.start_ms)), ' ', h('span', { class: 'text' }, c.text)))));
    };
    captionSearch.addEventListener('input', show);
    show();
    window.tribune.replay.captions = cues;
  }).catch(() => {});

  const chs = chapters(segs);
  const drawLanes = () => {
    const names = [...new Map(segs.map((s) => [s.sub, s.name])).entries()];
    playheads.length = 0;
    replace(lanes, names.map(([sub, name]) => {
      const head = h('span', { class: 'playhead' });
      playheads.push(head);
      return h('div', { class: 'lane' },
        h('span', { class: 'lane-name', title: name }, name),
        h('span', { class: 'lane-track' }, segs.filter((s) => s.sub === sub).map((s) => h('span', {
          class: 'seg',
          style: `left:${(100 * s.start_ms) / total}%;width:${Math.max(0.4, (100 * (s.end_ms - s.start_ms)) / total)}%`,
          title: `${name} ${clock(s.start_ms)}–${clock(s.end_ms)}`,
          onclick: () => seekTo(s.start_ms),
        })), head));
    }));
  };
  window.tribune.replay = { audio, hls, chapters: chs, start };
  window.tribune.state = { page: 'replay', lifecycle: space.state };
  if (!chs.length) {
    replace(list, h('li', { class: 'muted' }, 'Nobody spoke long enough to be on the timeline.'));
    return;
  }
  drawLanes();
  replace(list, chs.map((c) => h('li', { 'data-start': c.start_ms, 'data-end': c.end_ms, 'data-sub': c.sub },
    h('button', { type: 'button', onclick: () => seekTo(c.start_ms) },
      avatar(c.name, c.sub),
      h('span', { class: 'name', title: c.name }, c.name),
      h('span', { class: 'when' }, `${clock(c.start_ms)}–${clock(c.end_ms)}`)))));
}
