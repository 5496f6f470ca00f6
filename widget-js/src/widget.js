// The call widget: the call button, the call panel and its screens (spec parts 2.6 and
// 6), driven by the state machine in machine.js. This module does the I/O — microphone,
// Web Audio, the gateway's API, one `CallConnection` per attempt — and rendering.
//
// Public surface (see README.md):
//  - `mountFromScript(script, base)`: used by call.js for `<script data-chatbot-id>`.
//  - `mountCallWidget(options)`: mounts one widget (the Test Call page uses preview mode).
//  - DOM events on `document`: `voicewidget:start-chat` and `voicewidget:call-ended` (out),
//    `voicewidget:chat-available` (in: a chat widget on the page announces itself).
//  - The host element `<voice-call-widget>` carries `data-state` and a read-only
//    `voiceWidget` test hook (state, sessionId, muted, audioLevels()).

import { strings, endReasons, durationInWords, clock } from './i18n.js';
import { States, transition, isLive } from './machine.js';
import { GatewayApi } from './api.js';
import { CallConnection } from './signaling.js';
import { Transcript, speakerLabel, transcriptText, transcriptFileName } from './transcript.js';
import { Visualizer, meterFor, rgb, shade, withAlpha } from './visualizer.js';
import { css } from './styles.js';
import { h } from './dom.js';
import { icon } from './icons.js';

const RETRIES = 3;
const DEFAULTS = { retryBaseMs: 1000, connectTimeoutMs: 15000, bottomOffset: 96 };
let widgetCount = 0;

/** Mounts the widget described by a `<script src=".../widget/v1/call.js" data-chatbot-id>`. */
export function mountFromScript(script, base) {
  const data = script.dataset;
  const number = (value, fallback) => (value !== undefined && value !== '' && Number.isFinite(Number(value)) ? Number(value) : fallback);
  return mountCallWidget({
    gateway: base.replace(/\/widget\/v1\/?$/, ''),
    chatbotId: data.chatbotId,
    retryBaseMs: number(data.retryBaseMs, DEFAULTS.retryBaseMs),
    connectTimeoutMs: number(data.connectTimeoutMs, DEFAULTS.connectTimeoutMs),
    bottomOffset: number(data.bottomOffset, DEFAULTS.bottomOffset),
    chat: flag(data.chat),
  });
}

/** A boolean data attribute: present (empty), `true`, `on`, `yes` or `1`. */
function flag(value) {
  return value !== undefined && ['', 'true', 'on', 'yes', '1'].includes(value.trim().toLowerCase());
}

/**
 * Mounts one widget. Resolves to the host element, or null when there is nothing to
 * show (not a call chatbot, or its settings could not be read: a warning says why).
 *
 * @param {object} options
 * @param {string} options.gateway the gateway's base URL
 * @param {string} options.chatbotId
 * @param {object} [options.config] the widget settings (read from the gateway when absent)
 * @param {'embed'|'preview'} [options.mode] `preview`: inline in `container`, always open
 * @param {Element} [options.container] where a preview goes
 * @param {(signal: AbortSignal) => Promise<object>} [options.openSession] opens a call
 *   session (default: the public widget session endpoint)
 * @param {number} [options.retryBaseMs] first automatic retry delay (then ×2, ×4)
 * @param {number} [options.connectTimeoutMs] how long a call may take to connect
 * @param {number} [options.bottomOffset] distance of the button from the bottom, px
 * @param {boolean} [options.chat] the page has a chat widget: offer "Back to Chat",
 *   "Start Chat" and "Use Chat Instead" (also switched on by a `voicewidget:chat-available`
 *   event on `document`)
 */
export async function mountCallWidget(options) {
  const opts = { ...DEFAULTS, mode: 'embed', ...options };
  const api = new GatewayApi(opts.gateway);
  let config = opts.config;
  if (!config) {
    try {
      config = await api.chatbot(opts.chatbotId);
    } catch (err) {
      console.warn(`[voice widget] chatbot ${opts.chatbotId}: ${err.message} (${err.code ?? 'error'}); the call button is not shown.`);
      return null;
    }
  }
  if (!config?.call) return null;
  await domReady();
  const host = document.createElement('voice-call-widget');
  const widget = new CallWidget(host, api, config, opts);
  (opts.mode === 'preview' && opts.container ? opts.container : document.body).append(host);
  widget.start();
  return host;
}

function domReady() {
  if (document.body) return Promise.resolve();
  return new Promise((resolve) => document.addEventListener('DOMContentLoaded', () => resolve(), { once: true }));
}

class CallWidget {
  constructor(host, api, config, opts) {
    this.host = host;
    this.api = api;
    this.config = config;
    this.call = config.call;
    this.opts = opts;
    this.preview = opts.mode === 'preview';
    this.hasChat = opts.chat === true;
    this.id = `vw${++widgetCount}`;
    this.state = States.idle;
    this.panelOpen = false;
    this.transcript = new Transcript();
    this.generation = 0; // bumped to abandon a connect in progress
    this.meters = { agent: null, user: null };
    this.muted = false;
    this.session = null;
    this.conn = null;
    this.stream = null;
    this.audioContext = null;
    this.activeAt = null; // performance.now() when the call became active
    this.startedAt = null; // the same, as a Date (for the transcript file)
    this.endInfo = null;
    this.failure = null;
    this.micError = null;
    this.speaking = 'none';
    this.ui = {};

    host.setAttribute('data-voice-widget', '');
    host.setAttribute('data-chatbot-id', config.chatbotId);
    host.setAttribute('data-position', config.chat?.position === 'bottom-left' ? 'bottom-left' : 'bottom-right');
    host.setAttribute('data-mode', this.preview ? 'preview' : 'embed');
    this.root = host.attachShadow({ mode: 'open' });
    const widget = this;
    // The test hook: read-only, and nothing here can change the call.
    Object.defineProperty(host, 'voiceWidget', {
      value: Object.freeze({
        get state() {
          return widget.state;
        },
        get sessionId() {
          return widget.session?.sessionId ?? null;
        },
        get muted() {
          return widget.muted;
        },
        audioLevels() {
          const read = (m) => (m ? { level: m.read(), peak: m.peak } : { level: 0, peak: 0 });
          const agent = read(widget.meters.agent);
          const user = read(widget.meters.user);
          return { agent: agent.level, agentPeak: agent.peak, user: user.level, userPeak: user.peak };
        },
      }),
    });
  }

  start() {
    const accent = /^#[0-9a-f]{6}$/i.test(this.call.buttonColor) ? this.call.buttonColor : '#10b981';
    const theme = `:host{--vw-accent:${accent};--vw-on-accent:${textOn(accent)};` +
      `--vw-accent-soft:${withAlpha(accent, 0.14)};--vw-accent-strong:${shade(accent, -0.45)};` +
      `--vw-bottom:${Math.max(0, Math.round(this.opts.bottomOffset))}px}`;
    this.root.append(h('style', { text: css }), h('style', { text: theme }));

    if (!this.preview) this.root.append(this.renderLauncher());
    this.ui.panel = h('div', {
      class: 'panel',
      id: `${this.id}-panel`,
      role: this.preview ? 'region' : 'dialog',
      'aria-labelledby': `${this.id}-title`,
      hidden: !this.preview,
    });
    this.ui.audio = h('audio', { autoplay: true, hidden: true });
    this.root.append(this.ui.panel, this.ui.audio);
    this.root.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.panelOpen && !this.preview) {
        event.stopPropagation();
        this.closePanel();
      }
    });
    window.addEventListener('pagehide', () => this.hangUpOnUnload());
    // A chat widget may load after this one: it says so, and the chat actions appear.
    document.addEventListener('voicewidget:chat-available', () => {
      if (this.hasChat) return;
      this.hasChat = true;
      this.renderedState = null;
      this.render(false);
    });
    if (this.preview) {
      this.panelOpen = true;
      this.dispatch('open', { focus: false });
    } else {
      this.render();
    }
  }

  // --- state --------------------------------------------------------------------------

  /** Applies a machine event; re-renders on a change. */
  dispatch(event, { focus = true } = {}) {
    const next = transition(this.state, event);
    if (!next) return false;
    this.state = next;
    if (next === States.idle && this.preview) return this.dispatch('open', { focus });
    this.render(focus);
    return true;
  }

  get available() {
    return this.call.available !== false;
  }

  // --- the button and the panel -------------------------------------------------------

  renderLauncher() {
    const available = this.available;
    const label = available ? this.call.buttonText || 'Call Us' : strings.callButtonUnavailable;
    this.ui.launcher = h(
      'button',
      {
        class: 'launcher',
        type: 'button',
        'aria-disabled': available ? false : 'true',
        'aria-expanded': available ? 'false' : false,
        'aria-controls': available ? `${this.id}-panel` : false,
        'aria-haspopup': available ? 'dialog' : false,
        title: available ? false : strings.callButtonUnavailable,
        onclick: () => this.toggle(),
      },
      h('span', { class: 'icon', 'aria-hidden': 'true', text: this.call.buttonIcon || '📞' }),
      h('span', { class: 'rec live-dot', 'aria-hidden': 'true' }),
      (this.ui.launcherText = h('span', { text: label })),
    );
    return h('div', { class: 'launcher-row' }, this.ui.launcher);
  }

  toggle() {
    if (!this.available) return;
    if (this.panelOpen) return this.closePanel();
    this.panelOpen = true;
    if (this.state === States.idle) this.dispatch('open');
    else this.render(true);
  }

  /** Hides the panel. A live call goes on; any other screen is left for idle. */
  closePanel() {
    if (this.preview) return;
    this.panelOpen = false;
    if (!isLive(this.state)) this.dispatch('close', { focus: false });
    this.render(false);
    this.ui.launcher?.focus();
  }

  /** "Back to Chat", "Start Chat", "Use Chat Instead": hand over to the chat widget. */
  startChat(reason) {
    document.dispatchEvent(
      new CustomEvent('voicewidget:start-chat', {
        bubbles: true,
        composed: true,
        detail: { chatbotId: this.config.chatbotId, reason },
      }),
    );
    if (!this.preview) this.panelOpen = false;
    this.dispatch('chat', { focus: false });
  }

  render(focus = false) {
    const { panel } = this.ui;
    this.host.dataset.state = this.state;
    if (this.ui.launcher) {
      const live = isLive(this.state);
      if (this.available) this.ui.launcher.setAttribute('aria-expanded', String(this.panelOpen));
      this.ui.launcher.classList.toggle('live', live);
      if (this.available) this.ui.launcherText.textContent = this.launcherLabel();
    }
    panel.hidden = !this.panelOpen || this.state === States.idle;
    if (this.renderedState !== this.state) {
      this.renderedState = this.state;
      this.visualizer?.stop();
      this.visualizer = null;
      this.ui.screen = {};
      const screen = {
        preCall: () => this.preCallScreen(),
        connecting: () => this.connectingScreen(),
        inCall: () => this.inCallScreen(),
        ended: () => this.endedScreen(),
        micDenied: () => this.micDeniedScreen(),
        failed: () => this.failedScreen(),
      }[this.state];
      panel.replaceChildren(...(screen ? screen() : []));
    }
    if (focus && this.panelOpen && !panel.hidden) this.ui.screen.focus?.focus();
  }

  /** The button's words: the configured text, "Connecting…" while a call connects, then "Return to call". */
  launcherLabel() {
    if (this.state === States.inCall) return strings.callButtonInCall;
    if (this.state === States.connecting) return strings.callButtonConnecting;
    return this.call.buttonText || 'Call Us';
  }

  /** A chat action, when the page has a chat to hand over to. */
  chatButton(reason, text, kind = 'btn') {
    if (!this.hasChat) return null;
    return h('button', { class: kind, type: 'button', onclick: () => this.startChat(reason) }, icon('chat'), text);
  }

  // --- screens ------------------------------------------------------------------------

  /** The panel's header: its title (or, before a call, Back to Chat: the screen's own heading is the title). */
  header(title, { back = false, extra = [] } = {}) {
    const heading = back
      ? h('button', { class: 'link', type: 'button', onclick: () => this.startChat('back-to-chat') }, icon('back'), strings.backToChat)
      : h('h2', { id: `${this.id}-title`, tabindex: '-1', text: title });
    const badge = this.preview ? h('span', { class: 'badge', text: strings.preview }) : null;
    const close = this.preview
      ? null
      : h('button', {
          class: 'close',
          type: 'button',
          'aria-label': isLive(this.state) ? `${strings.close} (the call continues)` : strings.close,
          onclick: () => this.closePanel(),
        }, icon('x', { size: 20 }));
    return h('header', {}, heading, badge, ...extra, close);
  }

  hero(name, kind = '') {
    return h('div', { class: `hero ${kind}`, 'aria-hidden': 'true' }, icon(name, { size: 40 }));
  }

  echoNote() {
    return this.call.echoMode ? h('p', { class: 'note', text: strings.echoNote }) : null;
  }

  preCallScreen() {
    const start = h('button', { class: 'btn primary', type: 'button', onclick: () => this.startCall('start') }, icon('mic'), strings.startCall);
    this.ui.screen.focus = start;
    const back = this.hasChat;
    return [
      this.header(strings.preCallTitle, { back }),
      h(
        'div',
        { class: 'body' },
        this.hero('phone'),
        back ? h('h3', { id: `${this.id}-title`, text: strings.preCallTitle }) : null,
        h('p', { text: this.call.welcomeMessage }),
        this.echoNote(),
        h('div', { class: 'actions' }, start),
      ),
    ];
  }

  connectingScreen() {
    const status = h('p', { class: 'status', role: 'status', text: this.connectingText ?? strings.connectingMicrophone });
    const cancel = h('button', { class: 'btn', type: 'button', onclick: () => this.cancel() }, strings.cancel);
    this.ui.screen.status = status;
    this.ui.screen.focus = cancel;
    return [
      this.header(strings.connectingTitle),
      h('div', { class: 'body' }, this.hero('phone', 'pulse'), status, h('div', { class: 'actions' }, cancel)),
    ];
  }

  inCallScreen() {
    const s = this.ui.screen;
    const timer = this.call.showCallDuration
      ? h(
          'span',
          { class: 'timer' },
          h('span', { class: 'rec', 'aria-hidden': 'true' }),
          (s.timer = h('span', { 'aria-label': strings.durationLabel, text: clock(this.elapsed()) })),
        )
      : h('span', { class: 'rec', 'aria-hidden': 'true' });
    const header = this.header(strings.inCallTitle, { extra: [timer] });
    s.focus = header.querySelector('h2');

    const canvas = h('canvas', { class: 'viz', role: 'img', 'aria-label': strings.visualizerLabel, 'data-style': this.call.visualizerStyle });
    this.visualizer = new Visualizer(canvas, this.call.visualizerStyle, { agent: this.call.buttonColor, user: '#6366f1' });
    this.visualizer.setMeter('agent', this.meters.agent);
    this.visualizer.setMeter('user', this.meters.user);
    s.status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
    s.error = h('p', { class: 'detail', role: 'alert', hidden: true });
    let transcript = null;
    if (this.call.showLiveTranscript) {
      s.lines = h('ol', { class: 'lines', 'aria-label': strings.transcriptTitle, tabindex: '0' });
      s.lineItems = new Map();
      // Screen readers hear each line once, when it is final (the list shows it growing).
      s.announcer = h('div', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'false' });
      transcript = h('section', { class: 'transcript' }, h('h4', { text: strings.transcriptTitle }), s.lines, s.announcer);
      for (const line of this.transcript.lines) this.showLine(line, true);
    }
    s.mute = h(
      'button',
      { class: 'round', type: 'button', 'aria-pressed': String(this.muted), onclick: () => this.setMuted(!this.muted) },
      (s.muteIcon = h('span', { class: 'disc', 'aria-hidden': 'true' }, icon(this.muted ? 'micOff' : 'mic', { size: 24 }))),
      (s.muteText = h('span', { text: this.muted ? strings.unmute : strings.mute })),
    );
    const end = h(
      'button',
      { class: 'round end', type: 'button', 'aria-label': strings.endCallLabel, onclick: () => this.hangUp() },
      h('span', { class: 'disc', 'aria-hidden': 'true' }, icon('phoneOff', { size: 24 })),
      h('span', { 'aria-hidden': 'true', text: strings.end }),
    );
    s.end = end;
    this.updateStatus();
    this.visualizer.start();
    return [
      header,
      h(
        'div',
        { class: transcript ? 'body in-call with-transcript' : 'body in-call' },
        canvas,
        s.status,
        s.error,
        this.echoNote(),
        transcript,
        h('div', { class: 'controls' }, s.mute, end),
      ),
    ];
  }

  endedScreen() {
    const info = this.endInfo ?? { reason: 'caller_hangup', durationMs: 0 };
    // Why it ended: the gateway's message when it gave one, else ours (nothing when the
    // caller hung up).
    const why = info.reason === 'caller_hangup' ? '' : info.message || endReasons[info.reason] || '';
    const thanks = h('h3', { tabindex: '-1', text: strings.thanks });
    this.ui.screen.focus = thanks;
    const hasLines = this.transcript.finalLines().length > 0;
    return [
      this.header(strings.endedTitle),
      h(
        'div',
        { class: 'body' },
        this.hero('check', 'ok'),
        thanks,
        h('p', { class: 'duration', text: strings.duration(durationInWords(info.durationMs)) }),
        why ? h('p', { class: 'detail', text: why }) : null,
        h(
          'div',
          { class: 'actions' },
          h('button', { class: 'btn', type: 'button', disabled: !hasLines, onclick: () => this.downloadTranscript() }, icon('download'), strings.downloadTranscript),
          this.chatButton('after-call', strings.startChat),
          h('button', { class: 'btn primary', type: 'button', onclick: () => this.startCall('callAgain') }, icon('phone'), strings.callAgain),
        ),
        this.session ? this.ratingForm() : null,
      ),
    ];
  }

  ratingForm() {
    const name = `${this.id}-rating`;
    let value = 0;
    const labels = [];
    const send = h('button', { class: 'btn primary', type: 'button', disabled: true }, strings.rateSubmit);
    const comment = h('textarea', { id: `${this.id}-comment`, maxlength: '1000', rows: '2' });
    const message = h('p', { class: 'detail', role: 'status' });
    const stars = h('div', { class: 'stars' });
    for (let n = 1; n <= 5; n++) {
      const id = `${name}-${n}`;
      const input = h('input', {
        type: 'radio',
        name,
        id,
        value: String(n),
        'aria-label': strings.rateStar(n),
        onchange: () => {
          value = n;
          send.disabled = false;
          labels.forEach((label, i) => label.classList.toggle('on', i < n));
        },
      });
      const label = h('label', { for: id, 'aria-hidden': 'true' }, icon('star', { size: 28, fill: true }));
      labels.push(label);
      stars.append(input, label);
    }
    const session = this.session;
    const fieldset = h(
      'fieldset',
      { class: 'rating' },
      h('legend', { text: strings.rateTitle }),
      stars,
      h('label', { for: comment.id, class: 'sr-only', text: strings.rateComment }),
      comment,
      h('div', { class: 'rating-actions' }, send),
    );
    comment.setAttribute('placeholder', strings.rateComment);
    send.addEventListener('click', async () => {
      send.disabled = true;
      try {
        await this.rate(session, value, comment.value);
        fieldset.replaceChildren(h('p', { class: 'status', role: 'status', tabindex: '-1', text: strings.rateThanks }));
        fieldset.firstChild.focus();
      } catch (err) {
        message.textContent = `${strings.rateFailed} ${err.message ?? ''}`.trim();
        send.disabled = false;
      }
    });
    return h('div', { style: 'width:100%' }, fieldset, message);
  }

  micDeniedScreen() {
    const heading = h('h3', { tabindex: '-1', text: strings.micHeading });
    this.ui.screen.focus = heading;
    const missing = this.micError === 'NotFoundError' || this.micError === 'OverconstrainedError';
    const help = h('p', { class: 'help', id: `${this.id}-mic-help`, hidden: true, text: strings.browserSettingsHelp });
    const settings = h(
      'button',
      {
        class: 'btn',
        type: 'button',
        'aria-expanded': 'false',
        'aria-controls': help.id,
        onclick: () => {
          help.hidden = !help.hidden;
          settings.setAttribute('aria-expanded', String(!help.hidden));
        },
      },
      icon('lock'),
      strings.browserSettings,
    );
    return [
      this.header(strings.micTitle),
      h(
        'div',
        { class: 'body' },
        this.hero('mic'),
        heading,
        h('p', { text: missing ? strings.micMissing : strings.micBody }),
        h(
          'div',
          { class: 'actions' },
          missing ? null : settings,
          help,
          h('button', { class: 'btn', type: 'button', onclick: () => this.startCall('retry') }, icon('retry'), strings.tryAgain),
          this.chatButton('microphone-denied', strings.useChat, 'btn primary'),
        ),
      ),
    ];
  }

  failedScreen() {
    const heading = h('h3', { tabindex: '-1', text: strings.failedHeading });
    this.ui.screen.focus = heading;
    const detail = this.failure?.message;
    return [
      this.header(strings.failedTitle),
      h(
        'div',
        { class: 'body' },
        this.hero('x', 'bad'),
        heading,
        h('p', { text: strings.failedBody }),
        detail ? h('p', { class: 'detail', text: detail }) : null,
        h(
          'div',
          { class: 'actions' },
          h('button', { class: 'btn primary', type: 'button', onclick: () => this.startCall('retry') }, icon('retry'), strings.retryCall),
          this.chatButton('connection-failed', strings.startChat),
        ),
      ),
    ];
  }

  // --- placing a call -----------------------------------------------------------------

  /** Starts a call from a click (`start`, `retry` or `callAgain`). */
  startCall(event) {
    if (!this.available || !transition(this.state, event)) return;
    // Both must happen inside the click: autoplay rules want a user gesture.
    this.prepareAudio();
    this.resetCall();
    this.connectingText = strings.connectingMicrophone;
    this.dispatch(event);
    this.connect(++this.generation);
  }

  prepareAudio() {
    if (!this.audioContext || this.audioContext.state === 'closed') {
      this.audioContext = new AudioContext();
    }
    this.audioContext.resume().catch(() => {});
    this.ui.audio.play().catch(() => {});
  }

  resetCall() {
    this.transcript.clear();
    this.session = null;
    this.endInfo = null;
    this.failure = null;
    this.micError = null;
    this.muted = false;
    this.speaking = 'none';
    this.activeAt = null;
    this.meters = { agent: null, user: null };
  }

  async connect(generation) {
    const current = () => generation === this.generation && this.state === States.connecting;
    const audio = this.call.audio ?? {};
    if (!navigator.mediaDevices?.getUserMedia || typeof RTCPeerConnection === 'undefined') {
      this.failure = { message: window.isSecureContext ? strings.unsupported : strings.insecure };
      this.dispatch('failed');
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          echoCancellation: audio.echoCancellation !== false,
          noiseSuppression: audio.noiseSuppression !== false,
          autoGainControl: audio.autoGainControl !== false,
        },
      });
    } catch (err) {
      if (!current()) return;
      this.micError = err?.name ?? 'Error';
      this.dispatch('micDenied');
      return;
    }
    if (!current()) return stopTracks(stream);
    this.stream = stream;
    this.meters.user = meterFor(this.audioContext, stream);

    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) {
        this.setConnectingText(strings.retrying(attempt, RETRIES));
        await sleep(this.opts.retryBaseMs * 2 ** (attempt - 1));
        if (!current()) return;
      }
      this.setConnectingText(strings.connectingCall);
      const outcome = await this.attempt(current);
      if (!current()) return;
      if (outcome.ok) return;
      if (!outcome.retryable || attempt >= RETRIES) {
        this.failure = outcome;
        this.stopMedia();
        this.dispatch('failed');
        return;
      }
    }
  }

  /** One attempt: a session, then the socket and peer until active or failed. */
  async attempt(current) {
    const abort = new AbortController();
    this.abortAttempt = () => abort.abort();
    let session;
    try {
      session = this.opts.openSession ? await this.opts.openSession(abort.signal) : await this.api.openSession(this.config.chatbotId, abort.signal);
    } catch (err) {
      if (err?.name === 'AbortError') return { ok: false, retryable: false };
      const unavailable = err?.code === 'voice_unavailable' || err?.code === 'calls_disabled';
      return {
        ok: false,
        retryable: err?.retryable !== false,
        code: err?.code,
        message: unavailable ? strings.callButtonUnavailable : err?.message,
      };
    }
    if (!current()) return { ok: false, retryable: false };
    this.session = session;
    const conn = new CallConnection({ session, stream: this.stream, connectTimeoutMs: this.opts.connectTimeoutMs });
    this.conn = conn;
    return new Promise((resolve) => {
      this.abortAttempt = () => resolve({ ok: false, retryable: false });
      conn.addEventListener('remotestream', (e) => this.playRemote(e.detail.stream));
      conn.addEventListener('active', () => {
        this.onActive();
        resolve({ ok: true });
      });
      conn.addEventListener('failure', (e) => {
        if (this.conn === conn) this.conn = null;
        // Free the gateway's side of a session that never connected (best effort).
        this.api.endCall(session.sessionId, session.token).catch(() => {});
        resolve({ ok: false, ...e.detail });
      });
      conn.addEventListener('ended', (e) => this.onEnded(conn, e.detail));
      conn.addEventListener('speaking', (e) => {
        this.speaking = e.detail.who;
        this.updateStatus();
      });
      conn.addEventListener('transcript', (e) => this.onTranscript(e.detail));
      conn.addEventListener('servererror', (e) => this.showError(e.detail.message));
      try {
        conn.start();
      } catch (err) {
        resolve({ ok: false, retryable: false, code: 'unsupported', message: String(err?.message ?? err) });
      }
    });
  }

  setConnectingText(text) {
    this.connectingText = text;
    if (this.ui.screen.status && this.state === States.connecting) this.ui.screen.status.textContent = text;
  }

  playRemote(stream) {
    this.ui.audio.srcObject = stream;
    this.ui.audio.play().catch(() => {});
    if (this.audioContext) {
      this.meters.agent = meterFor(this.audioContext, stream);
      this.visualizer?.setMeter('agent', this.meters.agent);
    }
  }

  onActive() {
    this.activeAt = performance.now();
    this.startedAt = new Date();
    this.dispatch('active');
    this.tick = setInterval(() => {
      if (this.ui.screen.timer) this.ui.screen.timer.textContent = clock(this.elapsed());
    }, 1000);
  }

  elapsed() {
    return this.activeAt === null ? 0 : performance.now() - this.activeAt;
  }

  onTranscript(message) {
    const change = this.transcript.apply(message);
    if (change && this.state === States.inCall) this.showLine(change.line, change.isNew);
  }

  showLine(line, isNew) {
    const s = this.ui.screen;
    if (!s.lines) return;
    const list = s.lines;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    let item = s.lineItems.get(line.id);
    if (!item) {
      item = h('li', { class: line.role }, h('span', { class: 'who', text: `${speakerLabel(line.role)}: ` }), h('span', { class: 'text' }));
      s.lineItems.set(line.id, item);
      list.append(item);
    }
    item.lastChild.textContent = line.text;
    item.classList.toggle('partial', !line.final);
    if (line.final && !item.dataset.announced) {
      item.dataset.announced = 'true';
      s.announcer.append(h('p', { text: `${speakerLabel(line.role)}: ${line.text}` }));
      while (s.announcer.childElementCount > 3) s.announcer.firstElementChild.remove();
    }
    if (atBottom || isNew) list.scrollTop = list.scrollHeight;
  }

  updateStatus() {
    const status = this.ui.screen.status;
    if (!status || this.state !== States.inCall) return;
    const text =
      this.speaking === 'agent'
        ? strings.agentSpeaking
        : this.speaking === 'user' && !this.muted
          ? strings.userSpeaking
          : this.muted
            ? strings.mutedStatus
            : strings.listening;
    status.textContent = text;
    status.dataset.speaking = this.speaking;
  }

  showError(message) {
    const el = this.ui.screen.error;
    if (!el || !message) return;
    el.textContent = message;
    el.hidden = false;
  }

  setMuted(muted) {
    if (this.state !== States.inCall || !this.conn) return;
    this.muted = muted;
    this.conn.setMuted(muted);
    const s = this.ui.screen;
    s.mute?.setAttribute('aria-pressed', String(muted));
    s.muteIcon?.replaceChildren(icon(muted ? 'micOff' : 'mic', { size: 24 }));
    if (s.muteText) s.muteText.textContent = muted ? strings.unmute : strings.mute;
    this.updateStatus();
  }

  hangUp() {
    if (this.state !== States.inCall || !this.conn) return;
    this.ui.screen.end?.setAttribute('disabled', '');
    this.conn.hangUp();
  }

  /** Cancels a call that is still connecting. */
  cancel() {
    this.generation++;
    this.abortAttempt?.();
    const session = this.session;
    if (this.conn) {
      this.conn.close();
      this.conn = null;
      if (session) this.api.endCall(session.sessionId, session.token).catch(() => {});
    }
    this.stopMedia();
    this.dispatch('cancel');
  }

  onEnded(conn, detail) {
    if (this.conn === conn) this.conn = null;
    if (this.state !== States.inCall) return;
    const durationMs = Number.isFinite(detail.durationMs) ? detail.durationMs : this.elapsed();
    this.endInfo = { reason: detail.reason ?? 'caller_hangup', durationMs, message: detail.message };
    const session = this.session;
    if (!detail.confirmed && session) {
      // The gateway did not confirm (the socket or the peer dropped): make sure it ends.
      this.api.endCall(session.sessionId, session.token).catch(() => {});
    }
    this.stopMedia();
    // A call that ends while the panel is hidden still shows how it ended (without
    // taking the focus from wherever the visitor is on the page).
    const focus = this.panelOpen;
    this.panelOpen = true;
    this.dispatch(detail.confirmed || detail.reason === 'caller_hangup' ? 'ended' : 'dropped', { focus });
    document.dispatchEvent(
      new CustomEvent('voicewidget:call-ended', {
        bubbles: true,
        composed: true,
        detail: {
          chatbotId: this.config.chatbotId,
          sessionId: session?.sessionId ?? null,
          reason: this.endInfo.reason,
          durationMs,
          preview: this.preview,
        },
      }),
    );
  }

  stopMedia() {
    clearInterval(this.tick);
    this.visualizer?.stop();
    if (this.stream) stopTracks(this.stream);
    this.stream = null;
    this.ui.audio.srcObject = null;
    this.audioContext?.suspend().catch(() => {});
  }

  hangUpOnUnload() {
    const session = this.session;
    if (!this.conn || !session) return;
    this.api.endCallOnUnload(session.sessionId, session.token);
    this.conn.close();
    this.conn = null;
  }

  async rate(session, rating, comment) {
    try {
      await this.api.rate(session.sessionId, session.token, rating, comment);
    } catch (err) {
      // The hang-up may still be being recorded: once more, shortly.
      if (err?.code !== 'call_not_ended') throw err;
      await sleep(500);
      await this.api.rate(session.sessionId, session.token, rating, comment);
    }
  }

  downloadTranscript() {
    const lines = this.transcript.finalLines();
    const startedAt = this.startedAt ?? new Date();
    const text = transcriptText({
      title: this.config.title,
      startedAt,
      durationMs: this.endInfo?.durationMs ?? 0,
      lines,
    });
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
    const link = h('a', { href: url, download: transcriptFileName(startedAt), hidden: true });
    this.root.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}

/** White or near-black, whichever contrasts more with `hex` (WCAG relative luminance). */
export function textOn(hex) {
  const [r, g, b] = rgb(hex).map((c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  const dark = 0.0118; // #111827
  return (1.05 / (luminance + 0.05)) >= ((luminance + 0.05) / (dark + 0.05)) ? '#ffffff' : '#111827';
}

function stopTracks(stream) {
  for (const track of stream.getTracks()) track.stop();
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
