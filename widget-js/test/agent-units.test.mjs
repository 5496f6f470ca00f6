// The agent console's pure decisions, in Node (no browser): the waiting list kept from
// the socket's messages and the pending list, what a refused accept means, how callers,
// transcript lines and waits read, the socket's URL, reconnection delays, routes, and
// the console's size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { WIDGET_DIR } from './harness.mjs';
import {
  applyMessage,
  mergePending,
  openEntries,
  acceptRefusal,
  callerText,
  sourceText,
  roleText,
  waitedText,
  socketUrl,
  reconnectDelay,
  agentRoute,
} from '../agent/logic.js';

const offer = (id, waitingSince, extra = {}) => ({
  type: 'escalation',
  escalationId: id,
  callId: `call-${id}`,
  reason: 'wants a refund',
  source: 'twilio',
  caller: '+15551234567',
  waitingSince,
  expiresAt: null,
  transcript: [{ role: 'user', text: 'A person please' }],
  ...extra,
});
const ids = (entries) => entries.map((e) => e.offer.escalationId);

test('offers join the list oldest first, once, without their message type', () => {
  let list = applyMessage([], offer('b', '2025-06-02T10:00:05Z'), 'me');
  list = applyMessage(list, offer('a', '2025-06-02T10:00:01Z'), 'me');
  list = applyMessage(list, offer('b', '2025-06-02T10:00:05Z', { reason: 'again' }), 'me');
  assert.deepEqual(ids(list), ['a', 'b']);
  assert.equal(list[1].offer.reason, 'again', 'offered again: fresh details');
  assert.equal(list[0].offer.type, undefined);
  assert.equal(list[0].closed, null);
  assert.equal(applyMessage(list, { type: 'mystery' }, 'me'), list, 'unknown types change nothing');
});

test('taken and cancelled close an entry with why; an accept of our own keeps its reason', () => {
  let list = applyMessage([], offer('a', '2025-06-02T10:00:01Z'), 'me');
  list = applyMessage(list, offer('b', '2025-06-02T10:00:02Z'), 'me');
  list = applyMessage(list, offer('c', '2025-06-02T10:00:03Z'), 'me');
  list = applyMessage(list, { type: 'escalation_taken', escalationId: 'a', agentId: 'someone-else' }, 'me');
  list = applyMessage(list, { type: 'escalation_taken', escalationId: 'b', agentId: 'me' }, 'me');
  list = applyMessage(list, { type: 'escalation_cancelled', escalationId: 'c' }, 'me');
  assert.deepEqual(
    list.map((e) => e.closed),
    ['taken', 'taken_by_you', 'cancelled'],
  );
  assert.equal(list[0].note, 'Another agent took this call.');
  assert.match(list[2].note, /caller hung up/);
  assert.deepEqual(openEntries(list), []);
  const again = applyMessage(list, { type: 'escalation_cancelled', escalationId: 'a' }, 'me');
  assert.equal(again[0].closed, 'taken', 'the first reason stays');
  assert.equal(applyMessage(list, { type: 'escalation_taken', escalationId: 'zzz', agentId: 'x' }, 'me').length, 3, 'unknown ids change nothing');
  const accepting = applyMessage([], offer('d', '2025-06-02T10:00:04Z'), 'me').map((e) => ({ ...e, accepting: true }));
  const ours = applyMessage(accepting, { type: 'escalation_taken', escalationId: 'd', agentId: 'me' }, 'me');
  assert.equal(ours[0].closed, 'accepted', "this console's accept, announced before its answer");
});

test('going away empties the list: the gateway sends no news of what it showed', () => {
  const list = applyMessage([], offer('a', '2025-06-02T10:00:01Z'), 'me');
  assert.deepEqual(applyMessage(list, { type: 'presence', status: 'away' }, 'me'), []);
  assert.equal(applyMessage(list, { type: 'presence', status: 'available' }, 'me'), list);
});

test('on reconnecting, the pending list drops calls that stopped waiting and adds the new ones', () => {
  let list = applyMessage([], offer('a', '2025-06-02T10:00:01Z'), 'me');
  list = applyMessage(list, offer('b', '2025-06-02T10:00:02Z'), 'me');
  list = applyMessage(list, offer('c', '2025-06-02T10:00:03Z'), 'me');
  list = applyMessage(list, { type: 'escalation_cancelled', escalationId: 'c' }, 'me');
  const { type: _t, ...fresh } = offer('d', '2025-06-02T10:00:00Z');
  const { type: _u, ...b } = offer('b', '2025-06-02T10:00:02Z', { reason: 'updated' });
  const merged = mergePending(list, [fresh, b]);
  assert.deepEqual(ids(merged), ['d', 'b', 'c'], 'a left (taken meanwhile), c kept for its note, d added, oldest first');
  assert.equal(merged[1].offer.reason, 'updated');
  assert.equal(merged[2].closed, 'cancelled');
});

test('a refused accept says what happened and whether the call is still there', () => {
  assert.deepEqual(acceptRefusal({ code: 'already_taken', status: 409 }), { closed: 'taken', text: 'Too late: another agent accepted this call first.' });
  assert.equal(acceptRefusal({ code: 'escalation_closed', status: 410 }).closed, 'cancelled');
  assert.match(acceptRefusal({ code: 'escalation_closed' }).text, /closed: the caller hung up/);
  assert.equal(acceptRefusal({ code: 'not_found', status: 404 }).closed, 'gone');
  assert.equal(acceptRefusal({ code: 'network' }).closed, null, 'try again');
  assert.match(acceptRefusal({ code: 'database_unavailable', message: 'retry' }).text, /could not be accepted: retry/);
});

test('callers, channels, transcript roles and waits in words', () => {
  assert.equal(callerText({ source: 'twilio', caller: '+15551234567' }), '+15551234567');
  assert.equal(callerText({ source: 'web', caller: 'https://shop.example' }), 'A visitor on https://shop.example');
  assert.equal(callerText({ source: 'web', caller: null }), 'A website visitor');
  assert.equal(callerText({ source: 'whatsapp' }), 'An unknown caller');
  assert.equal(sourceText('whatsapp'), 'WhatsApp');
  assert.equal(sourceText('twilio'), 'Phone');
  assert.equal(roleText('agent'), 'AI');
  assert.equal(roleText('user'), 'Caller');
  assert.equal(roleText('human_agent'), 'Agent');
  const since = '2025-06-02T10:00:00Z';
  const at = (s) => Date.parse(since) + s * 1000;
  assert.equal(waitedText(since, at(42)), '42 s');
  assert.equal(waitedText(since, at(185)), '3 min 5 s');
  assert.equal(waitedText(since, at(3 * 3600 + 120)), '3 h 2 min');
  assert.equal(waitedText(since, at(-5)), '0 s', 'clock skew never shows a negative wait');
});

test('the socket is on the page origin, ws or wss, with the company; reconnection backs off to 30 s', () => {
  assert.equal(socketUrl('http://127.0.0.1:8080', ''), 'ws://127.0.0.1:8080/api/agent/ws');
  assert.equal(socketUrl('https://voice.example.com', 'c1'), 'wss://voice.example.com/api/agent/ws?companyId=c1');
  const mid = () => 0.5;
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map((n) => reconnectDelay(n, mid)), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(reconnectDelay(0, () => 0), 750);
  assert.equal(reconnectDelay(0, () => 1), 1250);
});

test('the console has two addresses', () => {
  assert.equal(agentRoute('/agent'), 'calls');
  assert.equal(agentRoute('/agent/'), 'calls');
  assert.equal(agentRoute('/agent/tickets'), 'tickets');
  assert.equal(agentRoute('/agent/nope'), 'not-found');
});

test('the agent console stays small: its own files under 16 KB gzipped', async () => {
  const files = await readdir(join(WIDGET_DIR, 'agent'));
  let total = 0;
  for (const file of files) total += gzipSync(await readFile(join(WIDGET_DIR, 'agent', file)), { level: 9 }).length;
  assert.ok(total < 16 * 1024, `${total} bytes gzipped`);
  console.log(`# the agent console: ${files.length} files, ${(total / 1024).toFixed(1)} KB gzipped (plus the admin console's client, building blocks, style sheet and Tickets screen)`);
});
