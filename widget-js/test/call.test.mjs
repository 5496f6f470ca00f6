// The widget in headless Chromium against a real gateway on the mock OpenAI server:
// embedding, a full call, both visualizers, a dropped connection, the Test Call page
// (the console's screen, reached by its old address),
// the unavailable button and a denied microphone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  startStack,
  startHostServer,
  startRecordingProxy,
  hostPage,
  launchBrowser,
  newPage,
  events,
  host,
  waitForState,
  audioLevels,
  eventually,
  screenshot,
  protocolExamples,
  conformance,
  REPO,
} from './harness.mjs';
import { durationInWords } from '../src/i18n.js';

let stack;
let site;
let browser;
let protocol;

before(async () => {
  stack = await startStack({ name: 'call' });
  site = await startHostServer({});
  // The page has a chat widget (it listens for `voicewidget:start-chat`): chat actions show.
  site.pages['/'] = hostPage(stack, { attributes: 'data-chat="true"' });
  browser = await launchBrowser();
  protocol = await protocolExamples();
});

after(async () => {
  await browser?.close();
  await site?.close();
  await stack?.stop();
});

const widget = (page) => host(page);
const button = (page, name) => widget(page).getByRole('button', { name, exact: true });

/** Records every text the status line shows (a test-only observer in the page). */
async function watchStatus(page) {
  await page.waitForSelector('voice-call-widget');
  await page.evaluate(() => {
    const root = document.querySelector('voice-call-widget').shadowRoot;
    const seen = [];
    Object.defineProperty(window, '__statusSeen', { value: seen });
    const record = () => {
      const text = root.querySelector('.status')?.textContent;
      if (text && seen.at(-1) !== text) seen.push(text);
    };
    new MutationObserver(record).observe(root, { subtree: true, childList: true, characterData: true });
  });
}
const statusSeen = (page) => page.evaluate(() => window.__statusSeen);

/** Collects the signaling frames both ways. */
function recordSignaling(page) {
  const frames = { sent: [], received: [] };
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/api/widget/call/')) return;
    ws.on('framesent', (f) => frames.sent.push(JSON.parse(f.payload)));
    ws.on('framereceived', (f) => frames.received.push(JSON.parse(f.payload)));
  });
  return frames;
}

const transcriptLines = (page) => widget(page).locator('.lines li').allTextContents();
const audioReceivedMs = async () => (await stack.mockState()).connections.reduce((sum, c) => sum + c.audio_received_ms, 0);

/** How many pixels of the visualizer canvas are drawn. */
const drawnPixels = (page) =>
  page.evaluate(() => {
    const canvas = document.querySelector('voice-call-widget').shadowRoot.querySelector('canvas.viz');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let drawn = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 16) drawn++;
    return drawn;
  });

test('the widget loads on a plain host page: no console errors, no globals, no style leaks, keyboard friendly', async () => {
  const hostile = `<style>
    * { color: red !important; font-size: 40px !important; font-family: serif !important; }
    button { background: yellow !important; }
    div { border: 5px solid red !important; }
  </style>
  <script>window.__globalsBefore = Object.getOwnPropertyNames(window);</script>`;
  site.pages['/hostile'] = hostPage(stack, { head: hostile, body: '<p><a href="#top" id="page-link">A page link</a></p>', attributes: 'data-chat' });
  const page = await newPage(browser);
  await page.goto(`${site.url}/hostile`);
  const launcher = widget(page).locator('.launcher');
  await launcher.waitFor();
  assert.equal((await launcher.textContent()).trim(), '📞Call Us');
  const style = await launcher.evaluate((el) => {
    const s = getComputedStyle(el);
    return { fontSize: s.fontSize, color: s.color, background: s.backgroundColor };
  });
  assert.deepEqual(style, { fontSize: '15px', color: 'rgb(17, 24, 39)', background: 'rgb(16, 185, 129)' }, 'the host page CSS does not reach the widget');
  assert.equal(await page.locator('#page-link').evaluate((el) => getComputedStyle(el).fontSize), '40px', 'the widget leaves the page styles alone');
  assert.equal(await page.locator('head style, head link[rel=stylesheet]').count(), 1, 'no styles added to the page');
  const newGlobals = await page.evaluate(() =>
    Object.getOwnPropertyNames(window).filter((name) => !window.__globalsBefore.includes(name) && name !== '__globalsBefore'),
  );
  assert.deepEqual(newGlobals, [], 'the widget defines no globals');

  // Keyboard: Tab reaches the button after the page's link; Enter opens; Escape closes.
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.shadowRoot?.activeElement?.className), 'launcher');
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
  await page.keyboard.press('Enter');
  await waitForState(page, 'preCall');
  assert.equal(await launcher.getAttribute('aria-expanded'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.shadowRoot.activeElement.textContent.trim()), 'Start Call', 'focus moves to Start Call');
  await page.keyboard.press('Escape');
  await waitForState(page, 'idle');
  assert.equal(await widget(page).locator('.panel').isHidden(), true);
  assert.equal(await page.evaluate(() => document.activeElement.shadowRoot?.activeElement?.className), 'launcher', 'focus returns to the button');

  // Back to Chat hands over to the chat widget.
  await launcher.click();
  await button(page, 'Back to Chat').click();
  await waitForState(page, 'idle');
  assert.deepEqual(await events(page), [{ type: 'voicewidget:start-chat', detail: { chatbotId: stack.chatbotId, reason: 'back-to-chat' } }]);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the demo page embeds the widget for the demo chatbot', async () => {
  const page = await newPage(browser);
  await page.goto(`${stack.url}/`);
  await widget(page).locator('.launcher').waitFor();
  assert.equal(await widget(page).getAttribute('data-chatbot-id'), stack.chatbotId);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a full call: greeting heard, speech transcribed, mute, end, duration, transcript download, rating stored', async () => {
  const page = await newPage(browser);
  const frames = recordSignaling(page);
  const sessions = [];
  page.on('response', async (response) => {
    if (response.url().endsWith('/api/widget/call/session')) sessions.push(await response.json());
  });
  await page.goto(`${site.url}/`);
  await watchStatus(page);
  await widget(page).locator('.launcher').click();
  await waitForState(page, 'preCall');
  await widget(page).getByRole('heading', { name: 'Start Voice Call' }).waitFor();
  await widget(page).getByText('Press the call button to talk with our AI assistant.').waitFor();

  await button(page, 'Start Call').click();
  await waitForState(page, 'inCall');
  assert.equal(await widget(page).locator('header h2').textContent(), 'Call in Progress');
  assert.equal(await widget(page).locator('header .rec').count(), 1, 'the red dot');
  const timer = widget(page).locator('header .timer [aria-label="Call duration"]');
  assert.match(await timer.textContent(), /^00:0\d$/);
  assert.equal(await widget(page).locator('canvas.viz').getAttribute('data-style'), 'orb');
  assert.equal(await widget(page).locator('.status').getAttribute('aria-live'), 'polite');

  // The greeting is heard: energy on the remote track.
  await eventually(async () => (await audioLevels(page)).agentPeak > 0.05, { message: 'the agent greeting on the remote track' });
  // The fake microphone's speech reaches the mock's VAD and comes back as a transcript.
  await eventually(async () => (await transcriptLines(page)).includes('You: Hi, can you hear me?'), { timeout: 20000, message: 'the caller line' });
  await eventually(async () => (await transcriptLines(page)).includes('Agent: Hello! How can I help you today?'), { timeout: 10000, message: 'the agent answer' });
  assert.ok((await audioLevels(page)).userPeak > 0.05, 'the microphone level is measured');
  const seen = await statusSeen(page);
  assert.ok(seen.includes('Agent speaking…'), `status showed ${seen}`);
  assert.ok(seen.includes('You are speaking…'), `status showed ${seen}`);
  assert.match(await timer.textContent(), /^00:(0[1-9]|[1-5]\d)$/, 'the timer runs');
  assert.ok((await drawnPixels(page)) > 500, 'the orb is drawn');
  const announced = await widget(page).locator('.transcript [aria-live="polite"]').textContent();
  assert.match(announced, /You: Hi, can you hear me\?/, 'final lines are announced');

  // A screenshot while the agent talks (its next answer), for the README.
  await eventually(async () => (await audioLevels(page)).agent > 0.05, { timeout: 12000, message: 'the agent speaking again' }).catch(() => {});
  const shot = await screenshot(page, 'in-call-orb');
  // The README's screenshot is refreshed on request only, so a test run leaves the tree clean.
  if (process.env.UPDATE_DOCS_SCREENSHOT) {
    await mkdir(join(REPO, 'docs', 'images'), { recursive: true });
    await copyFile(shot, join(REPO, 'docs', 'images', 'widget-in-call.png'));
  }

  // Mute: the track is disabled and the gateway stops forwarding audio to the agent.
  const before = await audioReceivedMs();
  await new Promise((r) => setTimeout(r, 800));
  assert.ok((await audioReceivedMs()) - before > 400, 'caller audio flows before muting');
  await button(page, 'Mute').click();
  assert.equal(await button(page, 'Unmute').getAttribute('aria-pressed'), 'true');
  assert.equal(await page.evaluate(() => document.querySelector('voice-call-widget').voiceWidget.muted), true);
  await new Promise((r) => setTimeout(r, 300));
  const mutedAt = await audioReceivedMs();
  await new Promise((r) => setTimeout(r, 1200));
  assert.ok((await audioReceivedMs()) - mutedAt < 150, 'no caller audio reaches the agent while muted');
  await button(page, 'Unmute').click();
  await eventually(async () => (await audioReceivedMs()) - mutedAt > 300, { message: 'audio after unmuting' });

  // End.
  await widget(page).getByRole('button', { name: 'End call' }).click();
  await waitForState(page, 'ended');
  const sessionId = sessions[0].sessionId;
  const row = await eventually(async () => {
    const call = await stack.companyApi(`/api/company/calls/${sessionId}`);
    return call.status === 'completed' && call;
  }, { message: 'the call row to be completed' });
  assert.equal(row.endReason, 'caller_hangup');
  assert.equal(row.isTest, false);
  await widget(page).getByRole('heading', { name: 'Thank you for calling!' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.shadowRoot.activeElement.textContent), 'Thank you for calling!', 'focus moves to the outcome');
  const durationText = await widget(page).locator('.duration').textContent();
  assert.equal(durationText, `Duration: ${durationInWords(row.durationMs)}`);
  assert.match(durationText, /^Duration: (\d+ minutes? )?\d+ seconds?$/);
  assert.deepEqual((await events(page)).at(-1), {
    type: 'voicewidget:call-ended',
    detail: { chatbotId: stack.chatbotId, sessionId, reason: 'caller_hangup', durationMs: row.durationMs, preview: false },
  });

  // Download Transcript: a .txt with a header and the final lines, as stored.
  const [download] = await Promise.all([page.waitForEvent('download'), button(page, 'Download Transcript').click()]);
  assert.match(download.suggestedFilename(), /^call-transcript-\d{4}-\d\d-\d\d-\d{4}\.txt$/);
  const text = await readFile(await download.path(), 'utf8');
  const [title, date, duration, blank, ...body] = text.trimEnd().split('\n');
  assert.equal(title, 'Call transcript — Demo Support');
  assert.match(date, /^Date: \d{4}-\d\d-\d\d \d\d:\d\d \(UTC[+-]\d\d:\d\d\)$/);
  assert.equal(duration, `Duration: ${durationInWords(row.durationMs)}`);
  assert.equal(blank, '');
  const stored = row.transcript.map((l) => `${l.role === 'user' ? 'You' : 'Agent'}: ${l.content.trim()}`);
  assert.ok(stored.length >= 3, `stored lines: ${stored}`);
  assert.deepEqual([...body].sort(), [...stored].sort(), 'the file has the stored lines');
  assert.ok(body.includes('You: Hi, can you hear me?') && body.includes('Agent: Hello! How can I help you today?'));
  await screenshot(page, 'ended');

  // Rating: stored on the call.
  await widget(page).locator('.stars label').nth(3).click();
  await widget(page).getByPlaceholder('Comment (optional)').fill('Quick and clear.');
  await button(page, 'Send rating').click();
  await widget(page).getByText('Thanks for your feedback!').waitFor();
  const rated = await stack.companyApi(`/api/company/calls/${sessionId}`);
  assert.equal(rated.rating, 4);
  assert.equal(rated.ratingComment, 'Quick and clear.');

  // The protocol as documented: the session response and every signaling frame.
  assert.deepEqual(Object.keys(sessions[0]).sort(), Object.keys(protocol.session).sort());
  assert.equal(frames.sent[0].type, 'offer');
  assert.ok(frames.sent.some((m) => m.type === 'candidate'), 'trickled candidates');
  assert.ok(frames.sent.some((m) => m.type === 'mute' && m.muted === true));
  assert.ok(frames.sent.some((m) => m.type === 'mute' && m.muted === false));
  assert.equal(frames.sent.at(-1).type, 'end');
  for (const m of frames.sent) assert.deepEqual(conformance(m, protocol.client, [...protocol.client, ...protocol.server]), [], JSON.stringify(m));
  const documented = [...protocol.client, ...protocol.server];
  for (const m of frames.received) assert.deepEqual(conformance(m, protocol.server, documented), [], JSON.stringify(m).slice(0, 200));
  assert.deepEqual(
    frames.received.filter((m) => m.type === 'state').map((m) => m.state),
    ['connecting', 'active', 'ended'],
  );
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the wave visualizer renders', async () => {
  await stack.companyApi(`/api/company/chatbots/${stack.chatbotId}/widget-settings`, { method: 'PATCH', body: { visualizerStyle: 'wave' } });
  const page = await newPage(browser);
  try {
    await page.goto(`${site.url}/`);
    await widget(page).locator('.launcher').click();
    await button(page, 'Start Call').click();
    await waitForState(page, 'inCall');
    assert.equal(await widget(page).locator('canvas.viz').getAttribute('data-style'), 'wave');
    await eventually(async () => (await audioLevels(page)).agent > 0.1, { interval: 50, message: 'the agent speaking' });
    await new Promise((r) => setTimeout(r, 120)); // a few frames for the drawing to follow
    await screenshot(page, 'in-call-wave');
    assert.ok((await drawnPixels(page)) > 500, 'the wave is drawn');
    await widget(page).getByRole('button', { name: 'End call' }).click();
    await waitForState(page, 'ended');
    assert.deepEqual(page.problems, []);
  } finally {
    await page.context().close();
    await stack.companyApi(`/api/company/chatbots/${stack.chatbotId}/widget-settings`, { method: 'PATCH', body: { visualizerStyle: 'orb' } });
  }
});

test('a connection dropped mid-call ends the call on screen with a reason', async () => {
  const page = await newPage(browser);
  let route;
  await page.routeWebSocket(/\/api\/widget\/call\/.*\/ws/, (ws) => {
    route = { page: ws, server: ws.connectToServer() };
  });
  await page.goto(`${site.url}/`);
  await widget(page).locator('.launcher').click();
  await button(page, 'Start Call').click();
  await waitForState(page, 'inCall');
  const sessionId = await page.evaluate(() => document.querySelector('voice-call-widget').voiceWidget.sessionId);
  await route.server.close();
  await route.page.close({ code: 4000, reason: 'network gone' });
  await waitForState(page, 'ended', 10000);
  await widget(page).getByText('The call was cut off: the connection to the call service was lost.').waitFor();
  const row = await eventually(async () => {
    const call = await stack.companyApi(`/api/company/calls/${sessionId}`);
    return call.status !== 'active' && call.status !== 'connecting' && call;
  }, { message: 'the gateway to end the call' });
  assert.equal(row.status, 'completed');
  assert.equal((await events(page)).at(-1).detail.reason, 'connection_lost');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a call goes on while the panel is closed, and leaving the page ends it', async () => {
  // The widget talks to the gateway's HTTP API through a recording proxy here.
  const proxy = await startRecordingProxy(stack.url);
  site.pages['/proxied'] = hostPage(stack, { gateway: proxy.url });
  site.pages['/elsewhere'] = '<!doctype html><title>Elsewhere</title><p>Another page.</p>';
  const page = await newPage(browser);
  try {
    await page.goto(`${site.url}/proxied`);
    const launcher = widget(page).locator('.launcher');
    await launcher.click();
    await button(page, 'Start Call').click();
    await waitForState(page, 'inCall');
    const sessionId = await page.evaluate(() => document.querySelector('voice-call-widget').voiceWidget.sessionId);
    await page.keyboard.press('Escape');
    assert.equal(await widget(page).locator('.panel').isHidden(), true);
    assert.equal(await widget(page).getAttribute('data-state'), 'inCall');
    assert.match(await launcher.textContent(), /Return to call$/);
    assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
    await launcher.click();
    assert.equal(await widget(page).locator('.panel').isVisible(), true);
    assert.equal(await widget(page).locator('header h2').textContent(), 'Call in Progress');

    await page.goto(`${site.url}/elsewhere`);
    const end = await eventually(() => proxy.requests.find((r) => r.method === 'POST' && r.path === `/api/widget/call/${sessionId}/end`), {
      message: 'the hang-up request sent while the page unloads',
    });
    assert.deepEqual(Object.keys(JSON.parse(end.body)), ['token']);
    const row = await eventually(async () => {
      const call = await stack.companyApi(`/api/company/calls/${sessionId}`);
      return call.status === 'completed' && call;
    }, { message: 'the gateway to end the call' });
    assert.equal(row.endReason, 'caller_hangup');
    assert.deepEqual(page.problems, []);
  } finally {
    await page.context().close();
    await proxy.close();
  }
});

test('the Test Call page (now in the console) places a preview call and shows the stored transcript and a summary', async () => {
  const page = await newPage(browser);
  // A second company, so that the master admin picks one.
  await stack.api('/api/admin/companies', { method: 'POST', body: { name: 'Another Company' } });
  await page.goto(`${stack.url}/test-call`);
  assert.match(page.url(), /\/admin\/test-call$/, 'the old page leads to the console');
  await page.getByLabel('E-mail').fill(stack.admin.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong e-mail or password.').waitFor();
  await page.getByLabel('Password').fill(stack.admin.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${stack.admin.email}`).waitFor();
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'gw_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', `the session cookie: ${JSON.stringify(session)}`);
  await page.reload();
  await page.getByText(`Signed in as ${stack.admin.email}`).waitFor();
  await page.getByLabel('Company', { exact: true }).selectOption({ label: 'Demo Company' });
  await page.getByLabel('Chatbot', { exact: true }).selectOption({ label: 'Demo Voice Agent' });
  assert.match(await page.locator('#embed-snippet').textContent(), new RegExp(`data-chatbot-id="${stack.chatbotId}"`));
  await page.getByRole('button', { name: '📞 Test Call' }).click();
  await waitForState(page, 'preCall');
  assert.equal(await widget(page).getAttribute('data-mode'), 'preview');
  await widget(page).getByText('Preview — test call').waitFor();
  await button(page, 'Start Call').click();
  await waitForState(page, 'inCall');
  await eventually(async () => (await transcriptLines(page)).includes('You: Hi, can you hear me?'), { timeout: 20000, message: 'the caller line' });
  await eventually(async () => (await transcriptLines(page)).includes('Agent: Hello! How can I help you today?'), { message: 'the agent answer' });
  const sessionId = await page.evaluate(() => document.querySelector('voice-call-widget').voiceWidget.sessionId);
  await widget(page).getByRole('button', { name: 'End call' }).click();
  await waitForState(page, 'ended');

  const summary = page.locator('#summary');
  await summary.waitFor();
  await eventually(async () => (await summary.locator('dd').allTextContents()).includes('yes'), { message: 'the summary' });
  const facts = Object.fromEntries(
    await summary.locator('dt').evaluateAll((dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])),
  );
  assert.equal(facts.Call, sessionId);
  assert.equal(facts.Status, 'completed');
  assert.equal(facts['End reason'], 'caller_hangup');
  assert.equal(facts['Test call'], 'yes');
  const lines = await summary.locator('#summary-lines li').allTextContents();
  assert.ok(lines.some((l) => /^\d+:\d\dCaller: Hi, can you hear me\?$/.test(l)), `summary lines: ${lines}`);
  const row = await stack.companyApi(`/api/company/calls/${sessionId}`);
  assert.equal(row.isTest, true);
  assert.equal(row.transcript.length, lines.length);
  await screenshot(page, 'test-call-page', { fullPage: true });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('E-mail').waitFor();
  await page.reload();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  // The browser logs the answers the page expects: 401 from /api/auth/session before
  // signing in (how it learns to show the form) and from the wrong password.
  const expected = /status of 401 .*\/api\/auth\/(session|login)\)$/;
  assert.deepEqual(page.problems.filter((p) => !expected.test(p)), []);
  await page.context().close();
});

test('the call button is disabled with "Voice calls temporarily unavailable" when calls are off', async () => {
  await stack.api(`/api/admin/companies/${stack.companyId}/settings`, { method: 'PATCH', body: { features: { callEnabled: false } } });
  const page = await newPage(browser);
  try {
    await page.goto(`${site.url}/`);
    const launcher = widget(page).locator('.launcher');
    await launcher.waitFor();
    assert.equal((await launcher.textContent()).trim(), '📞Voice calls temporarily unavailable');
    assert.equal(await launcher.getAttribute('aria-disabled'), 'true');
    await launcher.click({ force: true }); // aria-disabled: Playwright would wait for it to be enabled
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await widget(page).getAttribute('data-state'), 'idle');
    assert.equal(await widget(page).locator('.panel').isHidden(), true);
    await screenshot(page, 'unavailable');
    assert.deepEqual(page.problems, []);
  } finally {
    await page.context().close();
    await stack.api(`/api/admin/companies/${stack.companyId}/settings`, { method: 'PATCH', body: { features: { callEnabled: true } } });
  }
});

test('on a site outside the allowed origins the widget shows nothing and says why in the console', async () => {
  const settings = `/api/company/chatbots/${stack.chatbotId}/widget-settings`;
  await stack.companyApi(settings, { method: 'PATCH', body: { allowedOrigins: ['https://shop.example.com'] } });
  const page = await newPage(browser);
  const warnings = [];
  page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));
  try {
    await page.goto(`${site.url}/`);
    await eventually(() => warnings.some((w) => w.includes('origin_not_allowed')), { message: 'the warning' });
    assert.equal(await page.locator('voice-call-widget').count(), 0);
  } finally {
    await page.context().close();
    await stack.companyApi(settings, { method: 'PATCH', body: { allowedOrigins: [] } });
  }
});

test('a denied microphone shows "Microphone Access Required" with help and the chat fallback', async () => {
  const denying = await launchBrowser({ denyMicrophone: true });
  try {
    const callsBefore = (await stack.companyApi('/api/company/calls')).length;
    const page = await newPage(denying);
    await page.goto(`${site.url}/`);
    await widget(page).locator('.launcher').click();
    await button(page, 'Start Call').click();
    await waitForState(page, 'micDenied', 10000);
    assert.equal(await widget(page).locator('header h2').textContent(), 'Microphone Access Required');
    await widget(page).getByRole('heading', { name: 'Permission Needed' }).waitFor();
    const settings = button(page, 'Browser Settings');
    assert.equal(await settings.getAttribute('aria-expanded'), 'false');
    await settings.click();
    assert.equal(await settings.getAttribute('aria-expanded'), 'true');
    await widget(page).getByText(/set Microphone to "Allow"/).waitFor();
    await screenshot(page, 'microphone-denied');
    await button(page, 'Try Again').click();
    await waitForState(page, 'micDenied', 10000);
    await button(page, 'Use Chat Instead').click();
    await waitForState(page, 'idle');
    assert.equal(await widget(page).locator('.panel').isHidden(), true);
    assert.deepEqual(await events(page), [{ type: 'voicewidget:start-chat', detail: { chatbotId: stack.chatbotId, reason: 'microphone-denied' } }]);
    assert.equal((await stack.companyApi('/api/company/calls')).length, callsBefore, 'no call session was opened');
    assert.deepEqual(page.problems, []);
  } finally {
    await denying.close();
  }
});
