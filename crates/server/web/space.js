// The space page: one page for everyone in a space, shaped by the visitor's current role.
//   listener  title, stage with speaking and mute indicators, listener count, play/pause and
//             volume, reactions, raise hand / withdraw, accept an invitation
//   speaker   + microphone over WHIP (hearing the others through the same connection), mute,
//             leave the stage
//   host, co-host  + requests to speak, invite from the audience, moderation of the stage,
//             co-hosts, start / resume / end, and how loaded the room is
//
// A listener is anonymous until they act: opening the page and pressing Play makes only
// requests an HTTP cache answers (the page, its versioned files, the public snapshot, the
// LL-HLS rendition) plus, for a sampled share of pages, an anonymous count beacon (public.js).
// What the listener sees moves with what they hear: the changes ride in the LL-HLS parts; with
// no in-band metadata (paused, Ogg or native HLS) the page polls the cached snapshot. The page
// joins (a listener token) at the first interaction: a name typed, a hand raised, a reaction.
// Only hosts, co-hosts, speakers, the invited and anyone with a raised hand hold an event
// stream (its `snapshot`, then changes), which then drives the page.
// What each state shows is view.js's; the host's part is host.js's. A scheduled space counts
// down, offers its calendar file and a reminder (a notification where granted, and the audio
// starting by itself) when it goes live or its time comes.

import { api, retrying, loadSession, saveSession, sessionFromToken, loadName, saveName } from './api.js';
import { h, replace, announce, backoff } from './ui.js';
import { LivePlayer, audioContext } from './player.js';
import { applyMeta, snapshotUrl, viewerId, Beacon, ReactionBatch } from './public.js';
import { StagePublisher } from './stage.js';
import { hostMethods } from './host.js';
import { viewMethods } from './view.js';

const BEACON_MS = 45000;
const AUDIENCE_POLL_MS = 5000;
/** No in-band metadata for this long: poll the public snapshot instead. */
const META_STALE_MS = 5000;

export async function showSpace(main, id) {
  const page = new SpacePage(main, id);
  await page.init();
  window.tribune.page = page;
}

class SpacePage {
  constructor(main, id) {
    this.main = main;
    this.id = id;
    this.base = `/api/spaces/${encodeURIComponent(id)}`;
    this.summary = null;
    this.room = { lifecycle: 'scheduled', host: null, stage: [], hands: [], invited: [], cohosts: [] };
    this.listeners = 0;
    this.load = null;
    this.levels = new Map();
    this.speaking = new Set();
    /** Reaction totals as the server last told them, and our own not yet in them. */
    this.serverTotals = null;
    this.ownReactions = new Map();
    this.reactionTotals = new Map();
    /** The room as the public snapshot and the in-band metadata describe it. */
    this.live = {};
    this.count = { sample_log2: 0, interval_s: 30 };
    this.pollS = 5;
    this.lastPoll = 0;
    this.session = null;
    this.handRaised = false;
    this.player = null;
    this.playerState = 'stopped';
    this.wantPlay = false;
    this.publisher = null;
    this.stageState = 'stopped';
    this.resumePlayAfterStage = false;
    this.es = null;
    this.esAttempt = 0;
    this.lastEventId = null;
    this.audience = [];
    this.timers = [];
    this.els = {};
  }

  // ---------------------------------------------------------------------------------------
  // Start-up

  async init() {
    this.takeTokenFromLink();
    const q = new URLSearchParams(location.search);
    if (q.has('created')) {
      this.justCreated = true;
      history.replaceState(null, '', location.pathname);
    }
    this.reminder = loadReminder(this.id);
    try {
      this.captionsOn = localStorage.getItem('tribune.captions') !== 'off';
    } catch {
      this.captionsOn = true;
    }
    let snap;
    try {
      snap = await retrying(() => api('GET', snapshotUrl(this.id)), {
        onWait: (wait) => announce(`The server is busy: trying again in ${Math.ceil(wait)} s`),
      });
    } catch (e) {
      document.title = 'Space not found · tribune';
      replace(this.main, h('h1', {}, e.status === 404 ? 'No such space' : 'Cannot load this space'),
        h('p', { class: 'error' }, e.message), h('p', {}, h('a', { href: '/' }, 'See the spaces')));
      return;
    }
    this.summary = {
      title: snap.title, description: snap.description, starts_at: snap.starts_at,
      started_at: snap.started_at, ended_at: snap.ended_at, whip_url: snap.urls.whip,
    };
    this.urls = snap.urls;
    this.pollS = snap.poll_s || 5;
    this.lastPoll = performance.now();
    document.title = `${snap.title} · tribune`;
    this.build();
    this.onPublic(snap, true);
    if (this.room.lifecycle === 'ended') {
      this.render();
      return;
    }
    const s = loadSession(this.id);
    this.session = s && !s.expired ? s : null;
    this.handRaised = !!this.session?.hand;
    this.render();
    this.syncEvents();
    this.beaconer = new Beacon(this.urls.beacon, viewerId(), {
      count: () => this.count,
      active: () => !this.es && this.room.lifecycle !== 'ended',
      post: (url, body) => api('POST', url, { body, timeoutMs: 5000 }).catch(() => {}),
    });
    this.beaconer.start();
    this.reactionBatch = new ReactionBatch((counts) => this.sendReactions(counts), {
      onDropped: (counts, e) => {
        for (const [em, n] of Object.entries(counts)) this.ownReactions.set(em, Math.max(0, (this.ownReactions.get(em) || 0) - n));
        this.renderReactionTotals();
        if (e?.message) announce(e.message);
      },
    });
    this.every(BEACON_MS, () => this.beacon());
    this.every(AUDIENCE_POLL_MS, () => this.refreshAudience());
    this.every(1000, () => this.tick());
    addEventListener('pagehide', () => this.publisher?.deleteResource());
  }

  /**
   * The public state (a snapshot, or the state rebuilt from in-band messages): lifecycle,
   * host, stage, invitations, listener count, reaction totals, speaking, count sampling.
   * Ignored while an event stream drives the page (it says all of it, first).
   */
  onPublic(state, first = false) {
    if (state.count) this.count = state.count;
    if (this.es && !first) return;
    if (state.stage) {
      this.room.stage = state.stage;
      this.room.cohosts = state.stage.filter((p) => p.role === 'cohost').map((p) => p.sub);
    }
    if ('host' in state) this.room.host = state.host;
    if (state.invited) {
      const was = this.room.invited.includes(this.me());
      this.room.invited = state.invited;
      if (!was && this.me() && state.invited.includes(this.me())) announce('You are invited to speak.');
    }
    if (Array.isArray(state.speaking)) this.speaking = new Set(state.speaking);
    if ('cap' in state) {
      this.hasCaptions = true;
      if (state.cap) this.onCaption(state.cap);
    }
    if (typeof state.listeners === 'number') this.listeners = state.listeners;
    if (state.reactions) this.onServerTotals(state.reactions, first);
    if (state.lifecycle) this.onLifecycle(state.lifecycle, first);
    if (!first) {
      this.afterStageChange();
      this.renderSpeaking();
      this.renderCounts();
      if (state.stage || 'host' in state) this.renderHeader();
    }
    this.syncEvents();
  }

  /** One in-band message from the LL-HLS parts. */
  onMeta(msg) {
    const changed = applyMeta(this.live, msg);
    if (!changed.size) return;
    const part = {};
    for (const k of changed) if (k in this.live) part[k] = this.live[k];
    this.onPublic(part);
  }

  /** Polls the public snapshot when nothing arrives in-band (not playing, Ogg, native HLS). */
  async pollPublic() {
    if (this.es || this.room.lifecycle === 'ended' || this.polling) return;
    const fresh = this.player?.lastMetaAt && performance.now() - this.player.lastMetaAt < META_STALE_MS;
    if (fresh || performance.now() - this.lastPoll < this.pollS * 1000) return;
    if (document.visibilityState !== 'visible' && !this.wantPlay) return;
    this.polling = true;
    this.lastPoll = performance.now();
    try {
      this.onPublic(await api('GET', snapshotUrl(this.id), { timeoutMs: 10000 }));
    } catch {
      // the next poll
    } finally {
      this.polling = false;
    }
  }

  /** Who holds an event stream: hosts, co-hosts, speakers, the invited, raised hands. */
  wantEvents() {
    if (!this.session || this.room.lifecycle === 'ended' || this.kicked) return false;
    const me = this.me();
    return this.session.role !== 'listener' || this.room.host === me || !!this.myStageEntry() ||
      this.room.invited.includes(me) || this.handRaised || !!this.publisher;
  }

  /** Opens the event stream when this visitor should hold one; closes it when not any more. */
  syncEvents() {
    const want = this.wantEvents();
    if (want && !this.es) this.openEvents();
    else if (!want && this.es) {
      this.es.close();
      this.es = null;
      this.setConnection(true);
    }
  }

  /**
   * A valid listener token for an interaction: the one held, renewed, or a new join. Calls made
   * while one is under way share it (a name typed and a hand raised in one gesture are one
   * participant, not two).
   */
  ensureJoined(name) {
    if (!this.joining) {
      this.joining = this.joinOnce(name).finally(() => {
        this.joining = null;
      });
    }
    return this.joining;
  }

  async joinOnce(name) {
    let s = this.session ?? loadSession(this.id);
    if (s && !s.expired && s.renew_after && s.renew_after * 1000 < Date.now() && s.role === 'listener') {
      s = await this.renew(s).catch(() => null);
    }
    if (!s || s.expired) s = await this.joinPatiently(name || loadName() || 'Listener');
    this.session = s;
    this.publishState();
    return s;
  }

  every(ms, f) {
    this.timers.push(setInterval(f, ms));
  }

  /** A host or co-host link carries its token in the fragment: `/spaces/x#token=…`. */
  takeTokenFromLink() {
    const m = location.hash.match(/token=([\w.-]+)/);
    if (!m) return;
    const s = sessionFromToken(m[1]);
    if (s && s.space === this.id) saveSession(this.id, s);
    history.replaceState(null, '', location.pathname + location.search);
  }

  /**
   * Joins; when the server is busy (429/503 with Retry-After) waits as told, plus jitter, and
   * when it cannot be reached or fails without saying when (a reset, a refused connection, a
   * 5xx) backs off exponentially with jitter, and tries again (api.js `retrying`; listening over
   * HLS needs no session, so the audio is not held up meanwhile).
   */
  async joinPatiently(name) {
    return retrying(() => this.join(name), {
      onWait: (wait, e) =>
        announce(
          e.status === 0
            ? `Cannot reach the server: trying again in ${Math.ceil(wait)} s`
            : `The server is busy: trying again in ${Math.ceil(wait)} s`,
        ),
    });
  }

  async join(name) {
    const j = await api('POST', `${this.base}/join`, { body: { name }, onSolving: () => announce('Checking your browser…') });
    const s = { token: j.token, sub: j.sub, name: j.name, role: 'listener', exp: j.exp, renew_after: j.renew_after };
    saveSession(this.id, s);
    return s;
  }

  /** A fresh listener token for the same participant (under a new name if given). */
  async renew(s, name) {
    const j = await api('POST', `${this.base}/join`, { token: s.token, body: name ? { name } : undefined });
    const n = { ...s, token: j.token, name: j.name, exp: j.exp, renew_after: j.renew_after };
    saveSession(this.id, n);
    return n;
  }

  /** Every second: the snapshot poll, token renewal (event-stream holders), the countdown. */
  async tick() {
    this.pollPublic();
    const s = this.session;
    if (s && this.es && s.role === 'listener' && s.renew_after && s.renew_after * 1000 < Date.now() && !this.renewing) {
      this.renewing = true;
      try {
        this.session = await this.renew(s);
      } catch (e) {
        if (e.status === 401 || e.status === 403) this.session = null;
      } finally {
        this.renewing = false;
      }
    }
    this.renderCaption();
    if (this.room.lifecycle === 'scheduled' && this.summary.starts_at) {
      this.renderCountdown();
      if (this.summary.starts_at * 1000 <= Date.now()) this.remind('starts now');
    }
  }

  /** Arms (or disarms) the reminder: asked from a click, which also unlocks the audio. */
  async setReminder(on) {
    this.reminder = on;
    saveReminder(this.id, on);
    if (on) {
      this.wantPlay = true;
      audioContext();
      if ('Notification' in window && Notification.permission === 'default') {
        try {
          await Notification.requestPermission();
        } catch {
          // refused or unsupported: the page itself reminds
        }
      }
      announce('We will remind you when it starts.');
    } else {
      this.wantPlay = false;
      announce('Reminder off.');
    }
    this.renderSchedule();
    this.publishState();
  }

  /** The reminder, once: a notification where granted, and the page's own announcement. */
  remind(why) {
    if (!this.reminder || this.reminded) return;
    this.reminded = true;
    const title = this.summary.title;
    const body = why === 'live' ? 'It is live now: tap to listen.' : 'It is about to start.';
    announce(`${title}: ${body}`);
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        const n = new Notification(title, { body, tag: `tribune-${this.id}`, icon: '/app/icon.svg' });
        n.onclick = () => {
          window.focus();
          n.close();
        };
      } catch {
        // a browser that wants notifications from a service worker only: the page said it
      }
    }
    window.tribune.reminded = why;
  }

  /** Participants holding an event stream stay counted (anonymous pages use public.js's). */
  beacon() {
    if (this.session && this.es && this.room.lifecycle !== 'ended' && document.visibilityState === 'visible') {
      api('POST', `${this.base}/presence`, { token: this.session.token }).catch(() => {});
    }
  }

  // ---------------------------------------------------------------------------------------
  // Events

  /**
   * Opens the event stream. `EventSource` cannot send headers, and a token in a URL ends up in
   * proxy logs: the token buys a one-minute, one-space ticket (in a header), and the URL carries
   * only that. Until the ticket is here a placeholder stands in `this.es`, so nothing opens a
   * second stream meanwhile.
   */
  openEvents() {
    if (this.es) this.es.close();
    const pending = { closed: false, close() { this.closed = true; } };
    this.es = pending;
    api('POST', `${this.base}/events/ticket`, { token: this.session.token })
      .then(({ ticket }) => {
        if (this.es === pending && !pending.closed) this.connectEvents(ticket);
      })
      .catch((e) => {
        if (this.es !== pending || pending.closed) return;
        this.setConnection(false, e.message);
        this.reopenEvents(pending);
      });
  }

  /** After a refused or failed stream: renew or re-join, then reopen where we left. */
  reopenEvents(was) {
    setTimeout(async () => {
      if (this.es !== was) return;
      try {
        if (!this.wantEvents() || this.room.lifecycle === 'ended' || !this.session) {
          this.es = null;
          return;
        }
        const s = loadSession(this.id);
        if (!s || s.expired) await this.ensureJoined();
        else this.session = s;
        this.openEvents();
      } catch (e) {
        this.es = null;
        this.setConnection(false, e.message);
        this.esAttempt++;
        this.openEventsLater();
      }
    }, backoff(this.esAttempt++));
  }

  connectEvents(ticket) {
    const q = new URLSearchParams({ ticket });
    if (this.lastEventId) q.set('last_event_id', this.lastEventId);
    const es = new EventSource(`${this.base}/events?${q}`);
    this.es = es;
    const on = (name, f) => es.addEventListener(name, (ev) => {
      if (ev.lastEventId) this.lastEventId = ev.lastEventId;
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      f.call(this, data);
    });
    on('snapshot', this.onSnapshot);
    on('state', (d) => this.onLifecycle(d.lifecycle));
    on('stage', (d) => {
      this.room.stage = d.participants;
      this.afterStageChange();
    });
    on('hand_raised', (d) => {
      if (!this.room.hands.some(([s]) => s === d.sub)) this.room.hands.push([d.sub, d.name]);
      if (d.sub === this.me()) this.setHand(true);
      else if (this.isModerator()) announce(`${d.name} asks to speak.`);
      this.renderHands();
      this.renderParticipation();
    });
    on('hand_lowered', (d) => this.dropHand(d.sub));
    on('approved', (d) => {
      this.dropHand(d.sub);
      if (d.sub === this.me()) announce('You may speak: press Join stage.');
    });
    on('declined', (d) => {
      this.dropHand(d.sub);
      if (d.sub === this.me()) announce('Your request to speak was declined.');
    });
    on('invited', (d) => {
      if (!this.room.invited.includes(d.sub)) this.room.invited.push(d.sub);
      if (d.sub === this.me()) announce('You are invited to speak.');
      this.renderParticipation();
      this.renderAudience();
    });
    const uninvite = (d) => {
      this.room.invited = this.room.invited.filter((s) => s !== d.sub);
      this.renderParticipation();
      this.renderAudience();
    };
    on('invite_accepted', uninvite);
    on('invite_declined', uninvite);
    on('muted', (d) => {
      if (d.sub === this.me()) {
        this.publisher?.setMuted(true);
        announce(d.by_host ? 'The host muted you.' : 'You are muted.');
      }
    });
    on('unmuted', (d) => {
      if (d.sub === this.me() && this.publisher) {
        this.publisher.setMuted(false);
        announce('You are unmuted.');
      }
    });
    on('moved_to_audience', (d) => {
      this.room.cohosts = this.room.cohosts.filter((x) => x !== d.sub);
      if (d.sub === this.me()) {
        this.stopSpeaking(false, { closed: true });
        announce('You are back in the audience.');
      }
    });
    const gone = (verb) => (d) => {
      if (d.sub !== this.me()) return;
      this.stopSpeaking(false, { closed: true });
      this.player?.stop();
      this.es?.close();
      saveSession(this.id, null);
      this.session = null;
      this.kicked = verb;
      this.render();
    };
    on('removed', gone('removed from'));
    on('banned', gone('banned from'));
    on('host_changed', (d) => {
      this.room.host = d.sub;
      if (d.sub === this.me()) announce('You are now the host.');
      this.afterStageChange();
    });
    on('cohost_named', (d) => {
      if (!this.room.cohosts.includes(d.sub)) this.room.cohosts.push(d.sub);
      if (d.sub === this.me()) announce('You are now a co-host.');
      this.afterStageChange();
    });
    on('cohost_revoked', (d) => {
      this.room.cohosts = this.room.cohosts.filter((s) => s !== d.sub);
      this.afterStageChange();
    });
    on('levels', (d) => {
      this.levels = new Map(d.levels.map((l) => [l.sub, l.dbfs]));
      this.renderSpeaking();
    });
    on('listeners', (d) => {
      this.listeners = d.count;
      if (d.admission) this.load = d.admission;
      this.renderCounts();
    });
    on('reactions', (d) => this.onReactions(d.counts));
    on('caption', (d) => {
      this.hasCaptions = true;
      this.onCaption({ t: d.text, s: d.start_ms, e: d.end_ms });
    });
    es.addEventListener('open', () => {
      this.esAttempt = 0;
      this.setConnection(true);
    });
    es.addEventListener('error', () => {
      this.setConnection(false);
      if (es.readyState === EventSource.CLOSED && this.room.lifecycle !== 'ended' && this.session) {
        // Refused (an expired ticket or token, a restart): a new ticket, where we left.
        this.reopenEvents(es);
      }
    });
  }

  openEventsLater() {
    setTimeout(() => this.wantEvents() && this.openEvents(), backoff(this.esAttempt));
  }

  onSnapshot(d) {
    this.summary = d.space;
    this.listeners = d.space.listeners;
    this.room = d.room;
    this.setHand(this.room.hands.some(([s]) => s === this.me()));
    this.onLifecycle(d.room.lifecycle, true);
    this.render();
  }

  onLifecycle(lifecycle, quiet = false) {
    const before = this.room.lifecycle;
    this.room.lifecycle = lifecycle;
    if (lifecycle === before && !quiet) return;
    if (lifecycle === 'live' && this.wantPlay && !this.player?.wanted) this.play();
    if (lifecycle === 'ended') {
      this.stopSpeaking(false, { closed: true });
      this.player?.stop('ended');
      this.es?.close();
      this.es = null;
      this.beaconer?.stop();
      if (!quiet) announce('This space has ended.');
    } else if (lifecycle === 'live' && before === 'scheduled' && !quiet) {
      if (this.reminder) this.remind('live');
      else announce('The space is live.');
    }
    this.render();
  }

  /** A caption (text, start and end in ms into the recording), from in-band or events. */
  onCaption(c) {
    if (!c || typeof c.t !== 'string' || (this.caption && this.caption.s === c.s && this.caption.t === c.t)) return;
    this.caption = c;
    this.captionAt = performance.now();
    this.renderCaption();
    this.publishState();
  }

  /** Captions on or off, remembered in this browser. */
  setCaptions(on) {
    this.captionsOn = on;
    try {
      localStorage.setItem('tribune.captions', on ? 'on' : 'off');
    } catch {
      // storage refused: for this page only
    }
    this.renderCaption();
    this.publishState();
  }

  dropHand(sub) {
    this.room.hands = this.room.hands.filter(([s]) => s !== sub);
    if (sub === this.me()) this.setHand(false);
    this.renderHands();
    this.renderParticipation();
  }

  /** Remembers the hand in the session, so a reload knows to hold the event stream. */
  setHand(up) {
    this.handRaised = up;
    if (this.session && !!this.session.hand !== up) {
      this.session = { ...this.session, hand: up };
      saveSession(this.id, this.session);
    }
  }

  /** Reactions added (the event stream's `reactions`: counts since the last). */
  onReactions(counts) {
    const totals = { ...Object.fromEntries(this.serverTotals ?? []) };
    for (const [e, n] of Object.entries(counts)) totals[e] = (totals[e] || 0) + n;
    this.onServerTotals(totals);
  }

  /**
   * Everyone's reaction totals (snapshot, in-band): what grew floats by, except our own
   * reactions, which floated when sent; `quiet` (the first snapshot) only takes the totals.
   */
  onServerTotals(totals, quiet = false) {
    const before = this.serverTotals;
    this.serverTotals = new Map(Object.entries(totals));
    if (before && !quiet) {
      for (const [e, n] of this.serverTotals) {
        let d = n - (before.get(e) || 0);
        if (d <= 0) continue;
        const own = this.ownReactions.get(e) || 0;
        const mine = Math.min(own, d);
        if (mine) this.ownReactions.set(e, own - mine);
        d -= mine;
        for (let i = 0; i < Math.min(d, 5); i++) this.float(e);
      }
    }
    this.renderReactionTotals();
  }

  // ---------------------------------------------------------------------------------------
  // Who am I

  me() {
    return this.session?.sub ?? null;
  }

  myStageEntry() {
    return this.room.stage.find((p) => p.sub === this.me()) ?? null;
  }

  myRole() {
    const me = this.me();
    if (!me) return 'listener';
    if (this.room.host === me) return 'host';
    // The stage roster carries each participant's current role (a co-host sent back to the
    // audience is a listener again).
    return this.myStageEntry()?.role ?? 'listener';
  }

  /** This visitor's token says speaker or co-host (a speaker link), whatever the stage says. */
  hasStageToken() {
    const r = this.session?.role;
    return r === 'speaker' || r === 'cohost';
  }

  isModerator() {
    const r = this.myRole();
    return r === 'host' || r === 'cohost';
  }

  publishState() {
    window.tribune.state = {
      page: 'space',
      sub: this.me(),
      role: this.myRole(),
      tokenRole: this.session?.role ?? null,
      reminder: !!this.reminder,
      captions: !!this.hasCaptions,
      captionsOn: !!this.captionsOn,
      caption: this.caption?.t ?? null,
      lifecycle: this.room.lifecycle,
      onStage: !!this.myStageEntry(),
      connected: this.stageState === 'connected',
      player: this.playerState,
    };
  }

  // ---------------------------------------------------------------------------------------
  // Actions

  async act(action, sub, { quiet = false } = {}) {
    try {
      const r = await api('POST', `${this.base}/stage/${action}`, {
        token: this.session.token,
        body: sub ? { sub } : undefined,
      });
      return r;
    } catch (e) {
      if (!quiet) announce(e.message);
      throw e;
    }
  }

  async lifecycle(verb) {
    try {
      await api('POST', `${this.base}/${verb}`, { token: this.session.token });
    } catch (e) {
      announce(e.message);
    }
  }

  async play() {
    this.wantPlay = true;
    audioContext(); // unlocks audio in this click, even if the sound starts later (scheduled)
    if (this.room.lifecycle !== 'live' && this.room.lifecycle !== 'interrupted') {
      announce('The audio starts when the space goes live.');
      this.renderPlayer();
      return;
    }
    if (!this.player) {
      this.player = new LivePlayer(this.id, (state, detail) => {
        this.playerState = state;
        this.playerDetail = detail;
        this.renderPlayer();
        this.publishState();
      }, (msg) => this.onMeta(msg));
      this.player.setVolume(Number(this.els.volume?.value ?? 100) / 100);
    }
    await this.player.play();
  }

  pause() {
    this.wantPlay = false;
    this.player?.stop();
    this.renderPlayer();
  }

  /** A name typed: the page joins under it (or renews its token under it). */
  async rename(name) {
    if (!name || this.myRole() !== 'listener' || name === this.session?.name) return;
    saveName(name);
    try {
      if (!this.session) await this.ensureJoined(name);
      else this.session = await this.renew(this.session, name);
      this.renderParticipation();
    } catch (e) {
      announce(e.message);
    }
  }

  async raiseHand() {
    const name = this.els.name?.value.trim() || 'Listener';
    saveName(name);
    try {
      await this.ensureJoined(name);
      if (name !== this.session.name && this.myRole() === 'listener') {
        // The name travels in the token: renew it under the new name (same participant).
        this.session = await this.renew(this.session, name);
      }
      await this.act('raise-hand');
      this.setHand(true);
      this.syncEvents();
      announce('Your hand is raised. The host will see your request.');
    } catch (e) {
      if (e?.status === 0 || e?.status >= 500) announce(e.message); // act() announced the others
    }
    this.renderParticipation();
  }

  async lowerHand() {
    await this.act('lower-hand').catch(() => {});
    this.setHand(false);
    this.syncEvents();
    this.renderParticipation();
  }

  async joinStage() {
    try {
      if (this.room.invited.includes(this.me())) await this.act('accept');
      const t = await this.act('token');
      this.session = { ...this.session, token: t.token, role: t.role, exp: t.exp, renew_after: null };
      saveSession(this.id, this.session);
    } catch {
      return;
    }
    if (this.player?.wanted) {
      // One's own voice, a second late, would be confusing: the others come over WebRTC.
      this.resumePlayAfterStage = true;
      this.player.stop();
    }
    this.publisher = new StagePublisher(this.summary.whip_url, () => this.session.token, (state, detail) => {
      this.stageState = state;
      if (state === 'error') announce(detail);
      this.renderParticipation();
      this.publishState();
    });
    try {
      await this.publisher.start();
      const mine = this.myStageEntry();
      if (mine?.muted) this.publisher.setMuted(true);
    } catch (e) {
      announce(e.name === 'NotAllowedError' ? 'Microphone permission was denied.' : e.message);
      this.publisher?.stop();
      this.publisher = null;
      this.renderParticipation();
    }
  }

  async declineInvite() {
    await this.act('decline-invite').catch(() => {});
  }

  /** Off the stage: `stepDown` tells the server; `closed` when the server ended the session. */
  async stopSpeaking(stepDown, { closed = false } = {}) {
    const p = this.publisher;
    this.publisher = null;
    if (p) p.stop({ closed });
    this.stageState = 'stopped';
    if (stepDown && this.myRole() !== 'host' && this.myStageEntry()) {
      await this.act('leave').catch(() => {});
    }
    if (this.resumePlayAfterStage && this.room.lifecycle === 'live') {
      this.resumePlayAfterStage = false;
      this.play();
    }
    this.renderParticipation();
    this.publishState();
  }

  async toggleMute() {
    const mine = this.myStageEntry();
    const muted = mine ? mine.muted : this.publisher?.muted;
    try {
      if (muted) {
        await this.act('unmute');
        this.publisher?.setMuted(false);
      } else {
        this.publisher?.setMuted(true);
        await this.act('mute');
      }
    } catch {
      // announced (e.g. muted by the host)
    }
  }

  /** A reaction floats at once and counts in our total; it reaches the server in a batch. */
  react(emoji) {
    if (this.room.lifecycle === 'ended') return;
    if (!this.reactionBatch.add(emoji)) {
      announce('Slow down: your reactions are still on their way.');
      return;
    }
    this.ownReactions.set(emoji, (this.ownReactions.get(emoji) || 0) + 1);
    this.float(emoji);
    this.renderReactionTotals();
  }

  async sendReactions(counts) {
    const s = await this.ensureJoined();
    try {
      await api('POST', `${this.base}/reactions`, { token: s.token, body: { counts } });
    } catch (e) {
      if (e.status === 401) {
        // An expired or revoked listener token: join again once, then send.
        saveSession(this.id, null);
        this.session = null;
        const t = await this.ensureJoined();
        return api('POST', `${this.base}/reactions`, { token: t.token, body: { counts } });
      }
      throw e;
    }
  }

  async refreshAudience() {
    if (!this.isModerator() || this.room.lifecycle === 'ended' || document.visibilityState !== 'visible') return;
    try {
      const r = await api('GET', `${this.base}/audience?limit=50`, { token: this.session.token });
      this.audience = r.audience;
      this.renderAudience();
    } catch {
      // next poll
    }
  }
}

Object.assign(SpacePage.prototype, viewMethods, hostMethods);

function loadReminder(id) {
  try {
    return localStorage.getItem(`tribune.remind.${id}`) === '1';
  } catch {
    return false;
  }
}

function saveReminder(id, on) {
  try {
    if (on) localStorage.setItem(`tribune.remind.${id}`, '1');
    else localStorage.removeItem(`tribune.remind.${id}`);
  } catch {
    // storage refused: the reminder lasts as long as the page
  }
}
