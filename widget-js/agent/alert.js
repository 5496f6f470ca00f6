// Telling the agent a caller is waiting, even when the tab is in the background: a ring
// generated with WebAudio (no sound file to download) and a browser notification.
// Browsers allow both only after a user gesture: `prepare()` runs on the Available click.

let audio = null;

/** On a user gesture: unlock the audio context and ask for notifications once. */
export async function prepare() {
  try {
    audio ??= new AudioContext();
    if (audio.state === 'suspended') await audio.resume();
  } catch {
    audio = null; // no WebAudio: notifications and the page still say it
  }
  if ('Notification' in window && Notification.permission === 'default') {
    try {
      await Notification.requestPermission();
    } catch {
      // The prompt was dismissed or blocked: the page and the ring still tell.
    }
  }
}

/** Whether notifications will show (`granted`), were refused, or cannot be asked for. */
export function notificationState() {
  return 'Notification' in window ? Notification.permission : 'unsupported';
}

/**
 * A telephone ring: two short bursts of 440 + 480 Hz (the North American ring tone's
 * pair), soft attack and release so it does not click. Returns false when it cannot play.
 */
export function ring() {
  if (!audio || audio.state !== 'running') return false;
  const start = audio.currentTime + 0.02;
  const gain = audio.createGain();
  gain.gain.value = 0;
  gain.connect(audio.destination);
  for (const offset of [0, 0.6]) {
    const t = start + offset;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(0.18, t + 0.03);
    gain.gain.setValueAtTime(0.18, t + 0.4);
    gain.gain.linearRampToValueAtTime(0, t + 0.45);
  }
  for (const frequency of [440, 480]) {
    const tone = audio.createOscillator();
    tone.frequency.value = frequency;
    tone.connect(gain);
    tone.start(start);
    tone.stop(start + 1.1);
  }
  return true;
}

/** A notification for a waiting call; clicking it brings the console forward. */
export function notify({ title, body, tag }) {
  if (notificationState() !== 'granted') return null;
  try {
    const note = new Notification(title, { body, tag, requireInteraction: false });
    note.onclick = () => {
      window.focus();
      note.close();
    };
    return note;
  } catch {
    return null; // some browsers allow notifications only from a service worker
  }
}
