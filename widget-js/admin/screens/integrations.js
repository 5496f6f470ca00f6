// Integration accounts (company admins, spec 3): Twilio numbers and WhatsApp Business
// numbers with their status, webhook URL (copy), the provider-console steps after saving,
// add / edit forms (secrets write-only: masked, "Replace"), the connection test with its
// checks, delete with confirmation, and the call chatbot that answers each number.

import { h, field, readForm, showError, formError, button, badge, screenHeader, openDialog, confirmAction, announce, errorText, copyButton, dateTime } from '../ui.js';
import { accountStatus, webhookSteps, relativeTime, changedFields, SECRET_FIELDS } from '../logic.js';

const TYPES = [
  ['twilio', 'Twilio'],
  ['whatsapp', 'WhatsApp Business'],
];
const ICONS = { twilio: '📞', whatsapp: '💬' };
const typeName = (type) => TYPES.find(([id]) => id === type)?.[1] ?? type;

export async function render(ctx) {
  const list = h('div', { class: 'accounts' });
  let accounts = [];
  let bots = [];

  async function load() {
    [accounts, bots] = await Promise.all([ctx.api.get('/api/company/integration-accounts'), ctx.api.get('/api/company/chatbots')]);
    bots = bots.filter((b) => b.chatbotType === 'call');
    if (!ctx.current()) return;
    list.replaceChildren(...(accounts.length ? accounts.map(card) : [h('p', { class: 'empty', text: 'No integration accounts yet. Add a Twilio number or a WhatsApp Business number to take calls from phones.' })]));
  }

  function card(account) {
    const status = accountStatus(account);
    const bot = bots.find((b) => b.id === account.chatbotId);
    const titleId = `account-${account.id}`;
    const facts = [
      ['Type', typeName(account.accountType)],
      ['Phone', account.phoneNumber],
      ['Chatbot', bot ? bot.name : account.chatbotId ? 'a chatbot that is no longer a call chatbot' : 'none: calls to this number are refused'],
      ['Webhook', h('span', { class: 'webhook' }, h('code', { text: account.webhookUrl }), copyButton(() => account.webhookUrl, 'Copy', { describe: 'Webhook URL copied' }))],
    ];
    if (account.verifyToken) facts.push(['Verify token', h('span', { class: 'webhook' }, h('code', { text: account.verifyToken }), copyButton(() => account.verifyToken, 'Copy', { describe: 'Verify token copied' }))]);
    if (account.accountSid) facts.push(['Account SID', account.accountSid]);
    if (account.businessAccountId) facts.push(['Business account ID', account.businessAccountId]);
    if (account.phoneNumberId) facts.push(['Phone number ID', account.phoneNumberId]);
    for (const secret of SECRET_FIELDS[account.accountType] ?? []) {
      if (account[secret]) facts.push([SECRET_LABELS[secret], account[secret]]);
    }
    facts.push(['Last verified', account.lastVerifiedAt ? `${relativeTime(account.lastVerifiedAt)} (${dateTime(account.lastVerifiedAt)})` : 'never']);
    if (account.lastError) facts.push([account.status === 'active' ? 'Note' : 'Last error', account.lastError]);
    return h(
      'article',
      { class: 'card account-card', 'aria-labelledby': titleId, 'data-account': account.id },
      h('header', {}, h('h2', { id: titleId, text: `${ICONS[account.accountType] ?? ''} ${account.name}`.trim() }), badge(status.label, status.tone)),
      account.description ? h('p', { class: 'muted', text: account.description }) : null,
      h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)])),
      h(
        'div',
        { class: 'actions' },
        button('Test connection', () => test(account), '', { 'aria-label': `Test connection of ${account.name}` }),
        button('Edit', () => edit(account), '', { 'aria-label': `Edit ${account.name}` }),
        button('Delete', () => remove(account), 'danger', { 'aria-label': `Delete ${account.name}` }),
      ),
    );
  }

  async function test(account) {
    const content = h('div', {}, h('p', { text: `Testing ${account.name} against ${typeName(account.accountType)}…` }));
    let box;
    box = openDialog({ title: 'Connection Test', content, actions: [button('OK', () => box.close(), 'primary')] });
    try {
      const report = await ctx.api.post(`/api/company/integration-accounts/${account.id}/test`);
      content.replaceChildren(
        h('ul', { class: 'checks' }, ...report.checks.map((c) => h('li', { class: c.passed ? '' : 'failed', text: c.message }))),
        h('p', { class: report.ok ? '' : 'form-error', role: 'status', text: report.ok ? 'Your account is ready to receive calls.' : `The account is inactive: ${report.lastError ?? 'a check failed'}.` }),
      );
    } catch (err) {
      const fix = err.code === 'credentials_unreadable' ? ' Edit the account and enter its secrets again.' : '';
      content.replaceChildren(h('p', { class: 'form-error', role: 'status', text: `${errorText(err)}${fix}` }));
    }
    await load();
  }

  async function remove(account) {
    const ok = await confirmAction({
      title: `Delete ${account.name}?`,
      message: `Calls to ${account.phoneNumber} will no longer reach your chatbot, and its credentials are deleted. Remember to remove the webhook from the ${typeName(account.accountType)} console.`,
    });
    if (!ok) return;
    try {
      await ctx.api.delete(`/api/company/integration-accounts/${account.id}`);
      announce(`${account.name} deleted.`);
      await load();
    } catch (err) {
      announce(errorText(err), 'error');
    }
  }

  /** The add / edit form; `account` is null for a new one. */
  function edit(account) {
    const type = account?.accountType ?? 'twilio';
    const unreadable = account?.status === 'credentials_unreadable';
    const botOptions = [['', 'None (calls are refused)'], ...bots.map((b) => [b.id, b.name])];
    const common = [
      field({ label: 'Account Type', name: 'accountType', kind: 'select', options: TYPES, value: type, attrs: { disabled: Boolean(account) } }),
      field({ label: 'Account Name', name: 'name', value: account?.name ?? '', attrs: { maxlength: 200, autocomplete: 'off' } }),
    ];
    const secret = (name, label, hint) => secretField(account, name, label, hint, unreadable);
    // A saved account keeps its type: only its own fields are offered.
    const offered = (kind) => !account || kind === type;
    const twilio = offered('twilio') && h(
      'div',
      { 'data-type-fields': 'twilio' },
      field({ label: 'Twilio Account SID', name: 'accountSid', value: account?.accountSid ?? '', hint: 'AC followed by 32 hexadecimal digits (Twilio console → Account info).', attrs: { spellcheck: 'false', autocomplete: 'off' } }).row,
      secret('authToken', 'Twilio Auth Token', 'From the Twilio console; stored encrypted and never shown again.'),
    );
    const whatsapp = offered('whatsapp') && h(
      'div',
      { 'data-type-fields': 'whatsapp' },
      field({ label: 'Business Account ID', name: 'businessAccountId', value: account?.businessAccountId ?? '', attrs: { inputmode: 'numeric', autocomplete: 'off' } }).row,
      field({ label: 'Phone Number ID', name: 'phoneNumberId', value: account?.phoneNumberId ?? '', attrs: { inputmode: 'numeric', autocomplete: 'off' } }).row,
      secret('accessToken', 'Access Token', 'A system-user access token with the whatsapp_business_messaging permission; stored encrypted.'),
      secret('appSecret', 'App Secret', 'Your Meta app’s secret (App settings → Basic): webhooks are checked with it; stored encrypted.'),
    );
    const rest = [
      field({ label: 'Phone Number', name: 'phoneNumber', kind: 'tel', value: account?.phoneNumber ?? '', hint: 'E.164, like +15551234567 (spaces and dashes are fine).', attrs: { autocomplete: 'off' } }),
      field({ label: 'Description (optional)', name: 'description', value: account?.description ?? '', attrs: { maxlength: 1000 } }),
      field({ label: 'Chatbot answering calls', name: 'chatbotId', kind: 'select', options: botOptions, value: account?.chatbotId ?? '', hint: bots.length ? 'A call chatbot of this company.' : 'No call chatbots yet: create one under Chatbots.' }),
    ];
    const error = formError();
    const form = h(
      'form',
      { novalidate: true },
      unreadable ? h('p', { class: 'form-error', text: `${account.lastError} Enter every secret again to repair the account.` }) : null,
      ...common.map((f) => f.row),
      twilio || null,
      whatsapp || null,
      ...rest.map((f) => f.row),
      error,
    );
    const showTypeFields = () => {
      const chosen = form.querySelector('[name=accountType]').value;
      if (twilio) twilio.hidden = chosen !== 'twilio';
      if (whatsapp) whatsapp.hidden = chosen !== 'whatsapp';
    };
    form.querySelector('[name=accountType]').addEventListener('change', showTypeFields);
    showTypeFields();

    const original = account ? { name: account.name, description: account.description, phoneNumber: account.phoneNumber, chatbotId: account.chatbotId ?? null, accountSid: account.accountSid, businessAccountId: account.businessAccountId, phoneNumberId: account.phoneNumberId } : null;
    let box;
    const save = h('button', { type: 'button', class: 'btn primary', text: account ? 'Save changes' : 'Save' });
    save.addEventListener('click', async () => {
      const values = readForm(form);
      values.chatbotId = values.chatbotId || null;
      try {
        if (account) {
          const patch = changedFields(original, values);
          if (!Object.keys(patch).length) return box.close();
          await ctx.api.patch(`/api/company/integration-accounts/${account.id}`, patch);
          box.close('saved');
          announce(`${values.name} saved.${Object.keys(patch).some((k) => k !== 'name' && k !== 'description' && k !== 'chatbotId') ? ' Test the connection again to activate it.' : ''}`);
          await load();
        } else {
          if (!values.description) delete values.description;
          const created = await ctx.api.post('/api/company/integration-accounts', values);
          box.close('saved');
          await load();
          afterSaving(created);
        }
      } catch (err) {
        showError(form, err);
      }
    });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      save.click();
    });
    box = openDialog({ title: account ? `Edit ${account.name}` : 'Add Integration Account', content: form, actions: [button('Cancel', () => box.close()), save], wide: true });
    form.querySelector('input:not([disabled]), select:not([disabled])')?.focus();
  }

  /** Spec 3 "After Saving": the webhook URL to copy and what to do in the provider's console. */
  function afterSaving(account) {
    const content = h(
      'div',
      {},
      h('p', { text: 'Your webhook URL:' }),
      h('p', { class: 'webhook' }, h('code', { id: 'new-webhook-url', text: account.webhookUrl }), copyButton(() => account.webhookUrl, 'Copy', { describe: 'Webhook URL copied' })),
      account.verifyToken ? h('p', { class: 'webhook' }, 'Verify token: ', h('code', { text: account.verifyToken }), copyButton(() => account.verifyToken, 'Copy', { describe: 'Verify token copied' })) : null,
      h('h3', { text: 'Next Steps:' }),
      h('ol', {}, ...webhookSteps(account).map((step) => h('li', { text: step }))),
      h('p', { class: 'hint', text: 'The account stays inactive until a connection test passes.' }),
    );
    let box;
    box = openDialog({
      title: '✅ Integration Account Created',
      content,
      actions: [
        button('Test connection', () => {
          box.close();
          test(account);
        }),
        button('Done', () => box.close(), 'primary'),
      ],
      wide: true,
    });
  }

  await load();
  return [screenHeader('Integration Accounts', 'Twilio and WhatsApp Business numbers that bring phone calls to your call chatbots.', button('+ Add Account', () => edit(null), 'primary')), list];
}

const SECRET_LABELS = { authToken: 'Auth token', accessToken: 'Access token', appSecret: 'App secret' };

/**
 * A write-only secret: a new account types it; a saved one shows its mask and a Replace
 * button that opens an empty box (an unreadable one asks for it at once).
 */
function secretField(account, name, label, hint, unreadable) {
  const f = field({ label, name, kind: 'password', hint, attrs: { autocomplete: 'new-password', spellcheck: 'false' } });
  if (!account || unreadable) return f.row;
  const mask = account[name] ?? '••••';
  f.control.disabled = true;
  f.control.hidden = true;
  const shown = h('span', { class: 'muted', text: `${mask} (saved) ` });
  const replace = button('Replace', () => {
    shown.remove();
    replace.remove();
    f.control.disabled = false;
    f.control.hidden = false;
    f.control.focus();
  }, 'small', { 'aria-label': `Replace ${label}` });
  f.control.before(h('div', { class: 'secret' }, shown, replace));
  return f.row;
}
