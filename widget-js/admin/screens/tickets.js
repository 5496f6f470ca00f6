// Tickets (company admins and support agents, docs/agent-protocol.md "Tickets"): the
// messages the AI took when no agent was free, newest first, filtered open / closed / all
// (kept in the URL), each closed or reopened with `PATCH /api/company/tickets/{id}`.
// The agent console (/agent) shows this same screen: `ctx.basePath` is where its filter
// lives, `ctx.screens` says whether the call's page can be opened.

import { h, field, screenHeader, table, badge, dateTime, link, button, announce, errorText } from '../ui.js';
import { TICKET_FILTERS, ticketFilter, ticketsQuery, ticketView, relativeTime } from '../logic.js';

export async function render(ctx) {
  const basePath = ctx.basePath ?? '/admin/tickets';
  const show = field({ label: 'Show', name: 'status', kind: 'select', value: ticketFilter(ctx.search), options: TICKET_FILTERS.map(([id, label]) => [id, `${label} tickets`]) });
  const results = h('div', { 'aria-live': 'polite', 'data-slot': 'tickets' });
  const callLinks = ctx.screens?.includes('calls');

  async function load() {
    let tickets;
    try {
      tickets = await ctx.api.get(`/api/company/tickets?${ticketsQuery(show.control.value)}`);
    } catch (err) {
      results.replaceChildren(h('p', { class: 'form-error', role: 'alert', text: errorText(err) }));
      return;
    }
    if (!ctx.current()) return;
    const empty = { open: 'No open tickets: nobody is waiting for a call back.', closed: 'No closed tickets.', all: 'No tickets yet: the AI opens one when it takes a message because no agent was free.' }[show.control.value];
    results.replaceChildren(
      table({
        caption: 'Tickets, newest first',
        hideCaption: true,
        columns: ['Name', 'Call back', 'Message', 'Created', 'Status', 'Call', 'Action'],
        rows: tickets.map(row),
        empty,
      }),
    );
    for (const [i, tr] of [...results.querySelectorAll('tbody tr')].entries()) tr.dataset.ticket = tickets[i].id;
  }

  function row(ticket) {
    const view = ticketView(ticket);
    const name = ticket.name || 'someone';
    let call = '—';
    if (ticket.callId) call = callLinks ? link(`/admin/calls/${encodeURIComponent(ticket.callId)}`, 'Open the call', { 'aria-label': `Open the call of ${name}'s message` }) : h('code', { text: ticket.callId.slice(0, 8), title: ticket.callId });
    return [
      h('strong', { text: ticket.name }),
      ticket.callbackNumber ? h('a', { href: `tel:${ticket.callbackNumber.replace(/[^\d+]/g, '')}`, text: ticket.callbackNumber }) : '—',
      h('span', { class: 'ticket-message', text: ticket.message }),
      h('span', { title: dateTime(ticket.createdAt, { seconds: true }) }, `${dateTime(ticket.createdAt)} (${relativeTime(ticket.createdAt)})`),
      badge(view.label, view.tone),
      call,
      button(view.action, () => setStatus(ticket, view.next), 'small', { 'aria-label': `${view.action} the ticket of ${name}` }),
    ];
  }

  async function setStatus(ticket, status) {
    try {
      await ctx.api.patch(`/api/company/tickets/${encodeURIComponent(ticket.id)}`, { status });
      announce(status === 'closed' ? `Closed the ticket of ${ticket.name}.` : `Reopened the ticket of ${ticket.name}.`);
    } catch (err) {
      announce(errorText(err), 'error');
    }
    await load();
    // The row may have left the list: keep the keyboard focus on the list.
    if (!results.contains(document.activeElement)) show.control.focus();
  }

  show.control.addEventListener('change', () => {
    const value = show.control.value;
    history.replaceState(null, '', `${basePath}${value === 'open' ? '' : `?status=${value}`}`);
    load();
  });
  const refresh = button('Refresh', () => load());
  await load();
  return [
    screenHeader('Tickets', 'Messages the AI took when no agent was free: who to call back, on which number, and what about. Close a ticket once it is handled.', refresh),
    h('form', { class: 'filters narrow', role: 'search', 'aria-label': 'Filter tickets', onsubmit: (e) => e.preventDefault() }, show.row),
    results,
  ];
}
