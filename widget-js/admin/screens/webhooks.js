// Webhooks (company admins, docs/webhooks.md): the company's endpoints with their events
// and state (Disabled with the API's reason), add one (the signing secret is shown this
// once, with Copy), edit its URL, events and description, disable / enable, rotate the
// secret, delete after a confirmation; and an endpoint's delivery log
// (`/admin/webhooks/{id}?status=`) with status, attempts, the receiver's answers and
// Redeliver.

import { h, field, showError, formError, button, badge, link, screenHeader, section, table, openDialog, confirmAction, announce, errorText, copyButton, dateTime } from '../ui.js';
import { WEBHOOK_EVENTS, webhookStatus, deliveryStatus, deliveryResponse, webhookField, changedFields, relativeTime } from '../logic.js';

const path = (id) => `/api/company/webhooks/${encodeURIComponent(id)}`;
const nameOf = (hook) => hook.description || hook.url;

export async function render(ctx) {
  return ctx.route.id ? deliveryLog(ctx) : endpoints(ctx);
}

async function endpoints(ctx) {
  const list = h('div', { class: 'accounts' });

  async function load() {
    const hooks = await ctx.api.get('/api/company/webhooks');
    if (!ctx.current()) return;
    list.replaceChildren(...(hooks.length ? hooks.map(card) : [h('p', { class: 'empty', text: 'No webhook endpoints yet. Add one to receive call events in your own systems.' })]));
  }
  const reload = () => load().catch((err) => announce(errorText(err), 'error'));

  function card(hook) {
    const status = webhookStatus(hook);
    const name = nameOf(hook);
    const titleId = `webhook-${hook.id}`;
    const facts = [
      ['URL', h('code', { text: hook.url })],
      ['Events', h('ul', { class: 'tags' }, ...hook.events.map((e) => h('li', {}, h('code', { text: e }))))],
      ['Signing secret', h('code', { text: hook.secret })],
      ['Created', dateTime(hook.createdAt)],
    ];
    if (!hook.enabled) facts.push(['Disabled', `${status.detail}${hook.disabledAt ? ` (${dateTime(hook.disabledAt)})` : ''}`]);
    else if (hook.failingSince) facts.push(['Failing since', `${dateTime(hook.failingSince)}: deliveries are being retried`]);
    const toggle = hook.enabled
      ? button('Disable', () => disable(hook), '', { 'aria-label': `Disable ${name}` })
      : button('Enable', () => enable(hook), 'primary', { 'aria-label': `Enable ${name}` });
    return h(
      'article',
      { class: 'card account-card', 'aria-labelledby': titleId, 'data-webhook': hook.id },
      h('header', {}, h('h2', { id: titleId, text: name }), badge(status.label, status.tone)),
      h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)])),
      h(
        'div',
        { class: 'actions' },
        link(`/admin/webhooks/${encodeURIComponent(hook.id)}`, 'Delivery log', { class: 'btn', 'aria-label': `Delivery log of ${name}` }),
        button('Edit', () => edit(hook), '', { 'aria-label': `Edit ${name}` }),
        toggle,
        button('Rotate secret', () => rotate(hook), '', { 'aria-label': `Rotate the signing secret of ${name}` }),
        button('Delete', () => remove(hook), 'danger', { 'aria-label': `Delete ${name}` }),
      ),
    );
  }

  async function change(hook, body, done) {
    try {
      await ctx.api.patch(path(hook.id), body);
      announce(done);
      ctx.refreshNotices(); // enabling resolves a webhook_disabled notice
    } catch (err) {
      announce(errorText(err), 'error');
    }
    await reload();
  }

  const enable = (hook) => change(hook, { enabled: true }, `${nameOf(hook)} enabled: deliveries waiting for it go out in order.`);

  async function disable(hook) {
    const ok = await confirmAction({
      title: `Disable ${nameOf(hook)}?`,
      message: 'Events that happen while it is disabled are not sent to it, not even later. Deliveries already waiting stay and go out when you enable it again.',
      confirm: 'Disable',
    });
    if (ok) await change(hook, { enabled: false }, `${nameOf(hook)} disabled.`);
  }

  async function rotate(hook) {
    const ok = await confirmAction({
      title: `Rotate the signing secret of ${nameOf(hook)}?`,
      message: 'Deliveries from now on are signed with a new secret: have your receiver accept both until it has the new one.',
      confirm: 'Rotate secret',
    });
    if (!ok) return;
    try {
      const rotated = await ctx.api.post(`${path(hook.id)}/rotate-secret`);
      await reload();
      showSecret(rotated, 'New signing secret');
    } catch (err) {
      announce(errorText(err), 'error');
    }
  }

  async function remove(hook) {
    const ok = await confirmAction({
      title: `Delete ${nameOf(hook)}?`,
      message: `Events are no longer sent to ${hook.url}, and its delivery log is deleted.`,
    });
    if (!ok) return;
    try {
      await ctx.api.delete(path(hook.id));
      announce(`${nameOf(hook)} deleted.`);
      ctx.refreshNotices();
    } catch (err) {
      announce(errorText(err), 'error');
    }
    await reload();
  }

  /** The add / edit form; `hook` is null for a new endpoint. */
  function edit(hook) {
    const url = field({ label: 'URL', name: 'url', kind: 'url', value: hook?.url ?? '', hint: 'A public http(s) address of your system: each event is POSTed there as JSON.', attrs: { spellcheck: 'false', autocomplete: 'off', maxlength: 2000 } });
    const description = field({ label: 'Description (optional)', name: 'description', value: hook?.description ?? '', attrs: { maxlength: 500 } });
    const events = eventChoices(hook?.events ?? []);
    const error = formError();
    const form = h('form', { novalidate: true }, url.row, description.row, events.row, error);
    const values = () => ({ url: url.control.value.trim(), description: description.control.value, events: events.chosen() });
    const original = hook && { url: hook.url, description: hook.description, events: hook.events };
    let box;
    const save = h('button', { type: 'button', class: 'btn primary', text: hook ? 'Save changes' : 'Add endpoint' });
    save.addEventListener('click', async () => {
      const body = values();
      try {
        if (hook) {
          const patch = changedFields(original, body);
          if (Object.keys(patch).length) await ctx.api.patch(path(hook.id), patch);
          box.close('saved');
          announce(`${nameOf({ ...hook, ...patch })} saved.`);
          await reload();
        } else {
          if (!body.description) delete body.description;
          const created = await ctx.api.post('/api/company/webhooks', body);
          box.close('saved');
          await reload();
          showSecret(created, '✅ Webhook endpoint created');
        }
      } catch (err) {
        err.field = webhookField(err.field);
        showError(form, err);
      }
    });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      save.click();
    });
    box = openDialog({ title: hook ? `Edit ${nameOf(hook)}` : 'Add webhook endpoint', content: form, actions: [button('Cancel', () => box.close()), save], wide: true });
    url.control.focus();
  }

  await load();
  return [
    screenHeader('Webhooks', 'Your systems receive call events as signed POST requests, retried for a day and logged.', button('+ Add endpoint', () => edit(null), 'primary')),
    list,
  ];
}

/** The event checkboxes, one group with one error line (the API names `events` or `events.N`). */
function eventChoices(selected) {
  const error = h('p', { class: 'field-error', id: `events-error-${Math.random().toString(36).slice(2)}` });
  const boxes = WEBHOOK_EVENTS.map(([type, when]) => {
    const id = `event-${type.replace('.', '-')}-${Math.random().toString(36).slice(2)}`;
    const box = h('input', { type: 'checkbox', id, value: type, 'aria-describedby': error.id });
    box.checked = selected.includes(type);
    return h('div', { class: 'field check' }, box, h('label', { for: id }, h('code', { text: type }), ` — ${when}`));
  });
  const row = h('fieldset', { class: 'field', 'data-field': 'events' }, h('legend', { text: 'Events' }), ...boxes, error);
  const chosen = () => [...row.querySelectorAll('input:checked')].map((b) => b.value);
  return { row, chosen };
}

/** The signing secret, in full this once: the dialog is its only appearance. */
function showSecret(hook, title) {
  const content = h(
    'div',
    {},
    h('p', {}, h('strong', { text: 'Copy the signing secret now: you will not see it again.' }), ' The console and the API show it masked from now on; rotate it if it is lost.'),
    h('p', { class: 'webhook' }, h('code', { id: 'new-webhook-secret', text: hook.secret }), copyButton(() => hook.secret, 'Copy secret', { describe: 'Signing secret copied' })),
    h('p', { class: 'hint', text: `Deliveries to ${hook.url} carry an X-Gateway-Signature header: an HMAC-SHA256 of the timestamp and the body made with this secret (docs/webhooks.md, "Verifying a delivery").` }),
  );
  let box;
  box = openDialog({ title, content, actions: [button('Done', () => box.close(), 'primary')], wide: true });
}

async function deliveryLog(ctx) {
  let hook = await ctx.api.get(path(ctx.route.id));
  const filter = new URLSearchParams(ctx.search).get('status') ?? '';
  const status = field({
    label: 'Status',
    name: 'status',
    kind: 'select',
    value: ['pending', 'delivered', 'failed'].includes(filter) ? filter : '',
    options: [['', 'All deliveries'], ['pending', 'Pending'], ['delivered', 'Delivered'], ['failed', 'Failed']],
  });
  const summary = h('div');
  const error = formError();
  const results = h('div');
  let limit = 50;

  function drawSummary() {
    const state = webhookStatus(hook);
    const facts = [
      ['URL', h('code', { text: hook.url })],
      ['State', h('span', {}, badge(state.label, state.tone), state.detail ? ` ${state.detail}` : '')],
      ['Events', hook.events.join(', ')],
    ];
    if (hook.failingSince) facts.push(['Failing since', dateTime(hook.failingSince)]);
    const list = h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]));
    if (hook.enabled) return summary.replaceChildren(list);
    summary.replaceChildren(
      list,
      h('p', { class: 'actions' }, 'Deliveries wait while the endpoint is disabled, and Redeliver is refused.', button('Enable', enable, 'primary', { 'aria-label': `Enable ${nameOf(hook)}` })),
    );
  }

  async function enable() {
    error.textContent = '';
    try {
      hook = await ctx.api.patch(path(hook.id), { enabled: true });
      announce(`${nameOf(hook)} enabled: deliveries waiting for it go out in order.`);
      ctx.refreshNotices();
      drawSummary();
      await load();
    } catch (err) {
      announce(errorText(err), 'error');
    }
  }

  async function load() {
    const query = new URLSearchParams({ limit: String(limit) });
    if (status.control.value) query.set('status', status.control.value);
    let deliveries;
    try {
      deliveries = await ctx.api.get(`${path(hook.id)}/deliveries?${query}`);
    } catch (err) {
      results.replaceChildren(h('p', { class: 'form-error', role: 'alert', text: errorText(err) }));
      return;
    }
    if (!ctx.current()) return;
    const rows = deliveries.map((d) => {
      const state = deliveryStatus(d);
      const when = dateTime(d.createdAt, { seconds: true });
      const notes = [];
      if (d.lastError) notes.push(d.lastError);
      if (d.nextAttemptAt) notes.push(`next attempt ${relativeTime(d.nextAttemptAt)}`);
      if (d.deliveredAt) notes.push(`delivered ${dateTime(d.deliveredAt, { seconds: true })}`);
      if (d.redeliveredAt) notes.push(`redelivery asked ${dateTime(d.redeliveredAt, { seconds: true })}`);
      return [
        h('span', {}, h('code', { text: d.eventType }), h('div', { class: 'muted small', text: d.eventId })),
        when,
        badge(state.label, state.tone),
        attempts(d),
        deliveryResponse(d),
        notes.join('; ') || '—',
        button('Redeliver', () => redeliver(d), 'small', { 'aria-label': `Redeliver ${d.eventType} of ${when}` }),
      ];
    });
    const more = button('Show more', () => {
      limit = Math.min(200, limit * 2);
      load();
    });
    results.replaceChildren(
      table({ caption: `${deliveries.length} deliver${deliveries.length === 1 ? 'y' : 'ies'}, newest event first`, columns: ['Event', 'Created', 'Status', 'Attempts', 'Response', 'Details', ''], rows, empty: status.control.value ? 'No deliveries with this status.' : 'No deliveries yet: events the endpoint subscribes to appear here.' }),
      ...(deliveries.length === limit && limit < 200 ? [more] : []),
    );
  }

  async function redeliver(delivery) {
    error.textContent = '';
    try {
      await ctx.api.post(`${path(hook.id)}/deliveries/${encodeURIComponent(delivery.id)}/redeliver`);
      announce(`Redelivery of ${delivery.eventType} queued.`);
    } catch (err) {
      error.textContent = errorText(err);
    }
    await load();
  }

  status.control.addEventListener('change', () => {
    const value = status.control.value;
    history.replaceState(null, '', `/admin/webhooks/${encodeURIComponent(hook.id)}${value ? `?status=${value}` : ''}`);
    limit = 50;
    load();
  });
  const refresh = button('Refresh', async () => {
    try {
      hook = await ctx.api.get(path(hook.id));
      drawSummary();
    } catch (err) {
      announce(errorText(err), 'error');
    }
    await load();
  });
  drawSummary();
  await load();
  return [
    h('p', {}, link('/admin/webhooks', '← All webhooks')),
    screenHeader(`Delivery log of ${nameOf(hook)}`, 'Each event sent to this endpoint with its attempts, newest event first.', refresh),
    section('Endpoint', summary),
    h('form', { class: 'filters narrow', role: 'search', 'aria-label': 'Filter deliveries', onsubmit: (e) => e.preventDefault() }, status.row),
    error,
    results,
  ];
}

/** The attempt count, with the attempts themselves (newest first) behind a disclosure. */
function attempts(delivery) {
  if (!delivery.log?.length) return String(delivery.attempts);
  return h(
    'details',
    {},
    h('summary', { text: String(delivery.attempts), 'aria-label': `${delivery.attempts} attempt${delivery.attempts === 1 ? '' : 's'}: show them` }),
    h(
      'ol',
      { class: 'attempts' },
      ...delivery.log.map((a) =>
        h('li', { text: `${dateTime(a.attemptedAt, { seconds: true })}: ${a.statusCode === null ? 'no answer' : `HTTP ${a.statusCode}`}, ${a.latencyMs} ms${a.error ? ` — ${a.error}` : ''}` }),
      ),
    ),
  );
}
