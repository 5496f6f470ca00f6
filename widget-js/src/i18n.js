// Every user-visible string of the widget, and the formatting of durations.
// One language for now; a translation replaces `strings` wholesale.

export const strings = {
  callButtonUnavailable: 'Voice calls temporarily unavailable',
  callButtonInCall: 'Return to call',
  callButtonConnecting: 'Connecting…',
  close: 'Close',
  backToChat: 'Back to Chat',
  preview: 'Preview — test call',

  preCallTitle: 'Start Voice Call',
  startCall: 'Start Call',
  echoNote: 'Demo mode: no AI is connected. The echo service plays back what you say after you stop talking.',

  connectingTitle: 'Connecting…',
  connectingMicrophone: 'Waiting for microphone access…',
  connectingCall: 'Connecting your call…',
  retrying: (attempt, of) => `Connection failed. Retrying (${attempt} of ${of})…`,
  cancel: 'Cancel',

  inCallTitle: 'Call in Progress',
  durationLabel: 'Call duration',
  agentSpeaking: 'Agent speaking…',
  userSpeaking: 'You are speaking…',
  listening: 'Listening…',
  mutedStatus: 'You are muted',
  transcriptTitle: 'Transcript',
  you: 'You',
  agent: 'Agent',
  mute: 'Mute',
  unmute: 'Unmute',
  end: 'End',
  endCallLabel: 'End call',
  visualizerLabel: 'Audio visualizer',

  endedTitle: 'Call Ended',
  thanks: 'Thank you for calling!',
  duration: (words) => `Duration: ${words}`,
  downloadTranscript: 'Download Transcript',
  startChat: 'Start Chat',
  callAgain: 'Call Again',
  rateTitle: 'How was your call?',
  rateStar: (n) => `${n} star${n === 1 ? '' : 's'}`,
  rateComment: 'Comment (optional)',
  rateSubmit: 'Send rating',
  rateThanks: 'Thanks for your feedback!',
  rateFailed: 'Your rating could not be sent.',

  micTitle: 'Microphone Access Required',
  micHeading: 'Permission Needed',
  micBody:
    'To make voice calls, we need access to your microphone. Please enable microphone permissions in your browser settings.',
  micMissing: 'No microphone was found. Connect one and try again.',
  browserSettings: 'Browser Settings',
  browserSettingsHelp:
    'Click the lock or settings icon at the left of the address bar, set Microphone to "Allow" for this site, then press Try Again.',
  tryAgain: 'Try Again',
  useChat: 'Use Chat Instead',

  insecure: 'Voice calls need a secure (https) page.',
  unsupported: 'This browser cannot place voice calls.',

  failedTitle: 'Connection Failed',
  failedHeading: 'Unable to connect',
  failedBody: "We're having trouble connecting to our call service. Please try again in a moment.",
  retryCall: 'Retry Call',

  transcriptFileTitle: (title) => `Call transcript — ${title}`,
  transcriptFileDate: (date) => `Date: ${date}`,
  transcriptFileDuration: (words) => `Duration: ${words}`,
};

/** Why a call ended, as a sentence (nothing for the ordinary endings). */
export const endReasons = {
  caller_hangup: '',
  agent_hangup: 'The agent ended the call.',
  end_phrase: 'The agent ended the call.',
  network_lost: 'The call was cut off: the connection was lost.',
  provider_error: 'The call was cut off: the voice service stopped responding.',
  silence_timeout: 'The call ended after a long silence.',
  max_duration: 'The call reached its maximum length.',
  expired: 'The call session expired.',
  shutdown: 'The call service is restarting. Please call again in a moment.',
  error: 'The call ended because of an error.',
  connection_lost: 'The call was cut off: the connection to the call service was lost.',
};

/** "2 minutes 34 seconds" (hours when there are some; "0 seconds" for nothing). */
export function durationInWords(ms) {
  const total = Math.max(0, Math.round((Number(ms) || 0) / 1000));
  const parts = [
    [Math.floor(total / 3600), 'hour'],
    [Math.floor((total % 3600) / 60), 'minute'],
    [total % 60, 'second'],
  ]
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n} ${unit}${n === 1 ? '' : 's'}`);
  return parts.length ? parts.join(' ') : '0 seconds';
}

/** "02:34" (or "1:02:34" past an hour), for the running timer. */
export function clock(ms) {
  const total = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  const pad = (n) => String(n).padStart(2, '0');
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}
