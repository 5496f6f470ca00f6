// Test Call (spec 7): pick a call chatbot and place a call as a visitor would, with the
// real widget inline in preview mode (session from `POST …/test-call`: no origin check,
// the call is marked `isTest`; the live transcript always shows), then the call's summary
// and stored transcript. `/test-call?chatbot=ID` (the old page) leads here.

import { h, button, section, link, copyButton, errorText, announce } from '../ui.js';
import { offsetClock, endReasonText } from '../logic.js';
import { mountCallWidget } from '/widget/v1/widget.js';
import { durationInWords } from '/widget/v1/i18n.js';
import { request } from '/widget/v1/api.js';

export async function render(ctx) {
  const bots = (await ctx.api.get('/api/company/chatbots')).filter((b) => b.chatbotType === 'call');
  const message = h('p', { id: 'message', class: 'message', role: 'status', 'aria-live': 'polite' });
  const say = (text, error = false) => {
    message.textContent = text;
    message.classList.toggle('error', error);
  };
  const select = h('select', { id: 'chatbot' }, ...bots.map((b) => h('option', { value: b.id, text: b.name })));
  const wanted = new URLSearchParams(ctx.search).get('chatbot');
  if (wanted && bots.some((b) => b.id === wanted)) select.value = wanted;
  const testCall = button('📞 Test Call', () => start(), 'primary', { id: 'test-call' });
  const widgetBox = h('div', { id: 'widget' }, h('p', { class: 'hint', text: 'Choose a call chatbot and press Test Call: the call interface opens here in preview mode (the allowed-origins check is skipped and the call is marked as a test).' }));
  const snippet = h('pre', { id: 'embed-snippet' });
  const facts = h('dl', { id: 'summary-facts', class: 'facts' });
  const lines = h('ol', { id: 'summary-lines', class: 'lines' });
  const summaryTitle = h('h2', { id: 'summary-title', tabindex: '-1', text: 'Call summary' });
  const openCall = h('p');
  const summary = h(
    'section',
    { id: 'summary', class: 'card', hidden: true, 'aria-labelledby': 'summary-title' },
    summaryTitle,
    facts,
    h('h3', { text: 'Stored transcript' }),
    lines,
    h('div', { class: 'actions' }, button('Refresh summary', () => showSummary(false), '', { id: 'refresh' })),
    openCall,
  );
  /** The live test call, so that leaving the screen hangs it up. */
  let live = null;
  let lastCall = null;

  const showEmbed = () => {
    snippet.textContent = `<script src="${ctx.publicUrl}/widget/v1/call.js" data-chatbot-id="${select.value}" async></script>`;
  };
  select.addEventListener('change', showEmbed);
  if (bots.length) {
    showEmbed();
    say(`${bots.length} call chatbot${bots.length === 1 ? '' : 's'}.`);
  } else {
    say('This company has no call chatbots yet: create one under Chatbots.', true);
  }

  async function start() {
    const chatbotId = select.value;
    if (!chatbotId) return;
    say('Opening the call interface…');
    summary.hidden = true;
    let config;
    try {
      config = await request(`/api/widget/chatbots/${encodeURIComponent(chatbotId)}`);
    } catch (err) {
      return say(errorText(err), true);
    }
    if (!config.call?.available) {
      return say(`Voice calls are unavailable for this chatbot (${config.call?.unavailableReason ?? 'not a call chatbot'}).`, true);
    }
    // Admins testing want to read what the agent heard and said.
    config = { ...config, call: { ...config.call, showLiveTranscript: true } };
    hangUp();
    widgetBox.replaceChildren();
    await mountCallWidget({
      gateway: location.origin,
      chatbotId,
      config,
      mode: 'preview',
      container: widgetBox,
      openSession: async (signal) => {
        const session = await ctx.api.post(`/api/company/chatbots/${encodeURIComponent(chatbotId)}/test-call`, undefined, { signal });
        live = session;
        return session;
      },
    });
    say('Ready: press Start Call in the preview.');
  }

  /** Ends a test call still going on (the widget is about to go away). */
  function hangUp() {
    if (!live) return;
    const { sessionId, token } = live;
    live = null;
    fetch(`/api/widget/call/${encodeURIComponent(sessionId)}/end`, {
      method: 'POST',
      keepalive: true,
      credentials: 'omit',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token }),
    }).catch(() => {});
  }

  const onEnded = (event) => {
    if (!event.detail.preview || !event.detail.sessionId) return;
    live = null;
    lastCall = event.detail.sessionId;
    showSummary(true);
  };
  const onChat = () => say('A visitor would now be taken to the chat widget.');
  document.addEventListener('voicewidget:call-ended', onEnded);
  document.addEventListener('voicewidget:start-chat', onChat);
  ctx.onLeave(() => {
    document.removeEventListener('voicewidget:call-ended', onEnded);
    document.removeEventListener('voicewidget:start-chat', onChat);
    if (live) announce('The test call was ended.');
    hangUp();
  });

  async function showSummary(focus) {
    if (!lastCall) return;
    let call;
    try {
      call = await ctx.api.get(`/api/company/calls/${encodeURIComponent(lastCall)}`);
    } catch (err) {
      return say(`The call summary could not be loaded: ${errorText(err)}`, true);
    }
    const stored = call.transcript ?? [];
    const count = (role) => stored.filter((l) => l.role === role).length;
    const rows = [
      ['Call', call.id],
      ['Status', call.status],
      ['End reason', call.endReason ?? '—'],
      ['Duration', durationInWords(call.durationMs ?? 0)],
      ['Test call', call.isTest ? 'yes' : 'no'],
      ['Model', [call.provider, call.modelId].filter(Boolean).join(' · ') || '—'],
      ['Turns', `${count('user')} from the caller, ${count('agent')} from the agent`],
      ['Rating', call.rating ? `${call.rating}/5${call.ratingComment ? ` — “${call.ratingComment}”` : ''}` : 'none'],
    ];
    if (call.errorMessage) rows.push(['Error', call.errorMessage]);
    facts.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
    lines.replaceChildren(
      ...stored.map((l) => h('li', { class: l.role }, h('span', { class: 'at', text: offsetClock(l.offsetMs) }), h('strong', { text: `${ROLE_LABELS[l.role] ?? l.role}: ` }), l.content)),
    );
    if (!stored.length) lines.append(h('li', { text: 'No transcript was stored.' }));
    openCall.replaceChildren(link(`/admin/calls/${call.id}`, 'Open this call in Calls'), call.endReason ? ` — ${endReasonText(call.endReason)}` : '');
    summary.hidden = false;
    if (focus) summaryTitle.focus();
  }

  return [
    h('div', { class: 'screen-header' }, h('div', {}, h('h1', { tabindex: '-1', text: 'Test Your Chatbot' }), h('p', { class: 'lead', text: 'Place a test call to one of your call chatbots, as your visitors would, right from here.' }))),
    h(
      'div',
      { class: 'grid' },
      section(
        'Choose a chatbot',
        h('div', { class: 'field' }, h('label', { for: 'chatbot', text: 'Chatbot' }), select),
        h('div', { class: 'actions' }, button('💬 Test Chat', null, '', { disabled: true, title: 'The chat test lives in the chat product', id: 'test-chat' }), bots.length ? testCall : null),
        message,
      ),
      section('Test call', widgetBox),
    ),
    summary,
    bots.length ? section('Embed this chatbot', snippet, copyButton(() => snippet.textContent, 'Copy embed code', { describe: 'Embed code copied' })) : null,
  ].filter(Boolean);
}

const ROLE_LABELS = { user: 'Caller', agent: 'Agent', system: 'System' };
