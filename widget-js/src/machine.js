// The widget's screens as a state machine. Pure: `transition` takes a state and an
// event and returns the next state, or null when the event means nothing there. The
// controller (widget.js) does the I/O and renders whatever state this says.
//
//   idle ──open──▶ preCall ──start──▶ connecting ──active──▶ inCall ──ended──▶ ended
//                                       │   ▲                                   │
//                         micDenied ◀───┤   └──── retry / callAgain ────────────┤
//                         failed    ◀───┘                                       │
//   every screen but connecting/inCall: close or chat ──▶ idle ◀────────────────┘
//
// Closing the panel during connecting/inCall only hides it: the call goes on (the
// panel's visibility is not part of this machine).

export const States = Object.freeze({
  idle: 'idle',
  preCall: 'preCall',
  connecting: 'connecting',
  inCall: 'inCall',
  ended: 'ended',
  micDenied: 'micDenied',
  failed: 'failed',
});

const table = {
  idle: { open: 'preCall' },
  preCall: { start: 'connecting', close: 'idle', chat: 'idle' },
  connecting: {
    micDenied: 'micDenied',
    active: 'inCall',
    failed: 'failed',
    cancel: 'preCall',
  },
  inCall: { ended: 'ended', dropped: 'ended' },
  ended: { callAgain: 'connecting', chat: 'idle', close: 'idle' },
  micDenied: { retry: 'connecting', chat: 'idle', close: 'idle' },
  failed: { retry: 'connecting', chat: 'idle', close: 'idle' },
};

/** The next state after `event` in `state`, or null when the event does not apply. */
export function transition(state, event) {
  return table[state]?.[event] ?? null;
}

/** Whether a call (its microphone, socket or peer) is live in `state`. */
export function isLive(state) {
  return state === States.connecting || state === States.inCall;
}
