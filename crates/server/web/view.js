// What the space page shows, state by state. Mixed into the page's class like host.js.
//
// Each state of a space shows only what makes sense in it (the browser test asserts this table
// through the `data-control` attributes):
//
//   part          scheduled   live   interrupted   ended
//   countdown,        ✓
//   calendar,
//   remind me
//   stage grid                  ✓         ✓
//   listen (play,               ✓         ✓
//   volume), count
//   react                       ✓
//   take part                   ✓     (speakers: their microphone)
//   ended card                                      ✓ (when, how long, the replay)
//   host panel        ✓         ✓         ✓
//   copy link         ✓         ✓         ✓         ✓
//
// Lists that change rarely are rebuilt (keyboard focus is kept by `data-key`); the speaking
// rings, updated four times a second, only flip attributes.

import { h, replace, announce, formatStart, countdown, count, ROLE_LABEL, avatar, copyButton, duration, timeZone } from './ui.js';
import { loadName } from './api.js';

/** Must match the server's allow-list (crates/room/src/reactions.rs). */
export const EMOJI = ['👏', '❤️', '😂', '🔥', '💯', '🙌', '😮', '👍', '👎', '😢', '🎉', '✋'];
const MAIN_EMOJI = 6;
/** A speaker counts as speaking above this level (as the server's timeline does). */
const SPEAKING_DBFS = -45;
const ROLE_ORDER = { host: 0, cohost: 1, speaker: 2, listener: 3 };
/** A caption stays on screen this long after it arrived. */
const CAPTION_SHOWN_MS = 12000;

export const viewMethods = {
  build() {
    const volume = h('input', { id: 'volume', type: 'range', min: 0, max: 100, value: 100, 'data-control': 'volume' });
    volume.addEventListener('input', () => this.player?.setVolume(Number(volume.value) / 100));
    const card = (cls, title, id, ...body) => h('section', { class: `card ${cls}`, 'aria-labelledby': id },
      h('h2', { id }, title), ...body);
    this.els = {
      header: h('div', { class: 'space-header' }),
      notice: h('div', { class: 'notice', role: 'status', 'aria-live': 'polite' }),
      schedule: h('div', { class: 'schedule-body' }),
      stage: h('ul', { class: 'stage', 'aria-label': 'Stage' }),
      caption: h('p', { class: 'caption-line', id: 'caption', hidden: true, 'aria-live': 'off' }),
      captionsToggle: h('button', {
        type: 'button', class: 'small', id: 'captions-toggle', 'data-control': 'captions', hidden: true, 'aria-pressed': 'false',
        onclick: () => this.setCaptions(!this.captionsOn),
      }, 'Captions'),
      modPanel: h('div', { class: 'mod-panel', hidden: true }),
      floats: h('div', { class: 'floats', 'aria-hidden': 'true' }),
      play: h('button', { id: 'play', type: 'button', class: 'primary play', 'data-control': 'play', onclick: () => (this.wantPlay ? this.pause() : this.play()) }, 'Play'),
      playerStatus: h('span', { class: 'player-status', 'aria-live': 'polite' }),
      volume,
      participation: h('div', { class: 'participation' }),
      reactions: h('div', { class: 'reactions', 'data-control': 'react' }),
      totals: h('ul', { class: 'reaction-totals', 'aria-label': 'Reactions' }),
      ended: h('div', { class: 'ended-body' }),
      host: h('section', { class: 'card host-panel', 'aria-labelledby': 'host-h', hidden: true }),
      hands: h('ul', { class: 'people', 'aria-label': 'Requests to speak' }),
      audience: h('ul', { class: 'people', 'aria-label': 'Audience' }),
    };
    const e = this.els;
    e.cards = {
      schedule: card('schedule-card', 'Starts soon', 'schedule-h', e.schedule),
      stage: card('stage-card', 'On stage', 'stage-h', e.stage, e.caption, e.modPanel, e.floats),
      listen: card('listen', 'Listen', 'listen-h',
        h('div', { class: 'player-row' }, e.play,
          h('label', { for: 'volume', class: 'volume' }, 'Volume', volume),
          e.captionsToggle),
        e.playerStatus),
      takePart: card('take-part', 'Take part', 'part-h', e.participation),
      react: card('react', 'React', 'react-h', e.reactions, e.totals),
      ended: card('ended-card', 'This space has ended', 'ended-h', e.ended),
    };
    e.cards.host = e.host;
    e.colMain = h('div', { class: 'col-main' }, e.header, e.notice);
    e.colSide = h('div', { class: 'col-side' });
    e.layout = h('div', { class: 'space-layout' }, e.colMain, e.colSide);
    this.main.classList.add('wide');
    replace(this.main, e.layout);
    this.arrange();
    replace(e.reactions,
      EMOJI.slice(0, MAIN_EMOJI).map((em) => this.reactionButton(em)),
      h('details', { class: 'more-reactions' }, h('summary', {}, 'More reactions'),
        EMOJI.slice(MAIN_EMOJI).map((em) => this.reactionButton(em))));
    addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.menuFor) this.closeMenu(true);
    });
  },

  reactionButton(emoji) {
    return h('button', { type: 'button', class: 'emoji', 'aria-label': `React ${emoji}`, onclick: () => this.react(emoji) }, emoji);
  },

  render() {
    this.renderVisibility();
    this.renderHeader();
    this.renderSchedule();
    this.renderStage();
    this.renderPlayer();
    this.renderParticipation();
    this.renderReactionTotals();
    this.renderEnded();
    this.renderCaption();
    this.renderHost();
    this.publishState();
  },

  afterStageChange() {
    this.renderVisibility();
    this.renderStage();
    this.renderParticipation();
    this.renderHost();
    this.publishState();
  },

  /** The page's parts for the space's state (the table above). */
  parts() {
    const lc = this.room.lifecycle;
    const on = lc === 'live' || lc === 'interrupted';
    const out = !!this.kicked;
    const speakerLink = this.hasStageToken() && !this.myStageEntry();
    return {
      schedule: lc === 'scheduled' && !out,
      stage: on && !out,
      // On stage, one hears the others through the microphone's connection, not the stream.
      listen: on && !out && !this.publisher,
      react: lc === 'live' && !out,
      takePart: !out && (lc === 'live' || (lc !== 'ended' && (!!this.publisher || speakerLink))),
      ended: lc === 'ended',
    };
  },

  renderVisibility() {
    const p = this.parts();
    p.host = !this.els.host.hidden;
    for (const [k, el] of Object.entries(this.els.cards)) if (k !== 'host') el.hidden = !p[k];
    this.arrange();
    const side = [...this.els.colSide.children].some((c) => !c.hidden);
    this.els.layout.classList.toggle('single', !side);
  },

  /**
   * Places the cards: the main column (the stage and what you do most) and the side column
   * (beside it on a wide screen, after it on a phone). DOM order is reading order at every
   * size. A host runs the show from the main column; a listener listens there.
   */
  arrange() {
    const c = this.els.cards;
    const [main, side] = this.isModerator()
      ? [[c.schedule, c.ended, c.stage, c.takePart, c.host], [c.listen, c.react]]
      : [[c.schedule, c.ended, c.stage, c.listen], [c.takePart, c.react, c.host]];
    const place = (col, cards, after) => {
      const now = [...col.children].slice(after);
      if (now.length === cards.length && now.every((el, i) => el === cards[i])) return;
      for (const el of cards) col.append(el);
    };
    place(this.els.colMain, main, 2);
    place(this.els.colSide, side, 0);
  },

  renderHeader() {
    const s = this.summary;
    const lc = this.room.lifecycle;
    const hostEntry = this.room.stage.find((p) => p.sub === this.room.host);
    const on = lc === 'live' || lc === 'interrupted';
    const label = { scheduled: 'scheduled', live: 'live', interrupted: 'reconnecting', ended: 'ended' }[lc] ?? lc;
    const desc = s.description ? h('p', { class: 'description', id: 'description' }, s.description) : null;
    const more = desc ? h('button', { type: 'button', class: 'link small', hidden: true, 'aria-controls': 'description', 'aria-expanded': 'false' }, 'Show more') : null;
    if (more) {
      more.addEventListener('click', () => {
        const open = desc.classList.toggle('open');
        more.textContent = open ? 'Show less' : 'Show more';
        more.setAttribute('aria-expanded', String(open));
      });
    }
    const url = lc === 'ended' ? `${location.origin}/spaces/${encodeURIComponent(this.id)}/replay` : `${location.origin}/spaces/${encodeURIComponent(this.id)}`;
    replace(this.els.header,
      h('p', { class: 'status-line' },
        h('span', { id: 'lifecycle', class: `badge ${lc}`, 'data-state': lc }, label),
        on ? h('span', { class: 'listeners', 'data-control': 'listener-count' }, h('span', { id: 'listener-count' }, count(this.listeners)), ' listening') : null,
        hostEntry && lc !== 'ended' ? h('span', { class: 'hosted', title: hostEntry.name }, `hosted by ${hostEntry.name}`) : null,
        h('span', { class: 'conn', id: 'conn' }),
        h('span', { class: 'spacer' }),
        copyButton('Copy link', url, { ariaLabel: lc === 'ended' ? 'Copy link to the replay' : 'Copy link to this space' })),
      h('h1', {}, s.title),
      desc, more);
    if (desc) requestAnimationFrame(() => { more.hidden = desc.scrollHeight <= desc.clientHeight + 2 && !desc.classList.contains('open'); });
    if (lc === 'interrupted') {
      replace(this.els.notice, h('p', {}, 'The host\'s connection to this space was interrupted. It continues here as soon as the host resumes it.'));
    } else if (this.kicked) {
      replace(this.els.notice, h('p', { class: 'error' }, `You were ${this.kicked} this space.`));
    } else {
      replace(this.els.notice);
    }
  },

  renderSchedule() {
    const s = this.summary;
    const el = this.els.schedule;
    if (this.room.lifecycle !== 'scheduled') return replace(el);
    const mod = this.isModerator();
    const tz = timeZone();
    const remind = this.reminder
      ? h('button', { type: 'button', 'aria-pressed': 'true', 'data-control': 'remind', 'data-key': 'remind', onclick: () => this.setReminder(false) }, 'Reminder set')
      : h('button', { type: 'button', class: 'primary', 'aria-pressed': 'false', 'data-control': 'remind', 'data-key': 'remind', onclick: () => this.setReminder(true) }, 'Remind me');
    this.keepFocus(el, () => replace(el,
      s.starts_at
        ? [h('p', { class: 'when' }, 'Starts ', h('time', { datetime: new Date(s.starts_at * 1000).toISOString() }, formatStart(s.starts_at)),
          tz ? h('span', { class: 'muted small' }, ` (${tz})`) : null),
        h('p', { class: 'countdown', id: 'countdown', 'aria-live': 'off' }, countdown(s.starts_at) ?? 'Starting any moment now')]
        : h('p', {}, 'Starts when the host is ready.'),
      h('div', { class: 'row schedule' },
        mod ? null : remind,
        h('a', { class: 'button', href: `/spaces/${encodeURIComponent(this.id)}/calendar.ics`, download: `${this.id}.ics`, 'data-control': 'calendar' }, 'Add to calendar')),
      this.reminder ? h('p', { class: 'muted small' }, this.reminderNote()) : null));
  },

  /** The caption line: the latest caption while fresh, when the space has captions and they
   * are on (remembered in this browser). */
  renderCaption() {
    const e = this.els;
    if (!e.caption) return;
    e.captionsToggle.hidden = !this.hasCaptions;
    e.captionsToggle.setAttribute('aria-pressed', String(!!this.captionsOn));
    e.captionsToggle.textContent = this.captionsOn ? 'Captions on' : 'Captions off';
    const c = this.caption;
    const fresh = c && performance.now() - this.captionAt < CAPTION_SHOWN_MS;
    const show = this.hasCaptions && this.captionsOn && fresh && this.room.lifecycle === 'live';
    e.caption.hidden = !show;
    if (show && e.caption.textContent !== c.t) e.caption.textContent = c.t;
  },

  /** Every second while scheduled: the countdown text only. */
  renderCountdown() {
    const c = document.getElementById('countdown');
    if (c && this.summary.starts_at) c.textContent = countdown(this.summary.starts_at) ?? 'Starting any moment now';
  },

  renderEnded() {
    const el = this.els.ended;
    if (this.room.lifecycle !== 'ended') return replace(el);
    const s = this.summary;
    const replay = `/spaces/${encodeURIComponent(this.id)}/replay`;
    const when = s.ended_at ?? s.started_at;
    replace(el,
      h('p', { class: 'muted' },
        when ? ['Ended ', h('time', { datetime: new Date(when * 1000).toISOString() }, formatStart(when))] : 'It is over.',
        s.started_at && s.ended_at ? ` · lasted ${duration(s.ended_at - s.started_at)}` : null),
      h('p', {}, 'Every word was recorded: listen to the replay, with who spoke when.'),
      h('div', { class: 'row' },
        h('a', { class: 'button primary', href: replay, 'data-control': 'replay' }, 'Play the replay')));
  },

  setConnection(ok, detail) {
    const c = document.getElementById('conn');
    if (c) c.textContent = ok ? '' : `reconnecting${detail ? ` (${detail})` : ''}…`;
  },

  renderCounts() {
    const c = document.getElementById('listener-count');
    if (c) c.textContent = count(this.listeners);
    this.renderLoad();
  },

  /** The stage in order: host, co-hosts, speakers (then by name). */
  orderedStage() {
    return [...this.room.stage].sort((a, b) =>
      (a.sub === this.room.host ? -1 : 0) - (b.sub === this.room.host ? -1 : 0) ||
      (ROLE_ORDER[a.role] ?? 9) - (ROLE_ORDER[b.role] ?? 9));
  },

  renderStage() {
    const me = this.me();
    const mod = this.isModerator();
    const items = this.orderedStage().map((p) => {
      const speaking = this.isSpeaking(p);
      const status = [ROLE_LABEL[p.role] ?? p.role];
      if (p.sub === me) status.push('you');
      if (!p.connected) status.push('not connected');
      if (p.host_muted) status.push('muted by host');
      else if (p.muted) status.push('muted');
      const canModerate = mod && p.sub !== me && this.moderationActions(p).length;
      return h('li', {
        class: 'tile',
        dataset: { sub: p.sub, connected: String(p.connected), muted: String(p.muted), speaking: String(speaking), role: p.role },
      },
      h('span', { class: 'avatar-wrap' },
        avatar(p.name, p.sub),
        p.muted ? h('span', { class: 'mic-badge', 'aria-hidden': 'true', title: 'muted' }, '🔇') : null),
      h('span', { class: 'name', title: p.name }, p.name),
      h('span', { class: 'role' }, status.join(' · ')),
      h('span', { class: 'speaking-label visually-hidden' }, speaking ? 'speaking' : ''),
      canModerate
        ? h('button', {
          type: 'button', class: 'more small', 'data-key': `menu:${p.sub}`, 'aria-label': `Options for ${p.name}`,
          'aria-expanded': String(this.menuFor === p.sub), 'aria-controls': 'mod-panel',
          onclick: () => (this.menuFor === p.sub ? this.closeMenu(true) : this.openMenu(p.sub)),
        }, '⋯')
        : null);
    });
    this.keepFocus(this.els.stage, () => replace(this.els.stage,
      items.length ? items : h('li', { class: 'muted empty' }, this.room.lifecycle === 'interrupted' ? 'Waiting for the host to come back.' : 'Nobody is on stage yet.')));
    this.renderModPanel();
  },

  /** Rebuilds a list but gives focus back to the control with the same `data-key`. */
  keepFocus(container, rebuild) {
    const key = container.contains(document.activeElement) ? document.activeElement.dataset?.key : null;
    rebuild();
    if (key) container.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
  },

  /** From the event stream's levels when it is open, else from the in-band `speaking`. */
  isSpeaking(p) {
    if (p.muted) return false;
    if (this.es) return (this.levels.get(p.sub) ?? -100) > SPEAKING_DBFS;
    return this.speaking.has(p.sub);
  },

  renderSpeaking() {
    for (const li of this.els.stage.querySelectorAll('li[data-sub]')) {
      const p = this.room.stage.find((x) => x.sub === li.dataset.sub);
      const speaking = !!p && this.isSpeaking(p);
      if (li.dataset.speaking !== String(speaking)) {
        li.dataset.speaking = String(speaking);
        const label = li.querySelector('.speaking-label');
        if (label) label.textContent = speaking ? 'speaking' : '';
      }
    }
  },

  renderPlayer() {
    const e = this.els;
    if (!e.play) return;
    const lc = this.room.lifecycle;
    e.play.textContent = this.wantPlay ? 'Pause' : 'Play';
    const words = {
      connecting: 'Connecting…',
      playing: `Live${this.player?.mode === 'ogg' ? ' (Ogg stream)' : ''}`,
      buffering: 'Buffering…',
      reconnecting: `Reconnecting${this.playerDetail ? ` (${this.playerDetail})` : ''}…`,
      error: this.playerDetail || 'Cannot play',
      stopped: '',
    };
    let text = words[this.playerState] ?? '';
    if (this.wantPlay && lc === 'interrupted') text = 'Waiting for the host to resume…';
    if (this.publisher && !this.wantPlay) text = 'You hear the stage through your microphone connection.';
    e.playerStatus.textContent = text;
  },

  renderParticipation() {
    const e = this.els;
    if (!e.participation) return;
    this.renderVisibility(); // joining or leaving the stage shows or hides the stream's player
    const lc = this.room.lifecycle;
    const me = this.me();
    const role = this.myRole();
    const mine = this.myStageEntry();
    const parts = [];
    if (lc === 'ended' || this.kicked) return replace(e.participation);
    const heading = this.els.cards.takePart.querySelector('h2');
    if (heading) heading.textContent = this.publisher ? 'Your microphone' : 'Take part';
    const invited = this.room.invited.includes(me) || (this.hasStageToken() && !mine);
    if (this.publisher) {
      const muted = mine?.muted ?? this.publisher.muted;
      const words = {
        microphone: 'Asking for the microphone…',
        connecting: 'Connecting your microphone…',
        connected: muted ? (mine?.host_muted ? 'On stage — muted by the host.' : 'On stage — muted.') : 'On stage — you are live.',
        reconnecting: 'Reconnecting your microphone…',
      };
      parts.push(h('p', { class: 'stage-status' }, words[this.stageState] ?? ''));
      parts.push(h('div', { class: 'row' },
        h('button', { type: 'button', class: muted ? 'primary' : '', 'data-key': 'self-mute', 'data-control': 'self-mute', onclick: () => this.toggleMute() }, muted ? 'Unmute' : 'Mute'),
        role !== 'host' ? h('button', { type: 'button', 'data-key': 'leave', 'data-control': 'leave', onclick: () => this.stopSpeaking(true) }, 'Leave stage') : null));
    } else if (mine || invited) {
      const who = mine ? (role === 'host' ? 'You are the host.' : `You are a ${ROLE_LABEL[role].toLowerCase()}.`) : 'You are invited to speak.';
      parts.push(h('p', {}, who, lc === 'live' ? ' Join the stage to speak.' : ' The stage opens when the space is live.'));
      if (lc === 'live') {
        parts.push(h('div', { class: 'row' },
          h('button', { type: 'button', class: 'primary', 'data-key': 'join', 'data-control': 'join-stage', onclick: () => this.joinStage() }, 'Join stage'),
          mine && role !== 'host' ? h('button', { type: 'button', 'data-key': 'leave', 'data-control': 'leave', onclick: () => this.stopSpeaking(true) }, 'Leave stage') : null,
          !mine && this.room.invited.includes(me) ? h('button', { type: 'button', 'data-key': 'decline-invite', onclick: () => this.declineInvite() }, 'Decline invite') : null));
      }
    } else if (lc === 'live') {
      const current = this.session?.name;
      const name = h('input', { id: 'name', type: 'text', autocomplete: 'nickname', 'data-control': 'name', value: !current || current === 'Listener' ? loadName() : current });
      e.name = name;
      // A name typed is the name shown (to the host's audience list too), hand raised or not.
      name.addEventListener('change', () => this.rename(name.value.trim()));
      parts.push(h('div', { class: 'field' }, h('label', { for: 'name' }, 'Your name'), name));
      parts.push(h('div', { class: 'row' }, this.handRaised
        ? h('button', { type: 'button', 'data-key': 'hand', 'data-control': 'raise-hand', onclick: () => this.lowerHand() }, 'Withdraw hand')
        : h('button', { type: 'button', class: 'primary', 'data-key': 'hand', 'data-control': 'raise-hand', onclick: () => this.raiseHand() }, 'Raise hand')));
      if (this.handRaised) parts.push(h('p', { class: 'muted' }, 'Your hand is raised: the host will see your request.'));
    }
    const keep = document.activeElement?.id === 'name' ? { value: document.activeElement.value } : null;
    this.keepFocus(e.participation, () => replace(e.participation, parts));
    if (keep && e.name) {
      e.name.value = keep.value;
      e.name.focus();
    }
  },

  renderReactionTotals() {
    const t = this.els.totals;
    if (!t) return;
    const shown = new Map(this.serverTotals ?? []);
    for (const [em, n] of this.ownReactions) if (n) shown.set(em, (shown.get(em) || 0) + n);
    this.reactionTotals = shown;
    replace(t, [...shown.entries()].filter(([, n]) => n > 0).map(([em, n]) =>
      h('li', { 'data-emoji': em, 'aria-label': `${em} ${n}` }, em, ' ', h('span', { class: 'n' }, count(n)))));
  },

  /** An emoji floating up over the stage (everyone's reactions, as they arrive). */
  float(emoji) {
    const layer = this.els.floats;
    if (!layer || this.room.lifecycle !== 'live' || matchMedia('(prefers-reduced-motion: reduce)').matches) return;
    const f = h('span', { class: 'float', style: `left:${5 + Math.random() * 85}%` }, emoji);
    layer.append(f);
    window.tribune.floated = (window.tribune.floated || 0) + 1;
    setTimeout(() => f.remove(), 2700);
  },

  /** A scheduled space's reminder text. */
  reminderNote() {
    if (!('Notification' in window)) return 'This page will tell you when it starts (keep it open).';
    if (Notification.permission === 'granted') return 'You will get a notification when it starts, and the audio starts by itself while this page is open.';
    return 'Notifications are off for this site: this page will tell you when it starts, and the audio starts by itself while it is open.';
  },
};
