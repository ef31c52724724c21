// Speaking from the browser: the microphone, published with WHIP (RFC 9725) over one
// RTCPeerConnection. The transceiver is `sendrecv`: tribune answers with the mix of the OTHER
// speakers (mix-minus) on the same connection, which the page plays — so a speaker hears the
// conversation without echoing itself, at WebRTC latency.
//
// tribune is ICE-lite with its candidates in the answer and does not take trickled candidates
// (PATCH is 405), so the offer is sent once gathering is complete (or after GATHER_MS with what
// was gathered). A failed connection is re-published (DELETE the old session, POST a new offer)
// with back-off, as WHIP clients do without ICE restarts.

import { audioContext, analyser } from './player.js';
import { backoff } from './ui.js';

const GATHER_MS = 2500;
const DISCONNECTED_GRACE_MS = 5000;

export class StagePublisher {
  /**
   * @param {string} whipUrl the space's WHIP endpoint
   * @param {() => string} getToken the current speaker token
   * @param {(state: string, detail?: string) => void} onState 'microphone' | 'connecting' |
   *   'connected' | 'reconnecting' | 'stopped' | 'error'
   */
  constructor(whipUrl, getToken, onState) {
    this.whipUrl = new URL(whipUrl, location.href).href;
    this.getToken = getToken;
    this.onState = onState;
    this.stream = null;
    this.pc = null;
    this.resource = null;
    this.wanted = false;
    this.muted = false;
    this.attempt = 0;
    this.timer = null;
    this.heard = document.createElement('audio');
    this.heard.autoplay = true;
    this.heard.setAttribute('aria-hidden', 'true');
    document.body.append(this.heard);
    // Back online while waiting to publish again: do it now.
    addEventListener('online', () => {
      if (this.wanted && this.retrying) {
        clearTimeout(this.timer);
        this.attempt = 0;
        this.retrying = false;
        this.publish().catch((e) => this.retry(e.message));
      }
    });
  }

  /** Asks for the microphone (echo cancellation on) and publishes. */
  async start() {
    this.wanted = true;
    this.onState('microphone');
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error(window.isSecureContext
        ? 'This browser cannot capture audio.'
        : 'The microphone needs a secure page: open this site over https.');
    }
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      video: false,
    });
    this.applyMute();
    audioContext(); // unlock audio output while we are in a user gesture
    await this.publish();
  }

  /** Mutes or unmutes the microphone locally (the caller also tells the server). */
  setMuted(m) {
    this.muted = m;
    this.applyMute();
  }

  applyMute() {
    for (const t of this.stream?.getAudioTracks() ?? []) t.enabled = !this.muted;
  }

  async publish() {
    this.closePc();
    this.onState(this.attempt ? 'reconnecting' : 'connecting');
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceServers: [] });
    this.pc = pc;
    window.tribune.pc = pc;
    const track = this.stream.getAudioTracks()[0];
    const tr = pc.addTransceiver(track, { direction: 'sendrecv', streams: [this.stream] });
    const caps = RTCRtpReceiver.getCapabilities?.('audio');
    if (caps && tr.setCodecPreferences) {
      const opus = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'audio/opus');
      if (opus.length) tr.setCodecPreferences(opus);
    }
    pc.addEventListener('track', (ev) => this.hear(ev.streams[0] || new MediaStream([ev.track])));
    pc.addEventListener('connectionstatechange', () => this.onConnection(pc));
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    if (this.pc !== pc || !this.wanted) return;
    const res = await fetch(this.whipUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${this.getToken()}` },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) {
      let msg = `${res.status}`;
      try {
        msg = (await res.json()).message || msg;
      } catch {
        // not JSON
      }
      const err = new Error(`the server refused to publish: ${msg}`);
      err.status = res.status;
      throw err;
    }
    this.resource = new URL(res.headers.get('location'), this.whipUrl).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  }

  hear(stream) {
    // Chrome plays a remote WebRTC stream into WebAudio only while a media element also has it.
    this.heard.srcObject = stream;
    this.heard.play().catch(() => {});
    const ctx = audioContext();
    const an = analyser(ctx);
    ctx.createMediaStreamSource(stream).connect(an);
    this.analyser = an;
    window.tribune.stageAnalyser = an;
  }

  onConnection(pc) {
    if (pc !== this.pc || !this.wanted) return;
    const s = pc.connectionState;
    clearTimeout(this.timer);
    if (s === 'connected') {
      this.attempt = 0;
      this.onState('connected');
    } else if (s === 'failed') {
      this.retry('connection failed');
    } else if (s === 'disconnected') {
      this.onState('reconnecting', 'connection interrupted');
      this.timer = setTimeout(() => pc.connectionState !== 'connected' && this.retry('connection lost'), DISCONNECTED_GRACE_MS);
    }
  }

  retry(why) {
    if (!this.wanted) return;
    this.onState('reconnecting', why);
    this.deleteResource();
    clearTimeout(this.timer);
    this.retrying = true;
    this.timer = setTimeout(async () => {
      this.retrying = false;
      try {
        await this.publish();
      } catch (e) {
        if (e.status === 401 || e.status === 403 || e.status === 404 || e.status === 409 || e.status === 410) {
          this.stop();
          this.onState('error', e.message);
        } else {
          this.retry(e.message);
        }
      }
    }, backoff(this.attempt++));
  }

  deleteResource() {
    const url = this.resource;
    this.resource = null;
    if (url) {
      fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${this.getToken()}` }, keepalive: true })
        .catch(() => {});
    }
  }

  closePc() {
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }

  /**
   * Leaves: closes the WHIP session (unless the server closed it already: `closed`) and
   * releases the microphone.
   */
  stop({ closed = false } = {}) {
    this.wanted = false;
    clearTimeout(this.timer);
    if (closed) this.resource = null;
    this.deleteResource();
    this.closePc();
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
    this.heard.srcObject = null;
    window.tribune.stageAnalyser = null;
    window.tribune.pc = null;
    this.onState('stopped');
  }
}

/** Resolves when ICE gathering is complete, or after GATHER_MS. */
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => pc.iceGatheringState === 'complete' && done();
    const t = setTimeout(done, GATHER_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}
