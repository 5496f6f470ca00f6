// One call attempt: the signaling WebSocket and the WebRTC peer of
// docs/widget-protocol.md. It owns the socket and the peer (not the microphone) and
// reports what happens as DOM events on itself:
//
//   remotestream {stream}        the agent's audio arrived
//   active                       the call is up (state: active)
//   speaking {who}               agent | user | none
//   transcript {role,text,final,itemId}
//   servererror {code,message,retryable}   an `error` after the call became active
//   failure {retryable,code,message}       the attempt failed before becoming active
//   ended {reason,durationMs,confirmed,message}   the call is over (after active, or
//                                 after a hang-up); `confirmed` is false when the
//                                 gateway never said so (the socket or peer dropped)
//
// Exactly one of `failure` and `ended` is emitted, once; everything is closed after it.

const SOCKET_CLOSE_CODES_FINAL = new Set([4401, 4409, 4410]);

export class CallConnection extends EventTarget {
  /**
   * @param {object} options
   * @param {{sessionId: string, token: string, wsUrl: string, iceServers: RTCIceServer[]}} options.session
   * @param {MediaStream} options.stream the microphone
   * @param {number} [options.connectTimeoutMs] how long until the call must be active
   * @param {number} [options.hangUpTimeoutMs] how long to wait for the gateway to confirm a hang-up
   */
  constructor({ session, stream, connectTimeoutMs = 15000, hangUpTimeoutMs = 3000 }) {
    super();
    this.session = session;
    this.stream = stream;
    this.connectTimeoutMs = connectTimeoutMs;
    this.hangUpTimeoutMs = hangUpTimeoutMs;
    this.phase = 'new'; // new → opening → connecting → active → done
    this.muted = false;
    this.lastError = null;
    this.remoteCandidates = [];
    this.localCandidates = [];
    this.offerSent = false;
    this.hangingUp = false;
    // Messages are handled one after another (setRemoteDescription before candidates).
    this.queue = Promise.resolve();
    this.timers = new Set();
  }

  start() {
    if (this.phase !== 'new') return;
    this.phase = 'opening';
    this.after(this.connectTimeoutMs, () => {
      if (this.phase === 'opening' || this.phase === 'connecting') {
        this.fail({ retryable: true, code: 'timeout', message: 'The call did not connect in time.' });
      }
    });

    const pc = new RTCPeerConnection({ iceServers: this.session.iceServers ?? [] });
    this.pc = pc;
    for (const track of this.stream.getAudioTracks()) pc.addTrack(track, this.stream);
    pc.addEventListener('track', (event) => {
      const stream = event.streams[0] ?? new MediaStream([event.track]);
      this.emit('remotestream', { stream });
    });
    pc.addEventListener('icecandidate', (event) => {
      const candidate = event.candidate ? event.candidate.toJSON() : null;
      if (this.offerSent) this.send({ type: 'candidate', candidate });
      else this.localCandidates.push(candidate);
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState !== 'failed') return;
      if (this.phase === 'active') this.finish({ reason: 'network_lost', confirmed: false });
      else this.fail({ retryable: true, code: 'ice_failed', message: 'The audio connection could not be set up.' });
    });

    let ws;
    try {
      ws = new WebSocket(this.session.wsUrl);
    } catch {
      return this.fail({ retryable: true, code: 'socket', message: 'The call service could not be reached.' });
    }
    this.ws = ws;
    ws.addEventListener('open', () => this.enqueue(() => this.sendOffer()));
    ws.addEventListener('message', (event) => this.enqueue(() => this.handleMessage(event.data)));
    ws.addEventListener('close', (event) => this.enqueue(() => this.handleClose(event)));
  }

  /** Mutes or unmutes the microphone (the track sends silence) and tells the gateway. */
  setMuted(muted) {
    this.muted = muted;
    for (const track of this.stream.getAudioTracks()) track.enabled = !muted;
    this.send({ type: 'mute', muted });
  }

  /** Hangs up; `ended` follows (unconfirmed if the gateway does not answer in time). */
  hangUp() {
    if (this.phase === 'done') return;
    this.hangingUp = true;
    if (!this.send({ type: 'end' })) return this.finish({ reason: 'caller_hangup', confirmed: false });
    this.after(this.hangUpTimeoutMs, () => this.finish({ reason: 'caller_hangup', confirmed: false }));
  }

  /** Closes the socket and the peer without telling anyone (the page is going away). */
  close() {
    this.phase = 'done';
    this.cleanup();
  }

  // --- internals -------------------------------------------------------------------

  async sendOffer() {
    if (this.phase === 'done') return;
    this.phase = 'connecting';
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
    this.offerSent = true;
    for (const candidate of this.localCandidates.splice(0)) this.send({ type: 'candidate', candidate });
  }

  async handleMessage(data) {
    if (this.phase === 'done') return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    switch (message.type) {
      case 'answer':
        await this.pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
        for (const candidate of this.remoteCandidates.splice(0)) await this.addCandidate(candidate);
        break;
      case 'candidate':
        if (!message.candidate) break; // end of candidates: nothing to do
        if (this.pc.remoteDescription) await this.addCandidate(message.candidate);
        else this.remoteCandidates.push(message.candidate);
        break;
      case 'state':
        if (message.state === 'active' && this.phase !== 'active') {
          this.phase = 'active';
          this.emit('active', {});
        } else if (message.state === 'ended') {
          this.handleEnded(message);
        }
        break;
      case 'speaking':
        this.emit('speaking', { who: message.who });
        break;
      case 'transcript':
        this.emit('transcript', message);
        break;
      case 'error':
        this.lastError = message;
        if (this.phase === 'active' || this.hangingUp) this.emit('servererror', message);
        else this.fail({ retryable: message.retryable === true, code: message.code, message: message.message });
        break;
      default:
        break;
    }
  }

  handleEnded({ reason, durationMs, message }) {
    if (this.phase === 'active' || this.hangingUp) {
      // The gateway's own words when it ended the call, else the error that ended it.
      return this.finish({ reason, durationMs, confirmed: true, message: message ?? this.lastError?.message });
    }
    // Ended before it was ever active: the attempt failed.
    const retryable = this.lastError ? this.lastError.retryable === true : reason !== 'expired';
    this.fail({ retryable, code: this.lastError?.code ?? reason, message: this.lastError?.message });
  }

  handleClose(event) {
    if (this.phase === 'done') return;
    if (this.phase === 'active' || this.hangingUp) {
      return this.finish({ reason: this.hangingUp ? 'caller_hangup' : 'connection_lost', confirmed: false });
    }
    this.fail({
      retryable: !SOCKET_CLOSE_CODES_FINAL.has(event.code),
      code: this.lastError?.code ?? 'socket_closed',
      message: this.lastError?.message ?? 'The connection to the call service closed.',
    });
  }

  async addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch {
      // A candidate the browser cannot use (another address family, say): skip it.
    }
  }

  send(message) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  enqueue(task) {
    this.queue = this.queue.then(task).catch((err) => {
      if (this.phase === 'active') this.finish({ reason: 'error', confirmed: false, message: String(err?.message ?? err) });
      else this.fail({ retryable: true, code: 'webrtc', message: String(err?.message ?? err) });
    });
  }

  fail(detail) {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.cleanup();
    this.emit('failure', detail);
  }

  finish(detail) {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.cleanup();
    this.emit('ended', { durationMs: null, message: undefined, ...detail });
  }

  cleanup() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, 'done');
    if (this.pc && this.pc.signalingState !== 'closed') this.pc.close();
  }

  after(ms, fn) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
