// The widget's pure modules, in Node (no browser): the state machine, the transcript
// model fed with the protocol document's examples, durations, colours, and the size
// budget of what a page loads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { protocolExamples, conformance, WIDGET_DIR } from './harness.mjs';
import { transition, isLive, States } from '../src/machine.js';
import { Transcript, transcriptText, transcriptFileName } from '../src/transcript.js';
import { durationInWords, clock } from '../src/i18n.js';
import { textOn } from '../src/widget.js';

test('the machine walks the happy path and refuses what makes no sense', () => {
  let state = States.idle;
  for (const [event, next] of [
    ['open', 'preCall'],
    ['start', 'connecting'],
    ['active', 'inCall'],
    ['ended', 'ended'],
    ['callAgain', 'connecting'],
    ['failed', 'failed'],
    ['retry', 'connecting'],
    ['micDenied', 'micDenied'],
    ['chat', 'idle'],
  ]) {
    state = transition(state, event);
    assert.equal(state, next, `after ${event}`);
  }
  assert.equal(transition('idle', 'start'), null);
  assert.equal(transition('inCall', 'close'), null, 'closing the panel does not end a call');
  assert.equal(transition('connecting', 'cancel'), 'preCall');
  assert.equal(transition('inCall', 'dropped'), 'ended');
  assert.ok(isLive('connecting') && isLive('inCall') && !isLive('ended'));
});

test('transcript messages from the protocol document replace their line by itemId', async () => {
  const { server } = await protocolExamples();
  const transcript = new Transcript();
  for (const message of server.filter((m) => m.type === 'transcript')) transcript.apply(message);
  assert.deepEqual(
    transcript.lines.map((l) => [l.role, l.text, l.final]),
    [
      ['agent', "Hi! I'm your AI assistant. How can I help you today?", true],
      ['user', 'What are your business hours?', true],
    ],
  );
  const partial = transcript.apply({ type: 'transcript', role: 'user', text: 'And on Sun', final: false, itemId: 'item_x' });
  assert.equal(partial.isNew, true);
  assert.equal(transcript.apply({ type: 'transcript', role: 'user', text: 'And on Sundays?', final: true, itemId: 'item_x' }).isNew, false);
  assert.equal(transcript.finalLines().length, 3);
  assert.equal(transcript.apply({ type: 'transcript', role: 'agent', text: '  ', final: false, itemId: 'item_y' }), null, 'blank lines are not shown');
});

test('the downloadable transcript has a header and You/Agent lines', () => {
  const startedAt = new Date(2026, 10, 25, 14, 3);
  const text = transcriptText({
    title: 'Demo Support',
    startedAt,
    durationMs: 154000,
    lines: [
      { role: 'agent', text: 'Hello! ' },
      { role: 'user', text: 'Hi.' },
    ],
  });
  const lines = text.split('\n');
  assert.equal(lines[0], 'Call transcript — Demo Support');
  assert.match(lines[1], /^Date: 2026-11-25 14:03 \(UTC[+-]\d\d:\d\d\)$/);
  assert.equal(lines[2], 'Duration: 2 minutes 34 seconds');
  assert.deepEqual(lines.slice(3), ['', 'Agent: Hello!', 'You: Hi.', '']);
  assert.equal(transcriptFileName(startedAt), 'call-transcript-2026-11-25-1403.txt');
});

test('durations read as words and as a clock', () => {
  assert.equal(durationInWords(154000), '2 minutes 34 seconds');
  assert.equal(durationInWords(61000), '1 minute 1 second');
  assert.equal(durationInWords(120000), '2 minutes');
  assert.equal(durationInWords(400), '0 seconds');
  assert.equal(durationInWords(3723000), '1 hour 2 minutes 3 seconds');
  assert.equal(clock(42000), '00:42');
  assert.equal(clock(3723000), '1:02:03');
});

test('button text takes the more legible of white and near-black', () => {
  assert.equal(textOn('#2563eb'), '#ffffff');
  assert.equal(textOn('#10b981'), '#111827');
  assert.equal(textOn('#111827'), '#ffffff');
  assert.equal(textOn('#fde047'), '#111827');
});

test('the documented examples conform to themselves, and strays are caught', async () => {
  const { client, server, session } = await protocolExamples();
  for (const m of [...client]) assert.deepEqual(conformance(m, client), []);
  for (const m of [...server]) assert.deepEqual(conformance(m, server), []);
  assert.deepEqual(Object.keys(session).sort(), ['expiresAt', 'iceServers', 'sessionId', 'token', 'wsUrl']);
  assert.deepEqual(conformance({ type: 'hello' }, client), ['undocumented type "hello"']);
  assert.deepEqual(conformance({ type: 'mute', muted: true, loud: 1 }, client), ['mute: undocumented key loud']);
});

test('what a page loads stays under 30 KB gzipped', async () => {
  const files = await pageFiles();
  let total = 0;
  for (const file of files) total += gzipSync(await readFile(join(WIDGET_DIR, 'src', file)), { level: 9 }).length;
  assert.ok(total < 30 * 1024, `${total} bytes gzipped`);
});

/** call.js and every module widget.js imports, transitively. */
async function pageFiles() {
  const seen = new Set(['call.js']);
  const queue = ['widget.js'];
  while (queue.length) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const source = await readFile(join(WIDGET_DIR, 'src', file), 'utf8');
    for (const m of source.matchAll(/^import [^'"]*['"]\.\/([\w.-]+)['"]/gm)) queue.push(m[1]);
  }
  return [...seen];
}
