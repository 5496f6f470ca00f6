// The agent console's pure decisions, in Node (no browser): the waiting list kept from
// the socket's messages and the pending list, what a refused accept means, how callers,
// transcript lines and waits read, the socket's URL, reconnection delays, routes, the
// accepted call's leg (its states, transcript, words and controls), and the console's size.

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
  newLeg,
  legUpdate,
  applyLine,
  legText,
  legControls,
  speakingText,
  speakerText,
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

/** A leg after a list of events. */
const legAfter = (...events) => events.reduce(legUpdate, newLeg());
const line = (role, text, itemId, final = true) => ({ type: 'transcript', role, text, final, itemId });

test("the call's leg: the transcript so far, the hand-over, live lines growing in place, then active and ended", () => {
  let leg = legAfter(line('user', 'I want my money back.', 'i1'), line('agent', 'Let me connect you with a team member.', 'i2'));
  assert.equal(leg.state, 'connecting');
  assert.equal(legText(leg), 'Accepted. Connecting you to the call…');
  assert.deepEqual(legControls(leg), { mute: true, hangUp: false, handBack: false, retry: false, leave: false }, 'no hang-up or hand-back before the gateway took the leg');
  leg = legAfter(...[line('user', 'I want my money back.', 'i1'), line('agent', 'Let me connect you with a team member.', 'i2')], { type: 'handover' }, line('user', 'Hello', 'i3', false));
  assert.deepEqual(
    leg.lines.map((l) => [l.itemId, l.role, l.handedOver]),
    [
      ['i1', 'user', false],
      ['i2', 'agent', false],
      ['i3', 'user', true],
    ],
    'the AI part above the hand-over, the live lines below',
  );
  assert.equal(legControls(leg).hangUp, true);
  leg = legUpdate(leg, line('user', 'Hello? Anyone there?', 'i3', true));
  leg = legUpdate(leg, line('human_agent', 'Hi, this is Sam.', 'i4', false));
  leg = legUpdate(leg, { type: 'active' });
  leg = legUpdate(leg, { type: 'speaking', who: 'user' });
  assert.equal(leg.lines.length, 4, 'a line is replaced, never appended to');
  assert.equal(leg.lines[2].text, 'Hello? Anyone there?');
  assert.equal(leg.lines[2].final, true);
  assert.equal(leg.lines[3].final, false);
  assert.equal(leg.state, 'active');
  assert.match(legText(leg), /^On the call: you and the caller hear each other\.$/);
  assert.equal(speakingText(leg.speaking), 'The caller is speaking…');
  leg = legUpdate(leg, { type: 'muted', muted: true });
  assert.match(legText(leg), /Your microphone is muted\.$/);
  leg = legUpdate(leg, { type: 'ended', reason: 'caller_hangup', confirmed: true });
  assert.equal(leg.state, 'ended');
  assert.equal(leg.speaking, 'none');
  assert.equal(legText(leg), 'The caller hung up.');
  assert.deepEqual(legControls(leg), { mute: false, hangUp: false, handBack: false, retry: false, leave: true });
  assert.equal(legUpdate(leg, { type: 'active' }), leg, 'nothing revives an ended leg');
  assert.equal(legUpdate(leg, { type: 'failure', code: 'timeout' }), leg);
});

test("the agent's own way out: hanging up or handing back is pending until the gateway says the call ended", () => {
  const live = legAfter({ type: 'handover' }, { type: 'active' });
  let leg = legUpdate(live, { type: 'request', what: 'end' });
  assert.equal(legText(leg), 'Hanging up…');
  assert.deepEqual(legControls(leg), { mute: false, hangUp: false, handBack: false, retry: false, leave: false }, 'nothing twice');
  leg = legUpdate(leg, { type: 'ended', reason: 'agent_hangup', confirmed: true });
  assert.equal(leg.request, null);
  assert.equal(legText(leg), 'You hung up: the call is over.');
  leg = legAfter({ type: 'handover' }, { type: 'active' }, { type: 'request', what: 'handback' });
  assert.equal(legText(leg), 'Handing the caller back to the AI…');
  assert.match(legText(legUpdate(leg, { type: 'ended', reason: 'transferred' })), /back to the AI: the call goes on without you/);
  assert.equal(legText(legUpdate(live, { type: 'ended', reason: 'max_duration', message: 'Call ended: maximum duration reached' })), 'Call ended: maximum duration reached', "the gateway's own words");
  assert.equal(legText(legUpdate(live, { type: 'ended', reason: 'shutdown' })), 'The call ended (shutdown).');
});

test('joining that fails says why and whether trying again can help; a call that ended meanwhile is ended', () => {
  const ended = legUpdate(newLeg(), { type: 'failure', code: 'caller_hangup', retryable: true });
  assert.equal(ended.state, 'ended', 'the caller hung up before the agent was connected');
  assert.equal(legText(ended), 'The caller hung up.');
  const denied = legUpdate(newLeg(), { type: 'failure', code: 'microphone_denied', retryable: true });
  assert.equal(denied.state, 'failed');
  assert.match(legText(denied), /^Your microphone is blocked: allow it for this site, then try again\. The caller waits on hold/);
  assert.deepEqual(legControls(denied), { mute: false, hangUp: false, handBack: false, retry: true, leave: true });
  for (const code of ['invalid_token', 'session_ended']) {
    const refused = legUpdate(newLeg(), { type: 'failure', code, message: 'no', retryable: true });
    assert.equal(refused.retryable, false, `${code}: this join cannot work again`);
    assert.doesNotMatch(legText(refused), /on hold/);
  }
  assert.match(legText(legUpdate(newLeg(), { type: 'failure', code: 'session_ended' })), /another agent has joined it/);
  assert.equal(legText(legUpdate(newLeg(), { type: 'failure', code: 'internal', message: 'boom' })), 'The call could not be joined: boom.');
});

test('transcript lines: replaced by item and role, final sticks, empty new lines and unknown shapes are skipped', () => {
  let lines = applyLine([], { role: 'user', text: '  ', itemId: 'a' }, false);
  assert.deepEqual(lines, [], 'nothing said yet');
  lines = applyLine(lines, { role: 'user', text: 'Hi', final: true, itemId: 'a' }, false);
  lines = applyLine(lines, { role: 'user', text: 'Hi there', final: false, itemId: 'a' }, true);
  assert.deepEqual(lines, [{ itemId: 'a', role: 'user', text: 'Hi there', final: true, handedOver: false }], 'a line stays on the side where it first came');
  lines = applyLine(lines, { role: 'agent', text: 'Please hold.', itemId: 'b' }, true);
  assert.equal(lines[1].handedOver, false, "the AI's line it finished after the hand-over is in its part");
  lines = applyLine(lines, { role: 'human_agent', text: 'Hello', itemId: 'a' }, true);
  lines = applyLine(lines, { role: 'user', text: 'No id' }, true);
  lines = applyLine(lines, { role: 'user', text: 'No id' }, true);
  assert.equal(lines.length, 5, 'another role is another line; lines without an id stand alone');
  assert.equal(applyLine(lines, { role: 'user' }, true), lines);
  assert.equal(applyLine(lines, { text: 'x' }, true), lines);
  assert.equal(speakerText('human_agent'), 'You');
  assert.equal(speakerText('agent'), 'AI');
  assert.equal(speakerText('user'), 'Caller');
  assert.equal(speakingText('agent'), 'You are speaking…');
  assert.equal(speakingText('none'), '');
});

test('the agent console stays small: its own files under 16 KB gzipped', async () => {
  const files = await readdir(join(WIDGET_DIR, 'agent'));
  let total = 0;
  for (const file of files) total += gzipSync(await readFile(join(WIDGET_DIR, 'agent', file)), { level: 9 }).length;
  assert.ok(total < 16 * 1024, `${total} bytes gzipped`);
  console.log(`# the agent console: ${files.length} files, ${(total / 1024).toFixed(1)} KB gzipped (plus the admin console's client, building blocks, style sheet and Tickets screen)`);
});
