// Chatbots (company admins): the list, a new chatbot, and a chatbot's tabs — General,
// Call Options (call chatbots only, spec 4), Widget (spec 5) — with a link to test it.

import { h, field, readForm, showError, formError, badge, screenHeader, section, table, announce, link } from '../ui.js';
import { changedFields } from '../logic.js';

export async function render(ctx) {
  if (ctx.route.id) return detail(ctx);
  const bots = await ctx.api.get('/api/company/chatbots');
  const calls = ctx.company.callEnabled;
  const rows = bots.map((b) => [
    link(`/admin/chatbots/${b.id}`, b.name),
    typeBadge(b.chatbotType),
    b.description || '—',
    h(
      'div',
      { class: 'actions' },
      b.chatbotType === 'call' && calls ? link(`/admin/chatbots/${b.id}/call-options`, 'Call Options', { 'aria-label': `Call Options of ${b.name}` }) : null,
      link(`/admin/chatbots/${b.id}/widget`, 'Widget', { 'aria-label': `Widget of ${b.name}` }),
      b.chatbotType === 'call' && calls ? link(`/admin/test-call?chatbot=${b.id}`, 'Test Call', { 'aria-label': `Test Call ${b.name}` }) : null,
    ),
  ]);

  const name = field({ label: 'Name', name: 'name', attrs: { maxlength: 200, autocomplete: 'off' } });
  const kind = field({
    label: 'Type',
    name: 'chatbotType',
    kind: 'radios',
    value: calls ? 'call' : 'chat',
    options: [
      ['chat', 'Chat'],
      ['call', 'Call (voice)'],
    ],
    hint: calls ? 'Call chatbots answer voice calls from the widget, phone numbers and WhatsApp.' : 'Voice calls are not enabled for this company: call chatbots need a master admin to enable them.',
    attrs: {},
  });
  if (!calls) kind.row.querySelector('input[value=call]').disabled = true;
  const description = field({ label: 'Description (optional)', name: 'description', attrs: { maxlength: 2000 } });
  const error = formError();
  const form = h('form', { novalidate: true }, name.row, kind.row, description.row, error, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Create chatbot' })));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const bot = await ctx.api.post('/api/company/chatbots', readForm(form));
      announce(`Chatbot ${bot.name} created.`);
      ctx.navigate(bot.chatbotType === 'call' ? `/admin/chatbots/${bot.id}/call-options` : `/admin/chatbots/${bot.id}`);
    } catch (err) {
      showError(form, err);
    }
  });
  return [
    screenHeader('Chatbots', `The chatbots of ${ctx.company.name}. Call chatbots have Call Options and a call button in their widget.`),
    section('All chatbots', table({ caption: 'Chatbots', hideCaption: true, columns: ['Chatbot', 'Type', 'Description', ''], rows, empty: 'No chatbots yet.' })),
    section('New chatbot', form),
  ];
}

const typeBadge = (type) => (type === 'call' ? badge('Call', 'ok') : badge('Chat', 'info'));

async function detail(ctx) {
  const { id, tab } = ctx.route;
  const bot = await ctx.api.get(`/api/company/chatbots/${encodeURIComponent(id)}`);
  const callTabs = bot.chatbotType === 'call' && ctx.company.callEnabled;
  const tabs = [
    ['general', 'General'],
    ...(callTabs ? [['call-options', 'Call Options']] : []),
    ['widget', 'Widget'],
  ];
  const tabList = h(
    'ul',
    { class: 'tabs' },
    ...tabs.map(([t, label]) => h('li', {}, link(`/admin/chatbots/${bot.id}/${t}`, label, { 'aria-current': t === tab ? 'page' : false }))),
    callTabs ? h('li', {}, link(`/admin/test-call?chatbot=${bot.id}`, 'Test Call ↗')) : null,
  );
  let body;
  if (tab === 'call-options') {
    body = callTabs
      ? await (await import('./call-options.js')).callOptions(ctx, bot)
      : h('p', { class: 'placeholder', text: bot.chatbotType === 'call' ? 'Voice calls are not enabled for this company.' : 'Call Options exist only for call chatbots: change the type under General.' });
  } else if (tab === 'widget') {
    body = await (await import('./widget-settings.js')).widgetSettings(ctx, bot);
  } else {
    body = general(ctx, bot);
  }
  return [
    h('p', {}, link('/admin/chatbots', '← All chatbots')),
    screenHeader(bot.name, null, typeBadge(bot.chatbotType)),
    h('nav', { 'aria-label': `${bot.name} settings` }, tabList),
    body,
  ];
}

function general(ctx, bot) {
  const original = { name: bot.name, description: bot.description, instructions: bot.instructions, chatbotType: bot.chatbotType };
  const fields = [
    field({ label: 'Name', name: 'name', value: bot.name, attrs: { maxlength: 200 } }),
    field({ label: 'Description', name: 'description', value: bot.description, attrs: { maxlength: 2000 } }),
    field({
      label: 'Instructions',
      name: 'instructions',
      kind: 'textarea',
      value: bot.instructions,
      hint: 'What the agent is told about its job, tone and limits (up to 20,000 characters).',
      attrs: { rows: 8, maxlength: 20000 },
    }),
    field({
      label: 'Type',
      name: 'chatbotType',
      kind: 'select',
      value: bot.chatbotType,
      options: [
        ['chat', 'Chat'],
        ['call', 'Call (voice)'],
      ],
    }),
  ];
  const error = formError();
  const form = h('form', { class: 'card', novalidate: true }, ...fields.map((f) => f.row), error, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Save' })));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const patch = changedFields(original, readForm(form));
    if (!Object.keys(patch).length) return announce('Nothing changed.');
    try {
      const saved = await ctx.api.patch(`/api/company/chatbots/${bot.id}`, patch);
      announce(`${saved.name} saved.`);
      ctx.navigate(`/admin/chatbots/${bot.id}/general`, { replace: true });
    } catch (err) {
      showError(form, err);
    }
  });
  return form;
}
