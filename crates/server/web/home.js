// The home page: spaces live now (with listener counts), scheduled ones (with start times),
// ended ones (with their replay); and, for the operator, a form to create or schedule a space.

import { api, loadAdminKey, saveAdminKey, saveSession, loadName, saveName } from './api.js';
import { h, replace, announce, formatStart, relativeStart, count } from './ui.js';

const REFRESH_MS = 10000;

export async function showHome(main) {
  document.title = 'tribune';
  const lists = h('div', { class: 'lists' });
  replace(main,
    h('h1', {}, 'Spaces'),
    lists,
    createForm(),
  );
  const refresh = async () => {
    try {
      const { spaces } = await api('GET', '/api/spaces');
      render(lists, spaces);
    } catch (e) {
      replace(lists, h('p', { class: 'error' }, `Cannot load the spaces: ${e.message}`));
    }
  };
  await refresh();
  const timer = setInterval(() => document.visibilityState === 'visible' && refresh(), REFRESH_MS);
  addEventListener('pagehide', () => clearInterval(timer), { once: true });
}

function render(root, spaces) {
  const live = spaces.filter((s) => s.state === 'live' || s.state === 'interrupted')
    .sort((a, b) => b.listeners - a.listeners);
  const scheduled = spaces.filter((s) => s.state === 'scheduled')
    .sort((a, b) => (a.starts_at ?? 0) - (b.starts_at ?? 0));
  const ended = spaces.filter((s) => s.state === 'ended')
    .sort((a, b) => b.created_at - a.created_at);
  replace(root,
    section('Live now', 'live', live, (s) => [
      h('a', { href: `/spaces/${encodeURIComponent(s.id)}`, class: 'title' }, s.title),
      h('span', { class: 'meta' },
        s.state === 'interrupted' ? h('span', { class: 'badge warn' }, 'reconnecting') : h('span', { class: 'badge live' }, 'live'),
        ' ', `${count(s.listeners)} listening`,
        s.speakers.length ? ` · ${s.speakers.map((p) => p.name).join(', ')}` : ''),
    ], 'Nothing is live right now.'),
    section('Scheduled', 'scheduled', scheduled, (s) => [
      h('a', { href: `/spaces/${encodeURIComponent(s.id)}`, class: 'title' }, s.title),
      h('span', { class: 'meta' }, s.starts_at
        ? h('time', { datetime: new Date(s.starts_at * 1000).toISOString() }, `${formatStart(s.starts_at)} (${relativeStart(s.starts_at)})`)
        : 'starts when the host is ready'),
    ], 'Nothing scheduled.'),
    section('Ended', 'ended', ended.slice(0, 50), (s) => [
      h('span', { class: 'title' }, s.title),
      h('span', { class: 'meta' },
        h('a', { href: `/spaces/${encodeURIComponent(s.id)}/replay`, 'aria-label': `Replay ${s.title}` }, 'Replay'),
        ' · ', new Date(s.created_at * 1000).toLocaleDateString()),
    ], 'No recordings yet.'),
  );
}

function section(title, key, items, row, empty) {
  const id = `list-${key}`;
  return h('section', { class: `spaces ${key}`, 'aria-labelledby': id },
    h('h2', { id }, title, ' ', h('span', { class: 'count' }, `(${items.length})`)),
    items.length
      ? h('ul', { class: 'cards' }, items.map((s) => h('li', { class: 'card', dataset: { space: s.id } }, row(s))))
      : h('p', { class: 'muted' }, empty));
}

function field(label, input, hint) {
  const id = `f-${label.toLowerCase().replace(/\W+/g, '-')}`;
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('small', { class: 'muted' }, hint) : null);
}

function createForm() {
  const key = h('input', { type: 'password', name: 'key', autocomplete: 'current-password', required: true, value: loadAdminKey() });
  const remember = h('input', { type: 'checkbox', name: 'remember', checked: !!loadAdminKey() });
  const title = h('input', { type: 'text', name: 'title', maxlength: 120, required: true, placeholder: 'What is it about?' });
  const description = h('textarea', { name: 'description', maxlength: 2000, rows: 2 });
  const hostName = h('input', { type: 'text', name: 'host_name', maxlength: 64, value: loadName() || '', placeholder: 'Host' });
  const starts = h('input', { type: 'datetime-local', name: 'starts_at' });
  const status = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create space');
  const form = h('form', { class: 'create', novalidate: false },
    field('Operator key', key, 'The server\'s admin key. Only the operator creates spaces.'),
    h('div', { class: 'field inline' }, remember, h('label', { for: 'f-remember' }, 'Remember the key on this device')),
    field('Title', title),
    field('Description', description),
    field('Your name', hostName, 'Shown as the host.'),
    field('Starts at', starts, 'Leave empty to go live now; otherwise the space is scheduled and you start it.'),
    submit,
    status);
  remember.id = 'f-remember';
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { title: title.value.trim() || 'Untitled space' };
    if (description.value.trim()) body.description = description.value.trim();
    if (hostName.value.trim()) body.host_name = hostName.value.trim();
    if (starts.value) {
      const t = new Date(starts.value).getTime();
      if (!Number.isFinite(t)) {
        status.textContent = 'The start time is not a valid date.';
        return;
      }
      body.starts_at = Math.floor(t / 1000);
    }
    submit.disabled = true;
    status.textContent = 'Creating…';
    try {
      const created = await api('POST', '/api/spaces', { token: key.value.trim(), body });
      saveAdminKey(remember.checked ? key.value.trim() : '');
      if (hostName.value.trim()) saveName(hostName.value.trim());
      const claims = JSON.parse(atob(created.host_token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      saveSession(created.id, {
        token: created.host_token, sub: created.host_sub, name: body.host_name || 'Host', role: 'host', exp: claims.exp,
      });
      announce(`Created “${created.title}”.`);
      location.assign(`/spaces/${encodeURIComponent(created.id)}`);
    } catch (e) {
      status.textContent = e.status === 401 || e.status === 403 ? 'That is not the operator key.' : `Could not create the space: ${e.message}`;
      submit.disabled = false;
    }
  });
  return h('details', { class: 'operator', open: true },
    h('summary', {}, 'Create or schedule a space (operator)'),
    form);
}
