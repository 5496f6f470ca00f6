// Companies (master admins, spec 1): every company, a new one, and a company's Features
// panel with the Voice Calls switch (`PATCH /api/admin/companies/{id}/settings`).

import { h, field, readForm, showError, formError, button, badge, screenHeader, section, table, dateTime, announce } from '../ui.js';

const CALLS_EXPLAINED = [
  'Enable voice call capabilities for this company.',
  'When on, its company admins see everything about calls: call chatbots and their Call Options (model, voice, greeting, timeouts…), the call button settings of the widget, integration accounts for Twilio phone numbers and WhatsApp Business, and Test Call; visitors of its sites can call its call chatbots.',
  'When off, call features are hidden from the company dashboard and the widget’s call button reads “Voice calls temporarily unavailable”. Chat is not affected.',
];

export async function render(ctx) {
  const list = h('div');
  const panel = h('div');
  let companies = [];
  let selected = null;

  async function load() {
    companies = await ctx.api.get('/api/admin/companies');
    list.replaceChildren(
      table({
        caption: 'Companies',
        hideCaption: true,
        columns: ['Company', 'Voice calls', 'Created', ''],
        rows: companies.map((c) => [
          h('strong', { text: c.name }),
          c.settings.features.callEnabled ? badge('On', 'ok') : badge('Off'),
          dateTime(c.createdAt),
          button('Features', () => showFeatures(c.id), 'small', { 'aria-label': `Features of ${c.name}` }),
        ]),
        empty: 'No companies yet.',
      }),
    );
    if (selected) showFeatures(selected, { focus: false });
  }

  function showFeatures(id, { focus = true } = {}) {
    const company = companies.find((c) => c.id === id);
    if (!company) return panel.replaceChildren();
    selected = id;
    const calls = field({ label: 'Voice Calls', name: 'callEnabled', kind: 'checkbox', value: company.settings.features.callEnabled, attrs: { role: 'switch' } });
    const chat = field({ label: 'Chat Feature (always on)', name: 'chat', kind: 'checkbox', value: true, attrs: { disabled: true } });
    const error = formError();
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'features-title', novalidate: true },
      h('h2', { id: 'features-title', tabindex: '-1', text: `Features — ${company.name}` }),
      chat.row,
      calls.row,
      h('div', { class: 'hint' }, ...CALLS_EXPLAINED.map((text) => h('p', { text }))),
      error,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Save features' })),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const updated = await ctx.api.patch(`/api/admin/companies/${company.id}/settings`, { features: { callEnabled: calls.control.checked } });
        announce(`Voice calls are ${updated.settings.features.callEnabled ? 'on' : 'off'} for ${updated.name}.`);
        await ctx.refreshMe();
        await load();
      } catch (err) {
        showError(form, err);
      }
    });
    panel.replaceChildren(form);
    if (focus) form.querySelector('h2').focus();
  }

  const name = field({ label: 'Company name', name: 'name', attrs: { maxlength: 200, autocomplete: 'off' } });
  const callsNow = field({ label: 'Enable voice calls now', name: 'callEnabled', kind: 'checkbox', value: false });
  const createError = formError();
  const create = h('form', { novalidate: true }, name.row, callsNow.row, createError, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Create company' })));
  create.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = readForm(create);
    try {
      const company = await ctx.api.post('/api/admin/companies', { name: values.name, settings: { features: { callEnabled: values.callEnabled } } });
      name.control.value = '';
      announce(`Company ${company.name} created.`);
      selected = company.id;
      await ctx.refreshMe();
      await load();
    } catch (err) {
      showError(create, err);
    }
  });

  await load();
  return [
    screenHeader('Companies', 'Every company on the platform. Open a company’s Features to switch voice calls on or off.'),
    h('div', { class: 'split' }, h('div', {}, section('All companies', list), section('New company', create)), panel),
  ];
}
