// Chatbot → Widget (spec 5): the chat widget's options and, for call chatbots, the call
// button and call interface options, with a live preview of the real widget beside the
// form (preview.html in an iframe, fed the unsaved settings) and the embed snippet.

import { h, field, readForm, showError, formError, section, announce, copyButton } from '../ui.js';
import { changedFields, previewConfig } from '../logic.js';

export async function widgetSettings(ctx, bot) {
  const base = `/api/company/chatbots/${bot.id}`;
  const [settings, publicConfig] = await Promise.all([ctx.api.get(`${base}/widget-settings`), ctx.api.get(`/api/widget/chatbots/${bot.id}`)]);
  let original = settings;
  const isCall = bot.chatbotType === 'call';

  const chat = [
    field({ label: 'Widget position', name: 'position', kind: 'select', value: settings.position, options: [['bottom-right', 'Bottom right'], ['bottom-left', 'Bottom left']] }),
    field({ label: 'Primary color', name: 'primaryColor', kind: 'color', value: settings.primaryColor, hint: 'The chat widget’s color, like #2563eb.' }),
    field({ label: 'Title', name: 'title', value: settings.title, attrs: { maxlength: 100 } }),
    field({ label: 'Chat welcome message', name: 'welcomeMessage', kind: 'textarea', value: settings.welcomeMessage, attrs: { maxlength: 1000 } }),
    field({ label: 'Chat button icon', name: 'chatButtonIcon', value: settings.chatButtonIcon, hint: 'An emoji or short text.', attrs: { maxlength: 16 } }),
    field({
      label: 'Allowed origins',
      name: 'allowedOrigins',
      kind: 'textarea',
      type: 'lines',
      value: settings.allowedOrigins,
      hint: 'Sites that may embed the widget and start calls, one per line, like https://shop.example.com. Empty: any site.',
      attrs: { rows: 3, spellcheck: 'false' },
    }),
  ];
  const callButton = [
    field({ label: 'Call Button Icon', name: 'callButtonIcon', value: settings.callButtonIcon, hint: 'An emoji or short text, like 📞.', attrs: { maxlength: 16 } }),
    field({ label: 'Call Button Text', name: 'callButtonText', value: settings.callButtonText, attrs: { maxlength: 40 } }),
    field({ label: 'Call Button Color', name: 'callButtonColor', kind: 'color', value: settings.callButtonColor, hint: 'Like #10b981. The button text turns white or near-black, whichever reads better.' }),
  ];
  const callInterface = [
    field({ label: 'Audio Visualizer Style', name: 'visualizerStyle', kind: 'radios', value: settings.visualizerStyle, options: [['wave', 'Wave'], ['orb', 'Orb']] }),
    field({ label: 'Show Call Duration', name: 'showCallDuration', kind: 'checkbox', value: settings.showCallDuration }),
    field({ label: 'Show Live Transcript', name: 'showLiveTranscript', kind: 'checkbox', value: settings.showLiveTranscript }),
    field({ label: 'Call Welcome Message', name: 'callWelcomeMessage', kind: 'textarea', value: settings.callWelcomeMessage, hint: 'Shown on the “Start Voice Call” screen.', attrs: { maxlength: 1000 } }),
  ];
  const error = formError();
  const save = h('button', { type: 'submit', class: 'btn primary', text: 'Save widget settings' });
  const form = h(
    'form',
    { novalidate: true, 'aria-label': 'Widget settings' },
    isCall ? section('Call Button Settings', ...callButton.map((f) => f.row)) : null,
    isCall ? section('Call Interface Settings', ...callInterface.map((f) => f.row)) : null,
    section('Chat widget', ...chat.map((f) => f.row)),
    error,
    h('div', { class: 'actions' }, save),
  );

  // The live preview: the real widget, in an iframe of its own, fed the unsaved values.
  const frame = h('iframe', { class: 'preview-frame', src: '/admin/preview.html', title: 'Widget preview' });
  const feed = () =>
    frame.contentWindow?.postMessage(
      { type: 'config', config: previewConfig(publicConfig, { ...original, ...readForm(form) }), csrf: ctx.api.csrf, companyId: ctx.api.companyId },
      location.origin,
    );
  let timer = null;
  const onMessage = (event) => {
    if (event.source === frame.contentWindow && event.origin === location.origin && event.data?.type === 'preview-ready') feed();
  };
  window.addEventListener('message', onMessage);
  ctx.onLeave(() => window.removeEventListener('message', onMessage));
  form.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(feed, 120);
  });
  form.addEventListener('change', feed);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const patch = changedFields(original, readForm(form));
    if (!Object.keys(patch).length) return announce('Nothing changed.');
    save.disabled = true;
    try {
      original = await ctx.api.patch(`${base}/widget-settings`, patch);
      announce('Widget settings saved.');
    } catch (err) {
      showError(form, err);
    } finally {
      save.disabled = false;
    }
  });

  const snippet = `<script src="${ctx.publicUrl}/widget/v1/call.js" data-chatbot-id="${bot.id}" async></script>`;
  const preview = section(
    'Live preview',
    h('p', { class: 'hint', text: isCall ? 'The real widget with your unsaved changes. Open it to see the call screen; Start Call places a test call.' : 'Chat chatbots show no call button; the chat button here stands for your chat widget.' }),
    frame,
    h('h3', { text: 'Embed code' }),
    h('pre', { id: 'widget-snippet', text: snippet }),
    copyButton(() => snippet, 'Copy embed code', { describe: 'Embed code copied' }),
  );
  preview.classList.add('sticky');
  return h('div', { class: 'split' }, form, preview);
}
