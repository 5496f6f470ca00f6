// The agent's leg of an accepted call: where the media part plugs in.
//
// After `POST /api/agent/escalations/{id}/accept` the console hands the answer's `join`
// (`wsUrl`, `token`, `iceServers`, `expiresAt`) to `joinCall`. The finished leg opens
// `join.wsUrl` and speaks the widget's signaling protocol (offer, candidate, mute, end →
// answer, candidate, state, speaking, transcript; plus `handback`), with an
// RTCPeerConnection on the agent's microphone (docs/agent-protocol.md). The gateway does
// not serve that socket yet, so this leg does not pretend to connect: it reports
// `media_unavailable` at once and offers no mute, hang-up or hand-back. The console
// renders whatever states the leg reports, so the real leg replaces this module alone.

/** Whether this console can carry the call's audio (false until the gateway serves the agent's media leg). */
export const MEDIA_AVAILABLE = false;

/**
 * Joins the call. `onState({state, message})` is called with `connecting`, then (today)
 * `media_unavailable`. Returns the leg's controls: `leave()`; `mute(on)`, `hangUp()`,
 * `handBack()` are null while the leg cannot carry audio.
 */
export function joinCall(join, { onState }) {
  onState({ state: 'connecting', message: 'Connecting you to the call…' });
  const expires = join?.expiresAt ? new Date(join.expiresAt) : null;
  const until = expires && !Number.isNaN(expires.getTime()) ? ` by ${expires.toLocaleTimeString()}` : ' within 2 minutes';
  queueMicrotask(() =>
    onState({
      state: 'media_unavailable',
      message:
        `The call is yours, but this console cannot carry its audio yet: the gateway does not serve the agent's media leg. ` +
        `The caller stays on hold; if no agent joins the media${until}, the AI comes back and offers to take a message.`,
    }),
  );
  return { leave() {}, mute: null, hangUp: null, handBack: null };
}
