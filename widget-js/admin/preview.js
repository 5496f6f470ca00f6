// The Widget tab's live preview (an iframe of the console): mounts the real widget with
// the settings the console posts (same origin only), and mounts it again when they
// change. A call in progress keeps its widget; the new settings show once it is over.
// "Start Call" here places a test call (the console's session: CSRF token and company).

import { mountCallWidget } from '/widget/v1/widget.js';
import { request } from '/widget/v1/api.js';

let latest = null;
let session = { csrf: '', companyId: '' };
let queue = Promise.resolve();
const busy = (state) => state === 'connecting' || state === 'inCall';

window.addEventListener('message', (event) => {
  if (event.origin !== location.origin || event.source !== parent || event.data?.type !== 'config') return;
  latest = event.data.config;
  session = { csrf: event.data.csrf ?? '', companyId: event.data.companyId ?? '' };
  queue = queue.then(show, show);
});

/** The configuration the widget on screen was mounted with (the same one again changes nothing). */
let shown = '';

async function show() {
  const config = latest;
  const old = document.querySelector('voice-call-widget');
  if (busy(old?.dataset.state)) return;
  const key = JSON.stringify(config);
  if (key === shown && (old || !config.call)) return;
  shown = key;
  const bubble = document.getElementById('chat-bubble');
  bubble.textContent = config.chat.chatButtonIcon || '💬';
  bubble.style.background = /^#[0-9a-f]{6}$/i.test(config.chat.primaryColor) ? config.chat.primaryColor : '#2563eb';
  bubble.classList.toggle('left', config.chat.position === 'bottom-left');
  const wasOpen = old && old.dataset.state !== 'idle';
  old?.remove();
  if (!config.call) return;
  const host = await mountCallWidget({
    gateway: location.origin,
    chatbotId: config.chatbotId,
    config,
    bottomOffset: 96,
    openSession: (signal) =>
      request(`/api/company/chatbots/${encodeURIComponent(config.chatbotId)}/test-call`, {
        method: 'POST',
        signal,
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': session.csrf, ...(session.companyId ? { 'X-Company-Id': session.companyId } : {}) },
      }),
  });
  if (!host) return;
  if (wasOpen) host.shadowRoot.querySelector('.launcher')?.click();
  // Settings that came in during a call apply when it ends.
  new MutationObserver((_, observer) => {
    if (!busy(host.dataset.state) && latest !== config && host.isConnected) {
      observer.disconnect();
      queue = queue.then(show, show);
    }
  }).observe(host, { attributes: true, attributeFilter: ['data-state'] });
}

parent.postMessage({ type: 'preview-ready' }, location.origin);
