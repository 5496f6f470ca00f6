// The agent's leg of an accepted call (docs/agent-protocol.md): with the accept's `join`,
// the agent's microphone and, on `join.wsUrl`, the widget's own signaling (its
// `CallConnection`) plus the agent-only `handback`. The caller plays in an <audio>
// element; what happens goes through `legUpdate` (logic.js) to the console.

import { CallConnection } from '/widget/v1/signaling.js';
import { newLeg, legUpdate } from './logic.js';

/** The widget's connection, plus the agent's ways out and where the hand-over is. */
class AgentConnection extends CallConnection {
  /** Sends `end` (hang up) or `handback`; `ended` follows. */
  request(type, reason) {
    if (this.phase === 'done') return;
    this.hangingUp = true;
    this.requested = reason;
    if (!this.send({ type })) return this.finish({ reason, confirmed: false });
    this.after(this.hangUpTimeoutMs, () => this.finish({ reason, confirmed: false }));
  }

  // The transcript so far comes before the gateway's first `state`: that is the hand-over.
  async handleMessage(data) {
    if (!this.handedOver && this.phase !== 'done') {
      let message = null;
      try {
        message = JSON.parse(data);
      } catch {
        // Not JSON: the connection ignores it too.
      }
      if (message?.type === 'state') {
        this.handedOver = true;
        this.emit('handover', {});
      }
    }
    return super.handleMessage(data);
  }

  // Unconfirmed after the agent's own request: the call ended the way they asked.
  finish(detail) {
    super.finish(!detail.confirmed && this.requested ? { ...detail, reason: this.requested } : detail);
  }
}

/** The live leg's connection (one call at a time), for `audioStats`. */
let current = null;

/**
 * Joins the call. `onState(leg)` gets each new leg (logic.js `newLeg`), first `connecting`.
 * Returns the controls: `mute(on)`, `hangUp()`, `handBack()`, and `leave()` (closes
 * everything without telling the gateway: the page goes away, or the leg is over).
 */
export function joinCall(join, { onState }) {
  let leg = newLeg();
  let conn = null;
  let stream = null;
  let left = false;
  const audio = document.createElement('audio');
  audio.autoplay = true;
  audio.hidden = true;
  document.body.append(audio);
  const release = () => {
    conn?.close();
    for (const track of stream?.getTracks() ?? []) track.stop();
    audio.srcObject = null;
    audio.remove();
    if (current === conn) current = null;
  };
  const update = (event) => {
    leg = legUpdate(leg, event);
    if (leg.state === 'ended' || leg.state === 'failed') release();
    if (!left) onState(leg);
  };
  onState(leg);

  (async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    } catch (err) {
      return update({ type: 'failure', code: err?.name === 'NotAllowedError' ? 'microphone_denied' : 'microphone', message: err?.message, retryable: true });
    }
    if (left) return release();
    conn = new AgentConnection({ session: join, stream, connectTimeoutMs: 20000 });
    current = conn;
    conn.addEventListener('remotestream', (event) => {
      audio.srcObject = event.detail.stream;
      audio.play().catch(() => {});
    });
    for (const type of ['handover', 'transcript', 'speaking', 'active', 'ended', 'failure']) {
      conn.addEventListener(type, (event) => update({ ...event.detail, type }));
    }
    // Muted before the socket opened: say so once the call is up.
    conn.addEventListener('active', () => leg.muted && conn.setMuted(true));
    if (leg.muted) conn.setMuted(true);
    conn.start();
  })().catch((err) => update({ type: 'failure', code: 'webrtc', message: String(err?.message ?? err), retryable: true }));

  const ask = (what, reason) => {
    if (!conn || leg.request || !leg.handedOver) return;
    update({ type: 'request', what });
    conn.request(what, reason);
  };
  return {
    mute(on) {
      update({ type: 'muted', muted: on });
      conn?.setMuted(on);
    },
    hangUp: () => ask('end', 'agent_hangup'),
    handBack: () => ask('handback', 'transferred'),
    leave() {
      left = true;
      release();
    },
  };
}

/**
 * The caller's audio as received: the live leg's `inbound-rtp` audio report, or null.
 * For diagnostics and the browser test (`import('/agent/call.js')` in the page).
 */
export async function audioStats() {
  const pc = current?.pc;
  if (!pc || pc.signalingState === 'closed') return null;
  return [...(await pc.getStats()).values()].find((report) => report.type === 'inbound-rtp' && report.kind === 'audio') ?? null;
}
