// Calls (company admins): the history with filters (chatbot, source, status, dates; kept
// in the URL), and a call's page: facts, timeline, transcript, the transcript downloads
// and the recording player when the API offers them (GET /api/openapi.json lists
// `/api/company/calls/{id}/transcript` and `…/recording`).

import { h, field, screenHeader, section, table, badge, dateTime, link, button, announce, errorText } from '../ui.js';
import { callsQuery, callFilters, CALL_SOURCES, CALL_STATUSES, sourceLabel, endReasonText, timeline, offsetClock } from '../logic.js';
import { durationInWords } from '/widget/v1/i18n.js';

const STATUS_TONES = { completed: 'ok', failed: 'bad', active: 'info', connecting: 'info', pending: 'warn' };
const statusBadge = (status) => badge(status, STATUS_TONES[status]);
const duration = (ms) => (ms === null || ms === undefined ? '—' : durationInWords(ms));

export async function render(ctx) {
  return ctx.route.id ? detail(ctx) : callHistory(ctx);
}

async function callHistory(ctx) {
  const bots = await ctx.api.get('/api/company/chatbots');
  const filters = callFilters(ctx.search);
  const results = h('div', { 'aria-live': 'polite' });
  let limit = 50;
  const controls = {
    chatbot: field({ label: 'Chatbot', name: 'chatbot', kind: 'select', value: filters.chatbot, options: [['', 'All chatbots'], ...bots.map((b) => [b.id, b.name])] }),
    source: field({ label: 'Source', name: 'source', kind: 'select', value: filters.source, options: [['', 'All sources'], ...CALL_SOURCES] }),
    status: field({ label: 'Status', name: 'status', kind: 'select', value: filters.status, options: [['', 'All statuses'], ...CALL_STATUSES.map((s) => [s, s])] }),
    from: field({ label: 'From', name: 'from', kind: 'date', value: filters.from }),
    to: field({ label: 'To', name: 'to', kind: 'date', value: filters.to }),
  };
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter calls' }, ...Object.values(controls).map((c) => c.row));
  const current = () => Object.fromEntries(Object.entries(controls).map(([k, c]) => [k, c.control.value]));
  form.addEventListener('change', () => {
    const query = new URLSearchParams(Object.entries(current()).filter(([, v]) => v));
    history.replaceState(null, '', `/admin/calls${query.size ? `?${query}` : ''}`);
    limit = 50;
    load();
  });
  form.addEventListener('submit', (event) => event.preventDefault());
  const botName = (id) => bots.find((b) => b.id === id)?.name ?? 'deleted chatbot';

  async function load() {
    let calls;
    try {
      calls = await ctx.api.get(`/api/company/calls?${callsQuery({ ...current(), limit })}`);
    } catch (err) {
      results.replaceChildren(h('p', { class: 'form-error', role: 'alert', text: errorText(err) }));
      return;
    }
    if (!ctx.current()) return;
    const rows = calls.map((c) => [
      link(`/admin/calls/${c.id}`, dateTime(c.createdAt), { 'aria-label': `Call of ${dateTime(c.createdAt)} with ${botName(c.chatbotId)}` }),
      botName(c.chatbotId),
      sourceLabel(c.source),
      statusBadge(c.status),
      endReasonText(c.endReason) || '—',
      duration(c.durationMs),
      c.rating ? `${c.rating}/5` : '—',
      c.isTest ? badge('test', 'info') : '',
    ]);
    const more = button('Show more', () => {
      limit = Math.min(200, limit * 2);
      load();
    });
    results.replaceChildren(
      table({ caption: `${calls.length} call${calls.length === 1 ? '' : 's'}`, columns: ['Started', 'Chatbot', 'Source', 'Status', 'End reason', 'Duration', 'Rating', ''], rows, empty: 'No calls match these filters.' }),
      ...(calls.length === limit && limit < 200 ? [more] : []),
    );
  }
  await load();
  return [screenHeader('Calls', 'Every call to your chatbots, newest first.'), section('Filters', form), results];
}

async function detail(ctx) {
  const id = ctx.route.id;
  const [call, bots] = await Promise.all([ctx.api.get(`/api/company/calls/${encodeURIComponent(id)}`), ctx.api.get('/api/company/chatbots')]);
  const bot = bots.find((b) => b.id === call.chatbotId);
  const facts = [
    ['Status', statusBadge(call.status)],
    ['Chatbot', bot ? link(`/admin/chatbots/${bot.id}`, bot.name) : 'deleted chatbot'],
    ['Source', sourceLabel(call.source)],
    ['Test call', call.isTest ? 'yes' : 'no'],
    ['Model', [call.provider, call.modelId].filter(Boolean).join(' · ') || '—'],
    ['Duration', duration(call.durationMs)],
    ['End reason', call.endReason ? `${call.endReason} (${endReasonText(call.endReason)})` : '—'],
    ['Rating', call.rating ? `${call.rating}/5${call.ratingComment ? ` — “${call.ratingComment}”` : ''}` : 'none'],
  ];
  if (call.errorMessage) facts.push(['Error', call.errorMessage]);
  const steps = timeline(call);
  const lines = call.transcript ?? [];
  const transcript = lines.length
    ? h(
        'ol',
        { class: 'lines', 'aria-label': 'Transcript' },
        ...lines.map((l) => h('li', { class: l.role }, h('span', { class: 'at', text: offsetClock(l.offsetMs) }), h('strong', { text: `${ROLE_LABELS[l.role] ?? l.role}: ` }), l.content)),
      )
    : h('p', { class: 'empty', text: 'No transcript was stored.' });
  const downloads = h('div', { class: 'actions' });
  const recording = h('div');
  await Promise.all([offerDownloads(ctx, call, downloads), offerRecording(ctx, call, recording)]);
  return [
    h('p', {}, link('/admin/calls', '← All calls')),
    screenHeader(`Call of ${dateTime(call.createdAt)}`, call.id),
    h(
      'div',
      { class: 'grid' },
      section('Summary', h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]))),
      section('Timeline', h('ol', { class: 'timeline' }, ...steps.map((s) => h('li', {}, h('strong', { text: s.label }), s.at ? ` — ${dateTime(s.at, { seconds: true })}` : '', s.detail ? h('div', { class: 'muted', text: s.detail }) : null)))),
    ),
    section('Transcript', transcript, downloads),
    recording,
  ];
}

const ROLE_LABELS = { user: 'Caller', agent: 'Agent', system: 'System' };

/** Download links for the transcript, when the gateway has the download route. */
async function offerDownloads(ctx, call, container) {
  if (!ctx.apiPaths.has('/api/company/calls/{id}/transcript')) return;
  for (const [format, label] of [
    ['txt', 'Download transcript (.txt)'],
    ['json', 'Download transcript (.json)'],
  ]) {
    container.append(
      button(label, async () => {
        try {
          const blob = await ctx.api.blob(`/api/company/calls/${encodeURIComponent(call.id)}/transcript?format=${format}`);
          const url = URL.createObjectURL(blob);
          const a = h('a', { href: url, download: `call-${call.id}.${format}`, hidden: true });
          document.body.append(a);
          a.click();
          a.remove();
          setTimeout(() => URL.revokeObjectURL(url), 10000);
        } catch (err) {
          announce(errorText(err), 'error');
        }
      }),
    );
  }
}

/** The recording player, when the gateway has recordings and this call has one. */
async function offerRecording(ctx, call, container) {
  if (!ctx.apiPaths.has('/api/company/calls/{id}/recording')) return;
  if (!call.hasRecording) {
    container.append(section('Recording', h('p', { class: 'empty', text: 'This call was not recorded.' })));
    return;
  }
  let recording;
  try {
    recording = await ctx.api.get(`/api/company/calls/${encodeURIComponent(call.id)}/recording`);
  } catch (err) {
    if (err.status === 404) container.append(section('Recording', h('p', { class: 'empty', text: 'This call was not recorded.' })));
    else container.append(section('Recording', h('p', { class: 'form-error', text: errorText(err) })));
    return;
  }
  container.append(
    section(
      'Recording',
      h('audio', { controls: true, preload: 'metadata', src: recording.url, 'aria-label': 'Call recording' }),
      h('p', { class: 'hint', text: `${recording.format}, ${duration(recording.durationMs)}. Left channel: the caller; right: the agent. The link expires ${dateTime(recording.expiresAt)}.` }),
    ),
  );
}
