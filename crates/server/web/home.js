// The home page: spaces live now (with listener counts and who is on stage), scheduled ones
// (local start time with time zone, a countdown, "Add to calendar"), ended ones (when, how long,
// the replay); a copy-link button on each; and, for the operator, a form to create or schedule
// a space. Text limits count characters as people see them (graphemes), like the server.

import { api, loadAdminKey, saveAdminKey, saveSession, loadName, saveName, claims } from './api.js';
import { h, replace, announce, formatStart, relativeStart, count, duration, graphemes, copyButton, timeZone } from './ui.js';

const REFRESH_MS = 10000;
/** The server's limits (crates/server/src/api/mod.rs), in graphemes. */
const LIMITS = { title: 120, description: 2000, name: 64 };

export async function showHome(main) {
  document.title = 'tribune · live audio rooms';
  const lists = h('div', { class: 'lists' });
  replace(main,
    h('h1', {}, 'Spaces'),
    h('p', { class: 'muted' }, 'Live conversations you can listen to, the ones coming up, and the replays.'),
    lists,
    createForm(),
  );
  const refresh = async () => {
    try {
      const { spaces } = await api('GET', '/api/spaces');
      render(lists, spaces);
    } catch (e) {
      replace(lists, h('p', { class: 'error', role: 'alert' }, `Cannot load the spaces: ${e.message}`));
    }
  };
  await refresh();
  window.tribune.state = { page: 'home' };
  const timer = setInterval(() => document.visibilityState === 'visible' && refresh(), REFRESH_MS);
  addEventListener('pagehide', () => clearInterval(timer), { once: true });
}

const spaceUrl = (s) => new URL(`/spaces/${encodeURIComponent(s.id)}`, location.href).href;

function render(root, spaces) {
  const live = spaces.filter((s) => s.state === 'live' || s.state === 'interrupted')
    .sort((a, b) => b.listeners - a.listeners);
  const scheduled = spaces.filter((s) => s.state === 'scheduled')
    .sort((a, b) => (a.starts_at ?? 0) - (b.starts_at ?? 0));
  const ended = spaces.filter((s) => s.state === 'ended')
    .sort((a, b) => (b.ended_at ?? b.created_at) - (a.ended_at ?? a.created_at));
  const link = (s, href = `/spaces/${encodeURIComponent(s.id)}`) => h('a', { href, class: 'title', title: s.title }, s.title);
  replace(root,
    section('Live now', 'live', live, (s) => [
      h('div', { class: 'body' },
        link(s),
        h('span', { class: 'meta' },
          s.state === 'interrupted' ? h('span', { class: 'badge warn' }, 'reconnecting') : h('span', { class: 'badge live' }, 'live'),
          h('span', {}, `${count(s.listeners)} listening`),
          s.speakers.length ? h('span', { class: 'speakers' }, s.speakers.map((p) => p.name).join(', ')) : null)),
      h('div', { class: 'actions' }, copyButton('Copy link', () => spaceUrl(s), { ariaLabel: `Copy link to ${s.title}` })),
    ], 'Nothing is live right now.'),
    section('Scheduled', 'scheduled', scheduled, (s) => [
      h('div', { class: 'body' },
        link(s),
        h('span', { class: 'meta' }, s.starts_at
          ? [h('time', { class: 'when', datetime: new Date(s.starts_at * 1000).toISOString() }, formatStart(s.starts_at)),
            h('span', {}, relativeStart(s.starts_at))]
          : 'starts when the host is ready')),
      h('div', { class: 'actions' },
        copyButton('Copy link', () => spaceUrl(s), { ariaLabel: `Copy link to ${s.title}` }),
        h('a', { class: 'button small', href: `/spaces/${encodeURIComponent(s.id)}/calendar.ics`, download: `${s.id}.ics`, 'aria-label': `Add to calendar: ${s.title}` }, 'Add to calendar')),
    ], 'Nothing scheduled.'),
    section('Ended', 'ended', ended.slice(0, 50), (s) => {
      const replay = `/spaces/${encodeURIComponent(s.id)}/replay`;
      const when = s.ended_at ?? s.started_at ?? s.created_at;
      return [
        h('div', { class: 'body' },
          link(s, replay),
          h('span', { class: 'meta' },
            h('time', { class: 'when', datetime: new Date(when * 1000).toISOString() }, `Ended ${formatStart(when)}`),
            s.started_at && s.ended_at ? h('span', { class: 'length' }, duration(s.ended_at - s.started_at)) : null)),
        h('div', { class: 'actions' },
          h('a', { class: 'button small primary', href: replay, 'aria-label': `Replay ${s.title}` }, 'Replay'),
          copyButton('Copy link', () => new URL(replay, location.href).href, { ariaLabel: `Copy link to the replay of ${s.title}` })),
      ];
    }, 'No recordings yet.'),
  );
}

function section(title, key, items, row, empty) {
  const id = `list-${key}`;
  return h('section', { class: `card spaces ${key}`, 'aria-labelledby': id },
    h('h2', { id }, title, ' ', h('span', { class: 'count' }, `(${items.length})`)),
    items.length
      ? h('ul', { class: 'cards' }, items.map((s) => h('li', { dataset: { space: s.id, state: s.state } }, row(s))))
      : h('p', { class: 'muted' }, empty));
}

/** A labelled field; with `limit`, a live "n/limit" counter in graphemes. */
function field(label, input, hint, limit) {
  const id = `f-${label.toLowerCase().replace(/\W+/g, '-')}`;
  input.id = id;
  const counter = limit ? h('span', { class: 'counter', id: `${id}-count`, 'aria-live': 'off' }, `0/${limit}`) : null;
  if (limit) {
    const update = () => {
      const n = graphemes(input.value.trim());
      counter.textContent = `${n}/${limit}`;
      counter.classList.toggle('over', n > limit);
      input.setAttribute('aria-invalid', String(n > limit));
    };
    input.addEventListener('input', update);
    update();
  }
  const hintEl = hint || counter
    ? h('small', { class: 'hint', id: `${id}-hint` }, h('span', {}, hint || ''), counter)
    : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

function createForm() {
  const key = h('input', { type: 'password', name: 'key', autocomplete: 'current-password', required: true, value: loadAdminKey() });
  const remember = h('input', { type: 'checkbox', name: 'remember', checked: !!loadAdminKey() });
  const title = h('input', { type: 'text', name: 'title', required: true, placeholder: 'What is it about?' });
  const description = h('textarea', { name: 'description', rows: 3 });
  const hostName = h('input', { type: 'text', name: 'host_name', value: loadName() || '', placeholder: 'Host', autocomplete: 'nickname' });
  const starts = h('input', { type: 'datetime-local', name: 'starts_at' });
  const status = h('p', { class: 'form-status', id: 'create-status', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create space');
  const tz = timeZone();
  const form = h('form', { class: 'create' },
    field('Operator key', key, 'The server\'s admin key. Only the operator creates spaces.'),
    h('div', { class: 'field inline' }, remember, h('label', { for: 'f-remember' }, 'Remember the key on this device')),
    field('Title', title, null, LIMITS.title),
    field('Description', description, null, LIMITS.description),
    field('Your name', hostName, 'Shown as the host.', LIMITS.name),
    field('Starts at', starts, `Your time${tz ? ` (${tz})` : ''}. Leave empty to go live now; otherwise the space is scheduled and you start it.`),
    submit,
    status);
  remember.id = 'f-remember';
  const problem = (msg, input) => {
    status.textContent = msg;
    status.className = 'form-status error';
    status.setAttribute('role', 'alert');
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  };
  key.addEventListener('input', () => key.removeAttribute('aria-invalid'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.className = 'form-status';
    status.removeAttribute('role');
    for (const [input, what, limit] of [[title, 'The title', LIMITS.title], [description, 'The description', LIMITS.description], [hostName, 'Your name', LIMITS.name]]) {
      if (graphemes(input.value.trim()) > limit) return problem(`${what} is longer than ${limit} characters.`, input);
    }
    const body = { title: title.value.trim() || 'Untitled space' };
    if (description.value.trim()) body.description = description.value.trim();
    if (hostName.value.trim()) body.host_name = hostName.value.trim();
    if (starts.value) {
      const t = new Date(starts.value).getTime();
      if (!Number.isFinite(t)) return problem('The start time is not a valid date.', starts);
      body.starts_at = Math.floor(t / 1000);
    }
    submit.disabled = true;
    status.textContent = 'Creating…';
    try {
      const created = await api('POST', '/api/spaces', { token: key.value.trim(), body });
      saveAdminKey(remember.checked ? key.value.trim() : '');
      if (hostName.value.trim()) saveName(hostName.value.trim());
      const c = claims(created.host_token) || {};
      saveSession(created.id, {
        token: created.host_token, sub: created.host_sub, name: body.host_name || 'Host', role: 'host', exp: c.exp,
      });
      location.assign(`/spaces/${encodeURIComponent(created.id)}?created=1`);
    } catch (e) {
      submit.disabled = false;
      if (e.status === 401 || e.status === 403) problem('That is not the operator key.', key);
      else problem(`Could not create the space: ${e.message}`);
    }
  });
  return h('details', { class: 'card operator', open: true },
    h('summary', {}, 'Create or schedule a space (operator)'),
    form);
}
