// AI models (master admins, spec 2): the catalogue with type badges (chat / call / both),
// filtered by type; add and edit a model (provider, model id, type, dialect); deactivate
// or delete it. Voices follow from the provider and its dialect (shown, not edited).

import { h, field, readForm, showError, formError, button, badge, screenHeader, section, table, openDialog, confirmAction, announce, errorText } from '../ui.js';
import { MODEL_TYPES, modelTypeBadge } from '../logic.js';

const PROVIDERS = [
  ['openai', 'OpenAI'],
  ['google', 'Google'],
  ['echo', 'Echo (built in, no AI)'],
];
const TYPE_TONES = { chat: 'info', call: 'ok', both: 'warn' };

function voicesText(model) {
  if (!model.voices?.length) return '—';
  const shown = model.voices.slice(0, 4).join(', ');
  return `${model.voices.length} (${shown}${model.voices.length > 4 ? ', …' : ''})`;
}

export async function render(ctx) {
  const list = h('div');
  const filter = field({
    label: 'Show',
    name: 'type',
    kind: 'select',
    value: new URLSearchParams(ctx.search).get('type') ?? '',
    options: [
      ['', 'All models'],
      ['call', 'Call-capable (call and both)'],
      ['chat', 'Chat-capable (chat and both)'],
    ],
  });
  filter.control.addEventListener('change', () => {
    const type = filter.control.value;
    history.replaceState(null, '', type ? `?type=${type}` : location.pathname);
    load();
  });

  async function load() {
    const type = filter.control.value;
    const models = await ctx.api.get(`/api/admin/ai-models${type ? `?type=${type}` : ''}`);
    if (!ctx.current()) return;
    list.replaceChildren(
      table({
        caption: 'AI models',
        hideCaption: true,
        columns: ['Model', 'Provider', 'Model ID', 'Type', 'Voices', 'Status', ''],
        rows: models.map((m) => [
          h('strong', { text: m.displayName }),
          PROVIDERS.find(([id]) => id === m.provider)?.[1] ?? m.provider,
          h('code', { text: m.modelId }),
          badge(modelTypeBadge(m.modelType), TYPE_TONES[m.modelType]),
          voicesText(m),
          m.isActive ? badge('Active', 'ok') : badge('Inactive', 'warn'),
          h(
            'div',
            { class: 'actions' },
            button('Edit', () => edit(m), 'small', { 'aria-label': `Edit ${m.displayName}` }),
            button(m.isActive ? 'Deactivate' : 'Activate', () => setActive(m, !m.isActive), 'small', {
              'aria-label': `${m.isActive ? 'Deactivate' : 'Activate'} ${m.displayName}`,
            }),
            button('Delete', () => remove(m), 'small danger', { 'aria-label': `Delete ${m.displayName}` }),
          ),
        ]),
        empty: 'No models of this type.',
      }),
    );
  }

  async function setActive(model, active) {
    try {
      await ctx.api.patch(`/api/admin/ai-models/${model.id}`, { isActive: active });
      announce(`${model.displayName} is now ${active ? 'active' : 'inactive'}.`);
      await load();
    } catch (err) {
      announce(errorText(err), 'error');
    }
  }

  async function remove(model) {
    const ok = await confirmAction({
      title: `Delete ${model.displayName}?`,
      message: 'The model leaves the catalogue. A model that chatbots use for calls cannot be deleted: deactivate it instead.',
    });
    if (!ok) return;
    try {
      await ctx.api.delete(`/api/admin/ai-models/${model.id}`);
      announce(`${model.displayName} deleted.`);
      await load();
    } catch (err) {
      announce(errorText(err), 'error');
    }
  }

  /** The add / edit form in a dialog; `model` is null for a new one. */
  function edit(model) {
    const settings = model?.settings ?? {};
    const fields = {
      provider: field({ label: 'Provider', name: 'provider', kind: 'select', options: PROVIDERS, value: model?.provider ?? 'openai', attrs: { disabled: Boolean(model) } }),
      modelId: field({
        label: 'Model ID',
        name: 'modelId',
        value: model?.modelId ?? '',
        hint: model ? 'A model’s provider and id cannot change: add a new model instead.' : 'As the provider names it, e.g. gpt-realtime-mini.',
        attrs: { disabled: Boolean(model), spellcheck: 'false', autocomplete: 'off' },
      }),
      displayName: field({ label: 'Display Name', name: 'displayName', value: model?.displayName ?? '', attrs: { maxlength: 200 } }),
      modelType: field({ label: 'Model Type', name: 'modelType', kind: 'select', options: MODEL_TYPES, value: model?.modelType ?? 'call' }),
      realtimeDialect: field({
        label: 'Realtime dialect (OpenAI)',
        name: 'realtimeDialect',
        kind: 'select',
        options: [
          ['ga', 'GA (current models)'],
          ['beta', 'Beta (the 2024 preview models)'],
        ],
        value: settings.realtimeDialect ?? 'ga',
      }),
      liveApiVersion: field({
        label: 'Live API version (Google)',
        name: 'liveApiVersion',
        kind: 'select',
        options: [
          ['v1beta', 'v1beta'],
          ['v1alpha', 'v1alpha (2.0 experimental models)'],
        ],
        value: settings.liveApiVersion ?? 'v1beta',
      }),
      isActive: field({ label: 'Active (chatbots may choose it)', name: 'isActive', kind: 'checkbox', value: model?.isActive ?? true }),
    };
    const voices = model?.voices?.length
      ? h('p', { class: 'hint', text: `Voices (from the provider): ${model.voices.join(', ')}; default ${model.defaultVoice}.` })
      : h('p', { class: 'hint', text: 'Call-capable models offer the voices of their provider and dialect.' });
    const error = formError();
    const form = h('form', { novalidate: true }, ...Object.values(fields).map((f) => f.row), voices, error);
    const showProviderFields = () => {
      const provider = fields.provider.control.value;
      fields.realtimeDialect.row.hidden = provider !== 'openai';
      fields.liveApiVersion.row.hidden = provider !== 'google';
    };
    fields.provider.control.addEventListener('change', showProviderFields);
    showProviderFields();
    let box;
    const save = h('button', { type: 'button', class: 'btn primary', text: model ? 'Save model' : 'Add model' });
    save.addEventListener('click', async () => {
      const values = readForm(form);
      const provider = model?.provider ?? values.provider;
      const modelSettings = provider === 'openai' ? { realtimeDialect: values.realtimeDialect } : provider === 'google' ? { liveApiVersion: values.liveApiVersion } : {};
      const body = { displayName: values.displayName, modelType: values.modelType, isActive: values.isActive, settings: modelSettings };
      try {
        if (model) await ctx.api.patch(`/api/admin/ai-models/${model.id}`, body);
        else await ctx.api.post('/api/admin/ai-models', { ...body, provider, modelId: values.modelId });
        box.close('saved');
        announce(`${values.displayName} saved.`);
        await load();
      } catch (err) {
        showError(form, err);
      }
    });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      save.click();
    });
    box = openDialog({ title: model ? `Edit ${model.displayName}` : 'Add a model', content: form, actions: [button('Cancel', () => box.close()), save] });
  }

  await load();
  return [
    screenHeader('AI models', 'The models chatbots can use. Call models answer voice calls (OpenAI Realtime, Gemini Live); chat models serve the chat product.', button('Add model', () => edit(null), 'primary')),
    section('Catalogue', h('div', { class: 'filters' }, filter.row), list),
  ];
}
