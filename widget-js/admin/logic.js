// The console's decisions, without the DOM: which screens a person sees, what a URL
// means, what the call history asks the API, what the widget preview is fed, a call's
// timeline, what a form changed. Pure functions, unit-tested in Node
// (test/console-units.test.mjs); the screens do the I/O.

const ADMINS = ['master_admin', 'company_admin'];

/**
 * Every screen of the console, in navigation order. `scope: 'company'` screens act on the
 * active company; `calls: true` ones only appear when the company has voice calls
 * (spec 1: "when disabled, call features are hidden from the company dashboard").
 * Entries with `module: null` are screens other issues bring: they appear once their
 * module exists; screens with `api` also need the API to document that route
 * (GET /api/openapi.json).
 */
export const SCREENS = [
  { id: 'companies', label: 'Companies', roles: ['master_admin'], scope: 'platform', module: 'companies' },
  { id: 'ai-models', label: 'AI models', roles: ['master_admin'], scope: 'platform', module: 'models' },
  { id: 'chatbots', label: 'Chatbots', roles: ADMINS, scope: 'company', module: 'chatbots' },
  { id: 'integrations', label: 'Integration accounts', roles: ADMINS, scope: 'company', calls: true, module: 'integrations' },
  { id: 'calls', label: 'Calls', roles: ADMINS, scope: 'company', module: 'calls' },
  { id: 'knowledge', label: 'Knowledge base', roles: ADMINS, scope: 'company', module: 'knowledge' },
  { id: 'test-call', label: 'Test Call', roles: ADMINS, scope: 'company', calls: true, module: 'test-call' },
  { id: 'tickets', label: 'Tickets', roles: [...ADMINS, 'support_agent'], scope: 'company', module: 'tickets', api: '/api/company/tickets' },
  { id: 'webhooks', label: 'Webhooks', roles: ADMINS, scope: 'company', module: 'webhooks', api: '/api/company/webhooks' },
  { id: 'notices', label: 'Notices', roles: ADMINS, scope: 'company', module: 'notices', api: '/api/company/notices' },
];

/**
 * The screens `role` may open. Company screens need an active company; call screens a
 * company with calls enabled; screens tied to an API route need that route documented.
 * @param {string} role
 * @param {{callEnabled: boolean}|null} company the active company
 * @param {Set<string>} [apiPaths] the paths of the API's OpenAPI document
 */
export function navFor(role, company, apiPaths = new Set()) {
  return SCREENS.filter(
    (s) =>
      s.module &&
      s.roles.includes(role) &&
      (s.scope !== 'company' || company) &&
      (!s.calls || company?.callEnabled) &&
      (!s.api || apiPaths.has(s.api)),
  );
}

/** Where a person lands: their first screen, or the welcome page when they have none. */
export function homePath(nav) {
  return nav.length ? `/admin/${nav[0].id}` : '/admin/welcome';
}

export const CHATBOT_TABS = ['general', 'call-options', 'widget'];

/**
 * What a console URL names: `{screen, id?, tab?}`. `screen` is null for `/admin` itself
 * (go home) and `'not-found'` for anything else unknown.
 */
export function parseRoute(pathname) {
  const parts = pathname.replace(/^\/admin\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (!parts.length) return { screen: null };
  const [screen, id, tab, ...rest] = parts;
  if (rest.length) return { screen: 'not-found' };
  if (screen === 'welcome' && !id) return { screen };
  if (!SCREENS.some((s) => s.id === screen)) return { screen: 'not-found' };
  if (screen === 'chatbots' && id) {
    if (tab !== undefined && !CHATBOT_TABS.includes(tab)) return { screen: 'not-found' };
    return { screen, id, tab: tab ?? 'general' };
  }
  if ((screen === 'calls' || screen === 'webhooks') && id && tab === undefined) return { screen, id };
  if (id !== undefined) return { screen: 'not-found' };
  return { screen };
}

/** The instant a local calendar day (`YYYY-MM-DD`, from a date input) starts, as ISO text. */
export function dayStart(date, plusDays = 0) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date ?? '');
  if (!m) return null;
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + plusDays).toISOString();
}

export const CALL_SOURCES = [
  ['web', 'Website'],
  ['twilio', 'Phone (Twilio)'],
  ['whatsapp', 'WhatsApp'],
];
export const CALL_STATUSES = ['pending', 'connecting', 'active', 'completed', 'failed'];

/**
 * The query of `GET /api/company/calls` for the history's filters (form values): the
 * date range covers whole local days, `to` included.
 */
export function callsQuery({ chatbot = '', source = '', status = '', from = '', to = '', limit = 50 } = {}) {
  const query = new URLSearchParams();
  query.set('limit', String(limit));
  if (chatbot) query.set('chatbotId', chatbot);
  if (source) query.set('source', source);
  if (status) query.set('status', status);
  const start = dayStart(from);
  const end = dayStart(to, 1);
  if (start) query.set('from', start);
  if (end) query.set('to', end);
  return query.toString();
}

/** The filters a history URL (`/admin/calls?source=web…`) carries. */
export function callFilters(search) {
  const query = new URLSearchParams(search);
  const pick = (name) => query.get(name) ?? '';
  return { chatbot: pick('chatbot'), source: pick('source'), status: pick('status'), from: pick('from'), to: pick('to') };
}

/**
 * The widget configuration the live preview renders: the chatbot's public configuration
 * (`GET /api/widget/chatbots/{id}`, which says whether calls are available and which
 * microphone processing applies) with the form's unsaved widget settings on top.
 */
export function previewConfig(publicConfig, settings) {
  const chat = {
    position: settings.position,
    primaryColor: settings.primaryColor,
    welcomeMessage: settings.welcomeMessage,
    chatButtonIcon: settings.chatButtonIcon,
  };
  const call = publicConfig.call && {
    ...publicConfig.call,
    buttonIcon: settings.callButtonIcon,
    buttonText: settings.callButtonText,
    buttonColor: settings.callButtonColor,
    visualizerStyle: settings.visualizerStyle,
    showCallDuration: settings.showCallDuration,
    showLiveTranscript: settings.showLiveTranscript,
    welcomeMessage: settings.callWelcomeMessage,
  };
  return { ...publicConfig, title: settings.title, chat, call };
}

/** The fields of `current` whose values differ from `original` (a PATCH body). */
export function changedFields(original, current) {
  const patch = {};
  for (const [key, value] of Object.entries(current)) {
    if (JSON.stringify(value) !== JSON.stringify(original?.[key])) patch[key] = value;
  }
  return patch;
}

const END_REASONS = {
  caller_hangup: 'the caller hung up',
  agent_hangup: 'an agent hung up',
  network_lost: "the caller's connection was lost",
  provider_error: 'the AI provider failed',
  silence_timeout: 'the caller stayed silent',
  max_duration: 'the maximum duration was reached',
  end_phrase: 'the end-call phrase was said',
  expired: 'the caller never connected',
  shutdown: 'the gateway shut down',
  transferred: 'handed over to a human agent',
  error: 'an internal error',
};

/** An end reason in words (`silence_timeout` → "the caller stayed silent"). */
export function endReasonText(reason) {
  return reason ? (END_REASONS[reason] ?? reason.replaceAll('_', ' ')) : '';
}

/**
 * The states a call went through, in order, as `{at, label, detail}` (`at`: ISO text or
 * null when the API does not time that step).
 */
export function timeline(call) {
  const steps = [{ at: call.createdAt, label: 'Call created', detail: call.isTest ? 'a test call from the console' : `from ${sourceLabel(call.source)}` }];
  if (call.answeredAt) steps.push({ at: call.answeredAt, label: 'Answered', detail: 'audio flowing both ways' });
  if (call.endedAt) {
    const outcome = call.status === 'failed' ? 'Failed' : 'Ended';
    steps.push({ at: call.endedAt, label: outcome, detail: endReasonText(call.endReason) });
  } else if (call.status === 'pending' || call.status === 'connecting' || call.status === 'active') {
    steps.push({ at: null, label: 'In progress', detail: `status ${call.status}` });
  }
  if (call.rating) steps.push({ at: null, label: `Rated ${call.rating}/5`, detail: call.ratingComment ?? '' });
  return steps;
}

export function sourceLabel(source) {
  return CALL_SOURCES.find(([id]) => id === source)?.[1] ?? source;
}

/** `offsetMs` of a transcript line as `m:ss` (or `h:mm:ss`). */
export function offsetClock(ms) {
  const s = Math.max(0, Math.round((ms ?? 0) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export const MODEL_TYPES = [
  ['chat', 'Chat Only'],
  ['call', 'Call Only'],
  ['both', 'Both Chat and Call'],
];

/** The badge of a model type: `Chat`, `Call` or `Both`. */
export function modelTypeBadge(type) {
  return { chat: 'Chat', call: 'Call', both: 'Both' }[type] ?? type;
}

/** What an integration account's status looks like: `{label, tone}`. */
export function accountStatus(account) {
  switch (account.status) {
    case 'active':
      return { label: 'Active', tone: 'ok' };
    case 'credentials_unreadable':
      return { label: 'Credentials unreadable', tone: 'bad' };
    default:
      return { label: 'Inactive', tone: 'warn' };
  }
}

/** The secret fields of an account type, write-only in the forms. */
export const SECRET_FIELDS = { twilio: ['authToken'], whatsapp: ['accessToken', 'appSecret'] };

/**
 * What to do in the provider's console once an account is saved (spec 3, "After Saving").
 */
export function webhookSteps(account) {
  if (account.accountType === 'whatsapp') {
    return [
      'Copy the webhook URL and the verify token above.',
      'In the Meta App Dashboard, open your app, then WhatsApp → Configuration.',
      'Under "Webhook", choose Edit: paste the webhook URL as the Callback URL and the verify token as the Verify token, then Verify and save.',
      'Under "Webhook fields", subscribe to the calls field.',
      `Turn calling on for ${account.phoneNumber} (WhatsApp Manager → Phone numbers → Settings → Calling).`,
      "Check that the app secret you entered is this app's (App settings → Basic): the gateway checks every webhook's signature with it.",
    ];
  }
  return [
    'Copy the webhook URL above.',
    'Go to your Twilio console.',
    'Navigate to Phone Numbers.',
    `Select your phone number (${account.phoneNumber}).`,
    'Under "Voice & Fax", paste the webhook URL in "A CALL COMES IN".',
    'Set HTTP method to POST.',
    'Save the configuration.',
  ];
}

/** "3 minutes ago", "in 2 hours", "just now", relative to `now` (ms). */
export function relativeTime(iso, now = Date.now()) {
  if (!iso) return '';
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return 'just now';
  const units = [
    ['year', 31536000],
    ['month', 2592000],
    ['day', 86400],
    ['hour', 3600],
    ['minute', 60],
  ];
  const [unit, size] = units.find(([, size]) => abs >= size) ?? units.at(-1);
  const n = Math.max(1, Math.round(abs / size));
  const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
  return seconds < 0 ? `${text} ago` : `in ${text}`;
}

/** A document's content type from its file name (`.md` and `.markdown` are markdown). */
export function contentTypeFor(fileName) {
  return /\.(md|markdown)$/i.test(fileName) ? 'text/markdown' : 'text/plain';
}

/** A document title from a file name: the name without its extension. */
export function titleFromFile(fileName) {
  return fileName.replace(/\.[^.]+$/, '').trim() || fileName;
}

/**
 * The event types a webhook endpoint can subscribe to (docs/webhooks.md, "Events"), with
 * when each is sent.
 */
export const WEBHOOK_EVENTS = [
  ['call.started', 'a call becomes active'],
  ['call.ended', 'a call ends and completed, with its transcript'],
  ['call.failed', 'a call ends and failed, with the error'],
  ['call.escalated', 'a call is handed to a human agent'],
  ['ticket.created', 'a support ticket is created'],
  ['integration.failed', 'an integration account or the voice provider keeps failing'],
];

/**
 * What a webhook endpoint's state looks like: `{label, tone, detail}`. Disabled endpoints
 * (by an admin, or after failing for their whole retry window) carry the API's reason;
 * enabled ones whose deliveries fail (`failingSince`) are Failing.
 */
export function webhookStatus(endpoint) {
  if (!endpoint.enabled) return { label: 'Disabled', tone: 'bad', detail: endpoint.disabledReason ?? '' };
  if (endpoint.failingSince) return { label: 'Failing', tone: 'warn', detail: '' };
  return { label: 'Active', tone: 'ok', detail: '' };
}

/** A delivery's status as a badge: `{label, tone}`. */
export function deliveryStatus(delivery) {
  switch (delivery.status) {
    case 'delivered':
      return { label: 'Delivered', tone: 'ok' };
    case 'failed':
      return { label: 'Failed', tone: 'bad' };
    default:
      return { label: delivery.attempts ? 'Retrying' : 'Pending', tone: delivery.attempts ? 'warn' : 'info' };
  }
}

/** The receiver's answer to a delivery's last attempt, in a few words. */
export function deliveryResponse(delivery) {
  if (!delivery.attempts) return 'not sent yet';
  if (delivery.lastStatusCode !== null && delivery.lastStatusCode !== undefined) return `HTTP ${delivery.lastStatusCode}`;
  return 'no answer';
}

/** A webhook's fields an API error names (`events.2`) → the form row that shows it (`events`). */
export function webhookField(field) {
  return field && /^events\.\d+$/.test(field) ? 'events' : field;
}

const NOTICE_KINDS = {
  integration_failed: 'Integration account failing',
  provider_failures: 'Voice provider failures',
  webhook_disabled: 'Webhook endpoint disabled',
};
const SEVERITY_TONES = { critical: 'bad', warning: 'warn', info: 'info' };
const NOTICE_STATUS_TONES = { open: 'bad', resolved: 'ok', dismissed: '' };

/**
 * How a notice reads: its title, severity and status badges (`{text, tone}`), and where
 * to go about it (`{href, text}`, null when nothing to open). `screens` are the ids of the
 * screens the person may open (a company without calls has no Integration accounts).
 */
export function noticeView(notice, screens = []) {
  const title = NOTICE_KINDS[notice.kind] ?? notice.kind.replaceAll('_', ' ');
  const severity = { text: capitalize(notice.severity), tone: SEVERITY_TONES[notice.severity] ?? '' };
  const status = { text: capitalize(notice.status), tone: NOTICE_STATUS_TONES[notice.status] ?? '' };
  let action = null;
  if (notice.kind === 'integration_failed' && screens.includes('integrations')) action = { href: '/admin/integrations', text: 'Open Integration accounts' };
  else if (notice.kind === 'webhook_disabled' && screens.includes('webhooks')) action = { href: `/admin/webhooks/${encodeURIComponent(notice.subject)}`, text: 'Open its delivery log' };
  else if (notice.kind === 'provider_failures' && screens.includes('calls')) action = { href: '/admin/calls?status=failed', text: 'See the failed calls' };
  return { title, severity, status, action };
}

const capitalize = (text) => (text ? text.charAt(0).toUpperCase() + text.slice(1) : '');

export const TICKET_FILTERS = [
  ['open', 'Open'],
  ['closed', 'Closed'],
  ['all', 'All'],
];

/** The ticket filter a URL carries (`?status=open|closed|all`; open when absent or unknown). */
export function ticketFilter(search) {
  const status = new URLSearchParams(search).get('status');
  return TICKET_FILTERS.some(([id]) => id === status) ? status : 'open';
}

/** The query of `GET /api/company/tickets` for a filter (`all` asks without a status). */
export function ticketsQuery(filter, limit = 200) {
  const query = new URLSearchParams();
  if (filter === 'open' || filter === 'closed') query.set('status', filter);
  query.set('limit', String(limit));
  return query.toString();
}

/** A ticket's status badge and the change its button makes: `{label, tone, action, next}`. */
export function ticketView(ticket) {
  return ticket.status === 'closed'
    ? { label: 'Closed', tone: '', action: 'Reopen', next: 'open' }
    : { label: 'Open', tone: 'warn', action: 'Close', next: 'closed' };
}
