// The admin console's pure decisions, in Node (no browser): which screens each role sees,
// what URLs mean, the call history's query, the widget preview's configuration, a call's
// timeline, form diffs, the provider-console steps, and the console's size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { WIDGET_DIR, REPO } from './harness.mjs';
import {
  ticketFilter,
  ticketsQuery,
  ticketView,
  navFor,
  homePath,
  parseRoute,
  callsQuery,
  callFilters,
  dayStart,
  previewConfig,
  changedFields,
  timeline,
  webhookSteps,
  accountStatus,
  relativeTime,
  offsetClock,
  contentTypeFor,
  titleFromFile,
  endReasonText,
  webhookStatus,
  deliveryStatus,
  deliveryResponse,
  webhookField,
  noticeView,
  WEBHOOK_EVENTS,
  SCREENS,
} from '../admin/logic.js';

const ids = (nav) => nav.map((s) => s.id);
const calls = { id: 'c1', name: 'Acme', callEnabled: true };
const noCalls = { id: 'c2', name: 'Quiet', callEnabled: false };

test('master admins see the platform screens and the company screens of the company they pick', () => {
  assert.deepEqual(ids(navFor('master_admin', calls)), ['companies', 'ai-models', 'chatbots', 'integrations', 'calls', 'knowledge', 'test-call']);
  assert.deepEqual(ids(navFor('master_admin', null)), ['companies', 'ai-models'], 'no company: platform screens only');
});

test('company admins never see Companies or AI models, and call screens only with calls enabled', () => {
  assert.deepEqual(ids(navFor('company_admin', calls)), ['chatbots', 'integrations', 'calls', 'knowledge', 'test-call']);
  assert.deepEqual(ids(navFor('company_admin', noCalls)), ['chatbots', 'calls', 'knowledge']);
});

test('support agents see no configuration screen and land on the welcome page', () => {
  const nav = navFor('support_agent', calls);
  assert.deepEqual(ids(nav), []);
  assert.equal(homePath(nav), '/admin/welcome');
  assert.equal(homePath(navFor('company_admin', calls)), '/admin/chatbots');
});

test('Tickets is for admins and agents of the company, once the API documents the inbox', () => {
  assert.deepEqual(SCREENS.filter((s) => !s.module).map((s) => s.id), [], 'every planned screen has its module');
  const documented = new Set(['/api/company/tickets']);
  assert.ok(!ids(navFor('company_admin', calls)).includes('tickets'), 'not while the API does not document it');
  assert.ok(ids(navFor('company_admin', calls, documented)).includes('tickets'));
  assert.ok(ids(navFor('company_admin', { callEnabled: false }, documented)).includes('tickets'), 'with or without voice calls');
  assert.deepEqual(ids(navFor('support_agent', calls, documented)), ['tickets'], 'the only screen a support agent has');
  assert.equal(homePath(navFor('support_agent', calls, documented)), '/admin/tickets');
  assert.ok(!ids(navFor('support_agent', null, documented)).includes('tickets'), 'no company, no inbox');
  assert.deepEqual(parseRoute('/admin/tickets'), { screen: 'tickets' });
});

test('the ticket filter lives in the URL and asks the inbox for open, closed or every ticket', () => {
  assert.equal(ticketFilter(''), 'open');
  assert.equal(ticketFilter('?status=closed'), 'closed');
  assert.equal(ticketFilter('?status=all'), 'all');
  assert.equal(ticketFilter('?status=bogus'), 'open');
  assert.equal(ticketsQuery('open'), 'status=open&limit=200');
  assert.equal(ticketsQuery('closed', 50), 'status=closed&limit=50');
  assert.equal(ticketsQuery('all'), 'limit=200');
  assert.deepEqual(ticketView({ status: 'open' }), { label: 'Open', tone: 'warn', action: 'Close', next: 'closed' });
  assert.deepEqual(ticketView({ status: 'closed' }), { label: 'Closed', tone: '', action: 'Reopen', next: 'open' });
});

test('Webhooks and Notices are for admins of the active company, with or without voice calls', () => {
  const documented = new Set(['/api/company/webhooks', '/api/company/notices']);
  assert.deepEqual(ids(navFor('company_admin', calls, documented)), ['chatbots', 'integrations', 'calls', 'knowledge', 'test-call', 'webhooks', 'notices']);
  assert.deepEqual(ids(navFor('company_admin', noCalls, documented)), ['chatbots', 'calls', 'knowledge', 'webhooks', 'notices']);
  assert.deepEqual(ids(navFor('master_admin', calls, documented)).slice(-2), ['webhooks', 'notices'], 'for the company the master admin picked');
  assert.deepEqual(ids(navFor('master_admin', null, documented)), ['companies', 'ai-models'], 'no company picked: neither');
  assert.deepEqual(ids(navFor('support_agent', calls, documented)), [], 'support agents see neither');
});

test('console URLs name a screen, an item and a tab; anything else is not found', () => {
  assert.deepEqual(parseRoute('/admin'), { screen: null });
  assert.deepEqual(parseRoute('/admin/'), { screen: null });
  assert.deepEqual(parseRoute('/admin/calls'), { screen: 'calls' });
  assert.deepEqual(parseRoute('/admin/calls/abc'), { screen: 'calls', id: 'abc' });
  assert.deepEqual(parseRoute('/admin/chatbots/b1'), { screen: 'chatbots', id: 'b1', tab: 'general' });
  assert.deepEqual(parseRoute('/admin/chatbots/b1/call-options'), { screen: 'chatbots', id: 'b1', tab: 'call-options' });
  assert.deepEqual(parseRoute('/admin/chatbots/b1/widget'), { screen: 'chatbots', id: 'b1', tab: 'widget' });
  assert.deepEqual(parseRoute('/admin/welcome'), { screen: 'welcome' });
  assert.deepEqual(parseRoute('/admin/webhooks'), { screen: 'webhooks' });
  assert.deepEqual(parseRoute('/admin/webhooks/w1'), { screen: 'webhooks', id: 'w1' }, "an endpoint's delivery log");
  assert.deepEqual(parseRoute('/admin/notices'), { screen: 'notices' });
  for (const path of ['/admin/nope', '/admin/chatbots/b1/nope', '/admin/companies/x', '/admin/calls/a/b', '/admin/chatbots/b1/widget/x', '/admin/webhooks/w1/x', '/admin/notices/n1']) {
    assert.deepEqual(parseRoute(path), { screen: 'not-found' }, path);
  }
});

test('the call history asks for whole local days, the last one included', () => {
  const query = new URLSearchParams(callsQuery({ chatbot: 'b1', source: 'web', status: 'completed', from: '2026-11-25', to: '2026-11-26', limit: 100 }));
  assert.equal(query.get('chatbotId'), 'b1');
  assert.equal(query.get('source'), 'web');
  assert.equal(query.get('status'), 'completed');
  assert.equal(query.get('limit'), '100');
  assert.equal(query.get('from'), new Date(2026, 10, 25).toISOString());
  assert.equal(query.get('to'), new Date(2026, 10, 27).toISOString(), 'to the end of the 26th');
  assert.equal(callsQuery({}), 'limit=50', 'no filters: the latest calls');
  assert.equal(dayStart('25/11/2026'), null, 'only date-input values');
  assert.equal(dayStart('2026-12-31', 1), new Date(2027, 0, 1).toISOString(), 'across a year');
  assert.deepEqual(callFilters('?source=twilio&from=2026-11-01&x=1'), { chatbot: '', source: 'twilio', status: '', from: '2026-11-01', to: '' });
});

test('the preview shows the unsaved settings on top of the public configuration', () => {
  const publicConfig = {
    chatbotId: 'b1',
    chatbotType: 'call',
    title: 'Support',
    chat: { position: 'bottom-right', primaryColor: '#2563eb', welcomeMessage: 'Hi', chatButtonIcon: '💬' },
    call: {
      available: true,
      unavailableReason: null,
      buttonIcon: '📞',
      buttonText: 'Call Us',
      buttonColor: '#10b981',
      visualizerStyle: 'orb',
      showCallDuration: true,
      showLiveTranscript: true,
      welcomeMessage: 'Press the call button',
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      provider: 'openai',
      echoMode: false,
    },
  };
  const settings = {
    position: 'bottom-left',
    primaryColor: '#111111',
    title: 'Help desk',
    welcomeMessage: 'Hello',
    chatButtonIcon: '🗨',
    allowedOrigins: [],
    callButtonIcon: '☎',
    callButtonText: 'Talk to us',
    callButtonColor: '#ff0000',
    visualizerStyle: 'wave',
    showCallDuration: false,
    showLiveTranscript: false,
    callWelcomeMessage: 'Tap to talk',
  };
  const config = previewConfig(publicConfig, settings);
  assert.equal(config.title, 'Help desk');
  assert.deepEqual(config.chat, { position: 'bottom-left', primaryColor: '#111111', welcomeMessage: 'Hello', chatButtonIcon: '🗨' });
  assert.equal(config.call.buttonColor, '#ff0000');
  assert.equal(config.call.buttonText, 'Talk to us');
  assert.equal(config.call.buttonIcon, '☎');
  assert.equal(config.call.visualizerStyle, 'wave');
  assert.equal(config.call.showCallDuration, false);
  assert.equal(config.call.welcomeMessage, 'Tap to talk');
  assert.equal(config.call.available, true, 'availability and audio come from the gateway');
  assert.deepEqual(config.call.audio, publicConfig.call.audio);
  assert.equal(publicConfig.call.buttonColor, '#10b981', 'the public configuration is not changed');
  assert.equal(previewConfig({ ...publicConfig, chatbotType: 'chat', call: null }, settings).call, null, 'chat chatbots have no call button');
});

test('forms send only what changed', () => {
  assert.deepEqual(changedFields({ a: 1, b: 'x', c: ['o'] }, { a: 1, b: 'y', c: ['o'] }), { b: 'y' });
  assert.deepEqual(changedFields({ c: ['o'] }, { c: ['o', 'p'] }), { c: ['o', 'p'] });
  assert.deepEqual(changedFields({ chatbotId: null }, { chatbotId: null }), {});
  assert.deepEqual(changedFields({}, { added: false }), { added: false });
});

test("a call's timeline follows its states with the end reason in words", () => {
  const ended = timeline({
    source: 'web',
    isTest: false,
    status: 'completed',
    createdAt: '2026-11-25T10:00:00.000Z',
    answeredAt: '2026-11-25T10:00:02.000Z',
    endedAt: '2026-11-25T10:03:00.000Z',
    endReason: 'silence_timeout',
    rating: 4,
    ratingComment: 'nice',
  });
  assert.deepEqual(
    ended.map((s) => [s.label, s.at, s.detail]),
    [
      ['Call created', '2026-11-25T10:00:00.000Z', 'from Website'],
      ['Answered', '2026-11-25T10:00:02.000Z', 'audio flowing both ways'],
      ['Ended', '2026-11-25T10:03:00.000Z', 'the caller stayed silent'],
      ['Rated 4/5', null, 'nice'],
    ],
  );
  const failed = timeline({ source: 'twilio', isTest: false, status: 'failed', createdAt: 't0', answeredAt: null, endedAt: 't1', endReason: 'provider_error' });
  assert.deepEqual(failed.map((s) => s.label), ['Call created', 'Failed']);
  assert.equal(failed[0].detail, 'from Phone (Twilio)');
  const live = timeline({ source: 'whatsapp', isTest: true, status: 'active', createdAt: 't0', answeredAt: 't1', endedAt: null });
  assert.deepEqual(live.map((s) => s.label), ['Call created', 'Answered', 'In progress']);
  assert.equal(live[0].detail, 'a test call from the console');
  assert.equal(endReasonText('something_new'), 'something new', 'unknown reasons still read');
});

test('after saving, Twilio and WhatsApp accounts get their provider-console steps', () => {
  const twilio = webhookSteps({ accountType: 'twilio', phoneNumber: '+15551234567' });
  assert.equal(twilio.length, 7);
  assert.match(twilio[3], /\+15551234567/);
  assert.match(twilio[4], /A CALL COMES IN/);
  assert.match(twilio[5], /POST/);
  const whatsapp = webhookSteps({ accountType: 'whatsapp', phoneNumber: '+15559876543' });
  assert.ok(whatsapp.some((s) => /verify token/i.test(s)));
  assert.ok(whatsapp.some((s) => /calls field/.test(s)));
});

test('account statuses read as badges', () => {
  assert.deepEqual(accountStatus({ status: 'active' }), { label: 'Active', tone: 'ok' });
  assert.deepEqual(accountStatus({ status: 'inactive' }), { label: 'Inactive', tone: 'warn' });
  assert.deepEqual(accountStatus({ status: 'credentials_unreadable' }), { label: 'Credentials unreadable', tone: 'bad' });
});

test('the event checkboxes are the event types docs/webhooks.md documents', async () => {
  const doc = await readFile(join(REPO, 'docs', 'webhooks.md'), 'utf8');
  const table = doc.slice(doc.indexOf('| type | when | `data` |'), doc.indexOf('Every call that reaches its end'));
  const documented = [...table.matchAll(/^\| `([a-z]+\.[a-z]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual(WEBHOOK_EVENTS.map(([type]) => type), documented);
});

test('webhook endpoints read as Active, Failing or Disabled with the reason', () => {
  assert.deepEqual(webhookStatus({ enabled: true, failingSince: null }), { label: 'Active', tone: 'ok', detail: '' });
  assert.deepEqual(webhookStatus({ enabled: true, failingSince: '2026-11-25T10:00:00.000Z' }).label, 'Failing');
  const disabled = webhookStatus({ enabled: false, disabledReason: 'failed for 24 hours; last error: HTTP 503', failingSince: 'x' });
  assert.deepEqual(disabled, { label: 'Disabled', tone: 'bad', detail: 'failed for 24 hours; last error: HTTP 503' });
  assert.equal(webhookStatus({ enabled: false, disabledReason: null }).detail, '');
  assert.equal(webhookField('events.2'), 'events', 'an entry of the list shows on the checkbox group');
  assert.equal(webhookField('url'), 'url');
  assert.equal(webhookField(undefined), undefined);
});

test('deliveries read with their status and the receiver’s last answer', () => {
  assert.deepEqual(deliveryStatus({ status: 'delivered', attempts: 1 }), { label: 'Delivered', tone: 'ok' });
  assert.deepEqual(deliveryStatus({ status: 'failed', attempts: 9 }), { label: 'Failed', tone: 'bad' });
  assert.deepEqual(deliveryStatus({ status: 'pending', attempts: 0 }), { label: 'Pending', tone: 'info' });
  assert.deepEqual(deliveryStatus({ status: 'pending', attempts: 2 }), { label: 'Retrying', tone: 'warn' });
  assert.equal(deliveryResponse({ attempts: 0, lastStatusCode: null }), 'not sent yet');
  assert.equal(deliveryResponse({ attempts: 2, lastStatusCode: 503 }), 'HTTP 503');
  assert.equal(deliveryResponse({ attempts: 1, lastStatusCode: null }), 'no answer');
});

test('notices read with their kind, badges and where to fix them, among the screens one may open', () => {
  const notice = (kind, extra = {}) => ({ kind, severity: 'critical', status: 'open', subject: 's 1', ...extra });
  const all = ['integrations', 'calls', 'webhooks', 'notices'];
  const failing = noticeView(notice('integration_failed'), all);
  assert.equal(failing.title, 'Integration account failing');
  assert.deepEqual(failing.severity, { text: 'Critical', tone: 'bad' });
  assert.deepEqual(failing.status, { text: 'Open', tone: 'bad' });
  assert.deepEqual(failing.action, { href: '/admin/integrations', text: 'Open Integration accounts' });
  assert.equal(noticeView(notice('integration_failed'), ['calls', 'notices']).action, null, 'calls off: no Integration accounts to open');
  const hook = noticeView(notice('webhook_disabled', { severity: 'warning', status: 'dismissed' }), all);
  assert.deepEqual([hook.title, hook.severity.tone, hook.status.text], ['Webhook endpoint disabled', 'warn', 'Dismissed']);
  assert.equal(hook.action.href, '/admin/webhooks/s%201');
  assert.equal(noticeView(notice('provider_failures', { status: 'resolved' }), all).action.href, '/admin/calls?status=failed');
  assert.equal(noticeView(notice('something_new'), all).title, 'something new', 'unknown kinds still read');
});

test('times, offsets and file names read naturally', () => {
  const now = Date.parse('2026-11-25T12:00:00Z');
  assert.equal(relativeTime('2026-11-25T11:59:50Z', now), 'just now');
  assert.equal(relativeTime('2026-11-25T10:00:00Z', now), '2 hours ago');
  assert.equal(relativeTime('2026-11-25T11:59:00Z', now), '1 minute ago');
  assert.equal(relativeTime('2026-11-27T12:00:00Z', now), 'in 2 days');
  assert.equal(relativeTime(null, now), '');
  assert.equal(offsetClock(0), '0:00');
  assert.equal(offsetClock(65_400), '1:05');
  assert.equal(offsetClock(3_723_000), '1:02:03');
  assert.equal(contentTypeFor('faq.MD'), 'text/markdown');
  assert.equal(contentTypeFor('notes.txt'), 'text/plain');
  assert.equal(titleFromFile('Store FAQ.md'), 'Store FAQ');
});

// Screens load when opened; what every visit loads is the page, its modules and the two
// widget modules they share.
const FIRST_VISIT = ['admin/index.html', 'admin/app.js', 'admin/api.js', 'admin/ui.js', 'admin/signin.js', 'admin/logic.js', 'admin/console.css', 'src/api.js', 'src/dom.js'];

test('the console stays small: a first visit under 25 KB gzipped, every file under 60 KB', async () => {
  const gzipped = async (file) => gzipSync(await readFile(join(WIDGET_DIR, file)), { level: 9 }).length;
  const files = await consoleFiles();
  let total = 0;
  for (const file of files) total += await gzipped(join('admin', file));
  let first = 0;
  for (const file of FIRST_VISIT) first += await gzipped(file);
  assert.ok(first < 25 * 1024, `a first visit: ${first} bytes gzipped`);
  assert.ok(total < 60 * 1024, `${total} bytes gzipped`);
  console.log(`# the console: ${files.length} files, ${(total / 1024).toFixed(1)} KB gzipped (plus the widget's modules it shares); a first visit ${(first / 1024).toFixed(1)} KB`);
});

async function consoleFiles() {
  const top = await readdir(join(WIDGET_DIR, 'admin'));
  const screens = await readdir(join(WIDGET_DIR, 'admin', 'screens'));
  return [...top.filter((f) => f !== 'screens'), ...screens.map((f) => `screens/${f}`)];
}
