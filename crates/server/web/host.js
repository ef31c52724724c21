// The host's and co-hosts' part of the space page: a menu per speaker on the stage (mute, back
// to the audience, co-host, remove, ban: the last two confirmed in a dialog), the lifecycle
// controls (start, resume, take over, end), links to share (the space, the host's own link for
// another device, speaker invitations), requests to speak, the audience to search and invite
// from, and how loaded the room is. Mixed into the space page's class
// (`Object.assign(SpacePage.prototype, hostMethods)`): `this` is the page.

import { api } from './api.js';
import { h, replace, count, avatar, copyButton, confirmDialog, announce, graphemes } from './ui.js';

export const hostMethods = {
  /** What a moderator may do to `p`: [{ key, label, run }]. */
  moderationActions(p) {
    const iAmHost = this.myRole() === 'host';
    if (p.role === 'host' || (p.role === 'cohost' && !iAmHost)) return [];
    const sure = (verb, what) => async () => {
      const ok = await confirmDialog({
        title: `${verb} ${p.name}?`,
        body: what,
        confirmLabel: verb,
      });
      if (ok) this.act(verb === 'Remove' ? 'remove' : 'ban', p.sub).catch(() => {});
    };
    return [
      p.host_muted
        ? { key: 'unmute', label: 'Unmute', run: () => this.act('unmute', p.sub) }
        : { key: 'mute', label: 'Mute', run: () => this.act('mute', p.sub) },
      { key: 'audience', label: 'Move to audience', run: () => this.act('audience', p.sub) },
      iAmHost && p.role === 'speaker' ? { key: 'cohost', label: 'Make co-host', run: () => this.act('cohost', p.sub) } : null,
      iAmHost && p.role === 'cohost' ? { key: 'uncohost', label: 'Revoke co-host', run: () => this.act('uncohost', p.sub) } : null,
      { key: 'remove', label: 'Remove', danger: true, run: sure('Remove', `${p.name} leaves this space and cannot come back with the same link.`) },
      { key: 'ban', label: 'Ban', danger: true, run: sure('Ban', `${p.name} is banned from this space for good.`) },
    ].filter(Boolean);
  },

  openMenu(sub) {
    this.menuFor = sub;
    this.renderStage();
    this.els.modPanel.querySelector('button')?.focus();
  },

  /** Closes the speaker menu; `refocus` gives focus back to its button. */
  closeMenu(refocus = false) {
    const sub = this.menuFor;
    this.menuFor = null;
    this.renderStage();
    if (refocus && sub) this.els.stage.querySelector(`[data-key="${CSS.escape(`menu:${sub}`)}"]`)?.focus();
  },

  renderModPanel() {
    const panel = this.els.modPanel;
    const p = this.menuFor && this.room.stage.find((x) => x.sub === this.menuFor);
    const actions = p && this.isModerator() ? this.moderationActions(p) : [];
    if (!actions.length) {
      this.menuFor = null;
      panel.hidden = true;
      return replace(panel);
    }
    panel.hidden = false;
    panel.id = 'mod-panel';
    this.keepFocus(panel, () => replace(panel,
      h('h3', { id: 'mod-h' }, avatar(p.name, p.sub), ' ', h('span', { class: 'name' }, p.name)),
      h('div', { class: 'row', role: 'group', 'aria-labelledby': 'mod-h' },
        actions.map((a) => h('button', {
          type: 'button', class: `small ${a.danger ? 'danger' : ''}`, 'data-key': `${a.key}:${p.sub}`,
          'aria-label': `${a.label} ${p.name}`,
          onclick: async () => {
            await Promise.resolve(a.run()).catch(() => {});
            if (!a.danger) this.closeMenu();
          },
        }, a.label)),
        h('button', { type: 'button', class: 'small', 'data-key': `close:${p.sub}`, onclick: () => this.closeMenu(true) }, 'Close'))));
  },

  renderHost() {
    const e = this.els;
    if (!e.host) return;
    const role = this.myRole();
    const lc = this.room.lifecycle;
    const mod = (role === 'host' || role === 'cohost') && lc !== 'ended' && !this.kicked;
    if (e.host.hidden === mod) {
      e.host.hidden = !mod;
      this.renderVisibility();
    }
    if (!mod) return;
    if (!this.audienceAsked) {
      // The audience list is there at once, not after the first poll interval.
      this.audienceAsked = true;
      this.refreshAudience();
    }
    const hostEntry = this.room.stage.find((p) => p.sub === this.room.host);
    const b = (label, key, f, cls = '') => h('button', { type: 'button', class: cls, 'data-key': key, 'data-control': key, onclick: f }, label);
    const controls = [];
    if (role === 'host' && lc === 'scheduled') controls.push(b('Start space', 'start', () => this.lifecycle('start'), 'primary'));
    if (role === 'host' && lc === 'interrupted') controls.push(b('Resume space', 'resume', () => this.lifecycle('resume'), 'primary'));
    if (role === 'cohost' && !hostEntry?.connected) controls.push(b('Take over as host', 'takeover', () => this.act('takeover')));
    if (role === 'host') {
      const scheduled = lc === 'scheduled';
      controls.push(b(scheduled ? 'Cancel space' : 'End space', 'end', async () => {
        const ok = await confirmDialog({
          title: scheduled ? 'Cancel this space?' : 'End this space for everyone?',
          body: scheduled ? 'It will not start; people who added it to their calendar see it ended.' : 'Everyone stops hearing it now. The recording is kept for the replay.',
          confirmLabel: scheduled ? 'Cancel the space' : 'End for everyone',
        });
        if (ok) this.lifecycle('end');
      }, 'danger'));
    }
    const live = lc === 'live' || lc === 'interrupted';
    this.keepFocus(e.host, () => replace(e.host,
      h('h2', { id: 'host-h' }, role === 'host' ? 'Host controls' : 'Co-host controls'),
      h('div', { class: 'row' }, controls),
      live ? h('div', { class: 'load', id: 'load' }) : null,
      live ? [h('h3', {}, 'Requests to speak'), e.hands] : null,
      live ? [h('h3', {}, 'Audience'), this.audienceSearch(), e.audience] : null,
      this.sharePanel()));
    this.renderHands();
    this.renderAudience();
    this.renderLoad();
  },

  /** Links to share: the space, the host's own link (host only), speaker invitations. */
  sharePanel() {
    if (!this.share) this.share = { links: [] };
    const sh = this.share;
    const base = `${location.origin}/spaces/${encodeURIComponent(this.id)}`;
    const isHost = this.myRole() === 'host';
    const guest = h('input', { type: 'text', id: 'guest-name', value: sh.guestName ?? 'Guest', autocomplete: 'off', 'data-key': 'guest-name' });
    guest.addEventListener('input', () => { sh.guestName = guest.value; });
    const linkRow = (label, url, copyLabel, control) => h('div', { class: 'link-row' },
      h('input', { type: 'url', readonly: true, value: url, 'aria-label': label, 'data-control': `${control}-url` }),
      copyButton(copyLabel, url, { control }));
    return h('div', { class: 'share', id: 'share' },
      h('h3', {}, 'Share'),
      this.justCreated ? h('p', { class: 'created' }, 'Your space is ready. Share its link; keep the host link for yourself.') : null,
      linkRow('Link to this space', base, 'Copy link', 'share-link'),
      isHost && this.session?.token
        ? [h('p', { class: 'muted small' }, 'Your host link opens this space as its host on another device (your phone, a second browser). Keep it private: whoever has it is the host.'),
          h('div', { class: 'row' }, copyButton('Copy host link', () => `${base}#token=${this.session.token}`, { control: 'host-link' }))]
        : null,
      // Minting a speaker's token is the host's alone (the permission table).
      isHost
        ? [h('p', { class: 'muted small' }, 'A speaker link puts one guest straight on the stage under the name you give, without raising a hand.'),
          h('div', { class: 'field' }, h('label', { for: 'guest-name' }, 'Guest\'s name'), guest),
          h('div', { class: 'row' }, h('button', { type: 'button', 'data-key': 'make-invite', 'data-control': 'make-invite', onclick: () => this.makeSpeakerLink(guest.value.trim()) }, 'Create speaker link')),
          sh.links.map((l) => linkRow(`Speaker link for ${l.name}`, l.url, `Copy speaker link for ${l.name}`, 'invite-link'))]
        : null);
  },

  /** Mints a speaker token for a new participant named `name` and shows its link. */
  async makeSpeakerLink(name) {
    const n = name || 'Guest';
    if (graphemes(n) > 64) {
      announce('The guest\'s name is longer than 64 characters.');
      return null;
    }
    try {
      const t = await api('POST', `${this.base}/tokens`, { token: this.session.token, body: { role: 'speaker', name: n } });
      const url = `${location.origin}/spaces/${encodeURIComponent(this.id)}#token=${t.token}`;
      this.share.links.push({ name: t.name, url });
      this.renderHost();
      announce(`Speaker link for ${t.name} created.`);
      return url;
    } catch (e) {
      announce(e.message);
      return null;
    }
  },

  audienceSearch() {
    if (!this.els.audienceQuery) {
      const q = h('input', { type: 'search', id: 'audience-q', placeholder: 'Search by name', autocomplete: 'off', 'data-control': 'audience-search' });
      q.addEventListener('input', () => this.renderAudience());
      this.els.audienceQuery = q;
    }
    return h('div', { class: 'field' }, h('label', { for: 'audience-q' }, 'Search the audience'), this.els.audienceQuery);
  },

  renderLoad() {
    const el = document.getElementById('load');
    if (!el) return;
    const l = this.load || {};
    const parts = [];
    if (l.shield) parts.push('shield on (new listeners prove they are not a bot)');
    if (l.waiting) parts.push(`${count(l.waiting)} waiting to get in`);
    if (l.turned_away_last_minute) parts.push(`${count(l.turned_away_last_minute)} asked to wait in the last minute (server full)`);
    if (l.refused_last_minute) parts.push(`${count(l.refused_last_minute)} requests refused in the last minute`);
    replace(el, h('p', {}, h('strong', {}, count(this.listeners)), ' listening now',
      parts.length
        ? h('span', { class: 'warn', dataset: { underLoad: 'true' } }, ' · under load: ', parts.join(', '))
        : h('span', { class: 'muted' }, ' · nobody waiting to get in')));
  },

  renderHands() {
    if (!this.isModerator() || !this.els.hands.isConnected) return;
    const items = this.room.hands.map(([sub, name]) => h('li', { class: 'person', dataset: { sub } },
      avatar(name, sub),
      h('span', { class: 'name', title: name }, name),
      h('span', { class: 'buttons' },
        h('button', { type: 'button', class: 'small primary', 'data-key': `approve:${sub}`, 'aria-label': `Approve ${name}`, onclick: () => this.act('approve', sub) }, 'Approve'),
        h('button', { type: 'button', class: 'small', 'data-key': `decline:${sub}`, 'aria-label': `Decline ${name}`, onclick: () => this.act('decline', sub) }, 'Decline'))));
    this.keepFocus(this.els.hands, () => replace(this.els.hands, items.length ? items : h('li', { class: 'muted' }, 'No requests.')));
  },

  renderAudience() {
    if (!this.isModerator() || !this.els.audience.isConnected) return;
    const onStage = new Set(this.room.stage.map((p) => p.sub));
    const hands = new Set(this.room.hands.map(([s]) => s));
    const q = (this.els.audienceQuery?.value || '').trim().toLocaleLowerCase();
    const all = this.audience.filter((m) => !onStage.has(m.sub) && m.sub !== this.me());
    const shown = q ? all.filter((m) => m.name.toLocaleLowerCase().includes(q)) : all;
    const items = shown.map((m) => {
      const invited = this.room.invited.includes(m.sub);
      return h('li', { class: 'person', dataset: { sub: m.sub } },
        avatar(m.name, m.sub),
        h('span', { class: 'name', title: m.name }, m.name, hands.has(m.sub) ? h('span', { class: 'muted' }, ' ✋') : null),
        h('span', { class: 'buttons' },
          invited
            ? h('span', { class: 'muted small' }, 'invited')
            : h('button', { type: 'button', class: 'small', 'data-key': `invite:${m.sub}`, 'aria-label': `Invite ${m.name}`, onclick: () => this.act('invite', m.sub) }, 'Invite'),
          h('button', {
            type: 'button', class: 'small danger', 'data-key': `ban-a:${m.sub}`, 'aria-label': `Ban ${m.name}`,
            onclick: async () => {
              if (await confirmDialog({ title: `Ban ${m.name}?`, body: `${m.name} is banned from this space for good.`, confirmLabel: 'Ban' })) this.act('ban', m.sub).catch(() => {});
            },
          }, 'Ban')));
    });
    const empty = q && all.length ? `Nobody named “${q}” recently.` : 'Nobody recently active yet: listeners show here when they join, react or raise a hand.';
    this.keepFocus(this.els.audience, () => replace(this.els.audience, items.length ? items : h('li', { class: 'muted' }, empty)));
  },
};
