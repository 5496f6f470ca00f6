// Chatbot → Call Options (spec 4): model and voice (with ▶ preview), call behaviour, call
// features with the knowledge-base categories, advanced settings. Controls carry the
// API's ranges (docs/api.md, "Call settings"); the API decides, and a refused value shows
// its message next to its control.

import { h, field, readForm, showError, clearErrors, formError, button, section, announce, errorText, link } from '../ui.js';
import { changedFields } from '../logic.js';

const VAD_EXPLAINED =
  'Controls when the agent detects speech. Lower values (towards 0.0, sensitive) react to quieter speech but also to background noise, so the agent may stop or answer too early; higher values (towards 1.0, less sensitive) need clearer, louder speech, for noisy places. 0.5 suits most calls.';

export async function callOptions(ctx, bot) {
  const base = `/api/company/chatbots/${bot.id}`;
  const [settings, models, categories, linked] = await Promise.all([
    ctx.api.get(`${base}/call-settings`),
    ctx.api.get('/api/company/ai-models?type=call'),
    ctx.api.get('/api/company/knowledge/categories'),
    ctx.api.get(`${base}/knowledge-categories`),
  ]);
  let original = valuesOf(settings);
  let linkedIds = [...linked.categoryIds].sort();

  // 1. AI model & voice
  const modelOptions = [['', 'Choose a call model…'], ...models.map((m) => [m.id, `${m.displayName} (${m.provider})`])];
  if (settings.aiModelId && !models.some((m) => m.id === settings.aiModelId)) modelOptions.push([settings.aiModelId, 'The current model (no longer active)']);
  const model = field({ label: 'Call AI Model', name: 'aiModelId', kind: 'select', options: modelOptions, value: settings.aiModelId ?? '', hint: 'ℹ️ Only models with Call capability are listed.' });
  const voiceBox = h('fieldset', { class: 'field', 'data-field': 'voice' }, h('legend', { text: 'Voice' }));
  const voiceError = h('p', { class: 'field-error' });
  const previewStatus = h('p', { class: 'hint', role: 'status' });
  const player = h('audio', { hidden: true });
  const speed = field({ label: 'Voice Speed', name: 'voiceSpeed', kind: 'range', value: settings.voiceSpeed, attrs: { min: 0.5, max: 2, step: 0.05, unit: '× (0.5–2.0)' } });
  const speedNote = h('p', { class: 'hint' });
  speed.row.append(speedNote);

  async function showVoices(modelId, chosen) {
    const voices = h('div', { class: 'voices' });
    voiceBox.replaceChildren(h('legend', { text: 'Voice' }));
    if (!modelId) {
      voiceBox.append(h('p', { class: 'hint', text: 'Choose a model first: voices depend on the model.' }), voiceError);
      return;
    }
    let list;
    try {
      list = await ctx.api.get(`/api/company/voices?modelId=${encodeURIComponent(modelId)}`);
    } catch (err) {
      voiceBox.append(h('p', { class: 'form-error', text: errorText(err) }), voiceError);
      return;
    }
    const selected = list.voices.some((v) => v.id === chosen) ? chosen : list.defaultVoice;
    for (const voice of list.voices) {
      const radio = h('input', { type: 'radio', name: 'voice', value: voice.id, id: `voice-${voice.id}`, 'data-type': 'text' });
      radio.checked = voice.id === selected;
      const play = button('▶ Preview', () => preview(voice), 'small', { 'aria-label': `Preview voice ${voice.name}` });
      voices.append(h('div', { class: 'voice' }, h('label', { for: radio.id }, radio, voice.name), play));
    }
    voiceBox.append(voices, h('p', { class: 'hint', text: `Default: ${list.defaultVoice}. Previews are about 3 seconds, spoken by the provider.` }), previewStatus, voiceError);
    speedNote.textContent = list.supportsSpeed ? '' : 'This provider speaks at its own pace: the speed applies to OpenAI voices only.';
  }

  async function preview(voice) {
    previewStatus.textContent = `Loading a sample of ${voice.name}…`;
    try {
      const blob = await ctx.api.blob(voice.previewUrl);
      if (player.src) URL.revokeObjectURL(player.src);
      player.src = URL.createObjectURL(blob);
      player.dataset.voice = voice.id;
      await player.play();
      previewStatus.textContent = `Playing ${voice.name}.`;
    } catch (err) {
      previewStatus.textContent = `No preview of ${voice.name}: ${errorText(err)}`;
    }
  }
  ctx.onLeave(() => {
    player.pause();
    if (player.src) URL.revokeObjectURL(player.src);
  });
  model.control.addEventListener('change', () => showVoices(model.control.value, readForm(voiceBox).voice));
  await showVoices(settings.aiModelId, settings.voice);

  // 2. Behaviour
  const behaviour = [
    field({ label: 'Greeting Message', name: 'greetingMessage', kind: 'textarea', value: settings.greetingMessage, hint: 'What the agent says when the call connects (empty: it waits for the caller). Up to 1000 characters.', attrs: { maxlength: 1000 } }),
    field({ label: 'End Call Phrase', name: 'endCallPhrase', value: settings.endCallPhrase, hint: 'ℹ️ The caller saying this ends the call after a goodbye (empty: off).', attrs: { maxlength: 100 } }),
    field({ label: 'Silence Timeout (seconds)', name: 'silenceTimeoutSeconds', kind: 'range', value: settings.silenceTimeoutSeconds, hint: 'ℹ️ After this much silence the agent asks “Are you still there?”, then hangs up (30–300 s).', attrs: { min: 30, max: 300, step: 5, unit: 's' } }),
    field({ label: 'Max Call Duration (minutes)', name: 'maxCallDurationMinutes', kind: 'range', value: settings.maxCallDurationMinutes, hint: 'Calls end politely at this length (1–60 min).', attrs: { min: 1, max: 60, step: 1, unit: 'min' } }),
  ];

  // 3. Features
  const features = [
    field({ label: 'Real-time Transcription', name: 'realtimeTranscription', kind: 'checkbox', value: settings.realtimeTranscription, hint: 'Show what user and agent are saying, and keep the transcript.' }),
    field({ label: 'Call Recording', name: 'callRecording', kind: 'checkbox', value: settings.callRecording, hint: 'Save audio recordings of calls. ⚠️ Check local regulations: callers may have to be told.' }),
    field({ label: 'Allow Interruption', name: 'allowInterruption', kind: 'checkbox', value: settings.allowInterruption, hint: 'The caller can interrupt the agent mid-speech.' }),
    field({ label: 'Knowledge Base Access', name: 'knowledgeBaseAccess', kind: 'checkbox', value: settings.knowledgeBaseAccess, hint: 'The agent can search the company’s knowledge (the categories below).' }),
  ];
  const categoryBox = h('fieldset', { class: 'field', 'data-field': 'categoryIds' }, h('legend', { text: 'Knowledge base categories' }));
  if (categories.length) {
    for (const category of categories) {
      const box = h('input', { type: 'checkbox', id: `category-${category.id}`, value: category.id, 'data-category': '' });
      box.checked = linkedIds.includes(category.id);
      categoryBox.append(h('div', { class: 'field check' }, box, h('label', { for: box.id, text: `${category.name} (${category.documentCount} document${category.documentCount === 1 ? '' : 's'})` })));
    }
  } else {
    categoryBox.append(h('p', { class: 'hint' }, 'No categories yet: add them under ', link('/admin/knowledge', 'Knowledge base'), '.'));
  }
  categoryBox.append(h('p', { class: 'field-error' }));
  const chosenCategories = () => [...categoryBox.querySelectorAll('input[data-category]:checked')].map((b) => b.value).sort();

  // 4. Escalation to a human (docs/agent-protocol.md): the model may hand the caller to an
  // available support agent, or take a message when nobody accepts in time.
  const escalation = section(
    'Escalation to a human',
    field({ label: 'Escalation to a human agent', name: 'escalationEnabled', kind: 'checkbox', value: settings.escalationEnabled, hint: 'When the caller asks for a person, offer the call to the company’s available support agents; when nobody accepts in time, the AI takes a message (a ticket).' }).row,
    field({ label: 'Escalation Timeout (seconds)', name: 'escalationTimeoutSeconds', kind: 'range', value: settings.escalationTimeoutSeconds, hint: 'How long the caller waits for an agent to accept before the AI offers to take a message (10–300 s).', attrs: { min: 10, max: 300, step: 5, unit: 's' } }).row,
    field({ label: 'Hold Message', name: 'holdMessage', kind: 'textarea', value: settings.holdMessage, hint: 'What the AI says before the caller waits for an agent. Up to 300 characters.', attrs: { maxlength: 300 } }).row,
  );
  escalation.dataset.slot = 'escalation';

  // 5. Advanced
  const vad = field({ label: 'Voice Activity Detection (VAD) threshold', name: 'vadThreshold', kind: 'range', value: settings.vadThreshold, hint: `0.0 (sensitive) – 1.0 (less sensitive). ℹ️ ${VAD_EXPLAINED}`, attrs: { min: 0, max: 1, step: 0.05 } });
  const advanced = [
    vad,
    field({ label: 'Echo Cancellation', name: 'echoCancellation', kind: 'checkbox', value: settings.echoCancellation, hint: 'Reduce echo and feedback (asked of the caller’s browser).' }),
    field({ label: 'Noise Suppression', name: 'noiseSuppression', kind: 'checkbox', value: settings.noiseSuppression, hint: 'Filter background noise (in the browser and, where it can, the provider).' }),
    field({ label: 'Automatic Gain Control', name: 'autoGainControl', kind: 'checkbox', value: settings.autoGainControl, hint: 'Even out the caller’s volume (asked of the caller’s browser).' }),
  ];

  const error = formError();
  const save = h('button', { type: 'submit', class: 'btn primary', text: 'Save Call Options' });
  const form = h(
    'form',
    { novalidate: true, 'aria-label': 'Call Options' },
    section('AI Model & Voice', model.row, voiceBox, speed.row, player),
    section('Call Behavior', ...behaviour.map((f) => f.row)),
    section('Call Features', ...features.map((f) => f.row), categoryBox),
    escalation,
    section('Advanced Settings', ...advanced.map((f) => f.row)),
    error,
    h('div', { class: 'actions sticky-actions' }, save),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const values = readForm(form);
    if (!values.aiModelId) delete values.aiModelId;
    const patch = changedFields(original, values);
    const categoryIds = chosenCategories();
    const categoriesChanged = JSON.stringify(categoryIds) !== JSON.stringify(linkedIds);
    if (!Object.keys(patch).length && !categoriesChanged) return announce('Nothing changed.');
    save.disabled = true;
    try {
      if (Object.keys(patch).length) {
        const saved = await ctx.api.patch(`${base}/call-settings`, patch);
        original = valuesOf(saved);
        await showVoices(saved.aiModelId, saved.voice);
      }
      if (categoriesChanged) {
        const result = await ctx.api.put(`${base}/knowledge-categories`, { categoryIds });
        linkedIds = [...result.categoryIds].sort();
      }
      announce('Call Options saved.');
    } catch (err) {
      showError(form, err);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

/** The editable values of the call settings, as the form reads them back. */
function valuesOf(settings) {
  const { availableVoices, ...values } = settings;
  if (values.aiModelId === null) delete values.aiModelId;
  return values;
}
