// The host's and co-hosts' part of the space page: moderation buttons on each stage row, the
// lifecycle controls (start, resume, take over, end), requests to speak, the recently active
// audience to invite, and how loaded the room is. Mixed into the space page's class
// (`Object.assign(SpacePage.prototype, hostMethods)`): `this` is the page.

import { h, replace, count, initials } from './ui.js';

export const hostMethods = {
  moderationButtons(p) {
    const iAmHost = this.myRole() === 'host';
    if (p.role === 'host') return null;
    if (p.role === 'cohost' && !iAmHost) return null;
    const b = (label, key, f, cls = '') => h('button', { type: 'button', class: `small ${cls}`, 'data-key': `${key}:${p.sub}`, onclick: f }, label);
    return h('span', { class: 'mod-buttons' },
      p.host_muted
        ? b(`Unmute ${p.name}`, 'unmute', () => this.act('unmute', p.sub))
        : b(`Mute ${p.name}`, 'mute', () => this.act('mute', p.sub)),
      b(`Move ${p.name} to audience`, 'audience', () => this.act('audience', p.sub)),
      iAmHost && p.role === 'speaker' ? b(`Make ${p.name} co-host`, 'cohost', () => this.act('cohost', p.sub)) : null,
      iAmHost && p.role === 'cohost' ? b(`Revoke co-host ${p.name}`, 'uncohost', () => this.act('uncohost', p.sub)) : null,
      b(`Remove ${p.name}`, 'remove', () => confirm(`Remove ${p.name} from this space?`) && this.act('remove', p.sub), 'danger'),
      b(`Ban ${p.name}`, 'ban', () => confirm(`Ban ${p.name} from this space?`) && this.act('ban', p.sub), 'danger'));
  },

  renderHost() {
    const e = this.els;
    if (!e.host) return;
    const role = this.myRole();
    const mod = role === 'host' || role === 'cohost';
    e.host.hidden = !mod;
    if (!mod) return;
    // Hosts run the show from here: their microphone and panel come right after the stage.
    const stageCard = e.stage.closest('section');
    const partCard = e.participation.closest('section');
    if (stageCard && partCard && stageCard.nextElementSibling !== partCard) stageCard.after(partCard);
    if (partCard && partCard.nextElementSibling !== e.host) partCard.after(e.host);
    const lc = this.room.lifecycle;
    const hostEntry = this.room.stage.find((p) => p.sub === this.room.host);
    const controls = [];
    if (role === 'host' && lc === 'scheduled') controls.push(h('button', { type: 'button', class: 'primary', 'data-key': 'start', onclick: () => this.lifecycle('start') }, 'Start space'));
    if (role === 'host' && lc === 'interrupted') controls.push(h('button', { type: 'button', class: 'primary', 'data-key': 'resume', onclick: () => this.lifecycle('resume') }, 'Resume space'));
    if (role === 'cohost' && lc !== 'ended' && !hostEntry?.connected) {
      controls.push(h('button', { type: 'button', 'data-key': 'takeover', onclick: () => this.act('takeover') }, 'Take over as host'));
    }
    if (role === 'host' && lc !== 'ended') {
      controls.push(h('button', { type: 'button', class: 'danger', 'data-key': 'end', onclick: () => confirm('End this space for everyone? The recording is kept.') && this.lifecycle('end') }, 'End space'));
    }
    this.keepFocus(e.host, () => replace(e.host,
      h('h2', { id: 'host-h' }, role === 'host' ? 'Host controls' : 'Co-host controls'),
      h('div', { class: 'row' }, controls),
      h('div', { class: 'load', id: 'load' }),
      h('h3', {}, 'Requests to speak'), e.hands,
      h('h3', {}, 'Audience'),
      h('p', { class: 'muted small' }, 'Recently active listeners; invite one to the stage.'),
      e.audience));
    this.renderHands();
    this.renderAudience();
    this.renderLoad();
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
    if (!this.isModerator()) return;
    const items = this.room.hands.map(([sub, name]) => h('li', { class: 'person', dataset: { sub } },
      h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(name)),
      h('span', { class: 'name' }, name),
      h('span', { class: 'mod-buttons' },
        h('button', { type: 'button', class: 'small primary', 'data-key': `approve:${sub}`, onclick: () => this.act('approve', sub) }, `Approve ${name}`),
        h('button', { type: 'button', class: 'small', 'data-key': `decline:${sub}`, onclick: () => this.act('decline', sub) }, `Decline ${name}`))));
    this.keepFocus(this.els.hands, () => replace(this.els.hands, items.length ? items : h('li', { class: 'muted' }, 'No requests.')));
  },

  renderAudience() {
    if (!this.isModerator()) return;
    const onStage = new Set(this.room.stage.map((p) => p.sub));
    const hands = new Set(this.room.hands.map(([s]) => s));
    const items = this.audience.filter((m) => !onStage.has(m.sub) && m.sub !== this.me()).map((m) => {
      const invited = this.room.invited.includes(m.sub);
      return h('li', { class: 'person', dataset: { sub: m.sub } },
        h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(m.name)),
        h('span', { class: 'name' }, m.name, hands.has(m.sub) ? h('span', { class: 'muted' }, ' (hand raised)') : null),
        h('span', { class: 'mod-buttons' },
          invited
            ? h('span', { class: 'muted' }, 'invited')
            : h('button', { type: 'button', class: 'small', 'data-key': `invite:${m.sub}`, onclick: () => this.act('invite', m.sub) }, `Invite ${m.name}`),
          h('button', { type: 'button', class: 'small danger', 'data-key': `ban-a:${m.sub}`, onclick: () => confirm(`Ban ${m.name} from this space?`) && this.act('ban', m.sub) }, `Ban ${m.name}`)));
    });
    this.keepFocus(this.els.audience, () => replace(this.els.audience, items.length ? items : h('li', { class: 'muted' }, 'Nobody recently active.')));
  },
};
