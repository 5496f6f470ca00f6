// Notices (company admins, docs/api.md "Notices"): what keeps failing for the company —
// an integration account's credentials, the voice provider, a disabled webhook endpoint —
// open ones first (`?status=all` for every notice), each with where to fix it and
// Dismiss. The menu's count of open notices follows (`ctx.refreshNotices`).

import { h, field, button, badge, link, screenHeader, announce, errorText, dateTime } from '../ui.js';
import { noticeView, relativeTime } from '../logic.js';

export async function render(ctx) {
  const all = new URLSearchParams(ctx.search).get('status') === 'all';
  const show = field({
    label: 'Show',
    name: 'status',
    kind: 'select',
    value: all ? 'all' : 'open',
    options: [
      ['open', 'Open notices'],
      ['all', 'All notices (resolved and dismissed too)'],
    ],
  });
  const list = h('div', { class: 'accounts' });

  async function load() {
    const status = show.control.value;
    let notices;
    try {
      notices = await ctx.api.get(`/api/company/notices?status=${status}&limit=200`);
    } catch (err) {
      list.replaceChildren(h('p', { class: 'form-error', role: 'alert', text: errorText(err) }));
      return;
    }
    if (!ctx.current()) return;
    const empty = status === 'open' ? 'No open notices: nothing is failing.' : 'No notices yet.';
    list.replaceChildren(...(notices.length ? notices.map(card) : [h('p', { class: 'empty', text: empty })]));
  }

  function card(notice) {
    const view = noticeView(notice, ctx.screens);
    const titleId = `notice-${notice.id}`;
    const facts = [
      ['First reported', `${dateTime(notice.createdAt)} (${relativeTime(notice.createdAt)})`],
      ['Reported', notice.occurrences === 1 ? 'once' : `${notice.occurrences} times, last ${relativeTime(notice.updatedAt)}`],
    ];
    if (notice.resolvedAt) facts.push(['Resolved', dateTime(notice.resolvedAt)]);
    if (notice.dismissedAt) facts.push(['Dismissed', dateTime(notice.dismissedAt)]);
    return h(
      'article',
      { class: `card account-card notice ${notice.status}`, 'aria-labelledby': titleId, 'data-notice': notice.id },
      h('header', {}, h('h2', { id: titleId, text: view.title }), h('span', { class: 'badges' }, badge(view.severity.text, view.severity.tone), badge(view.status.text, view.status.tone))),
      h('p', { text: notice.message }),
      h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)])),
      h(
        'div',
        { class: 'actions' },
        view.action ? link(view.action.href, view.action.text, { class: 'btn' }) : null,
        notice.status === 'open' ? button('Dismiss', () => dismiss(notice, view.title), '', { 'aria-label': `Dismiss: ${view.title}` }) : null,
      ),
    );
  }

  async function dismiss(notice, title) {
    try {
      await ctx.api.post(`/api/company/notices/${encodeURIComponent(notice.id)}/dismiss`);
      announce(`Dismissed: ${title}. A new notice opens if it happens again.`);
    } catch (err) {
      announce(errorText(err), 'error');
    }
    ctx.refreshNotices();
    await load();
  }

  show.control.addEventListener('change', () => {
    history.replaceState(null, '', `/admin/notices${show.control.value === 'all' ? '?status=all' : ''}`);
    load();
  });
  await load();
  return [
    screenHeader('Notices', 'What keeps failing for your company and needs an admin: integration accounts, the voice provider, webhook endpoints. A notice resolves itself when the condition clears.'),
    h('form', { class: 'filters narrow', role: 'search', 'aria-label': 'Filter notices', onsubmit: (e) => e.preventDefault() }, show.row),
    list,
  ];
}
