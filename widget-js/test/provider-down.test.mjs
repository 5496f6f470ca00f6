// The AI service is down (the mock refuses every OpenAI handshake): the widget retries
// three times with exponential backoff, then shows "Unable to connect" with the
// gateway's message, Retry Call and Start Chat.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, startHostServer, hostPage, launchBrowser, newPage, events, host, waitForState, screenshot } from './harness.mjs';

const RETRY_BASE_MS = 150;
let stack;
let site;
let browser;

before(async () => {
  stack = await startStack({ name: 'provider-down', mockArgs: ['--openai-reject', 'all'] });
  site = await startHostServer({});
  site.pages['/'] = hostPage(stack, { retryBaseMs: RETRY_BASE_MS, attributes: 'data-chat="true"' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await site?.close();
  await stack?.stop();
});

const callsOfChatbot = async () =>
  (await stack.companyApi('/api/company/calls?limit=200')).filter((c) => c.chatbotId === stack.chatbotId).reverse();

test('provider down: three retries with backoff, then "Unable to connect" with Retry Call and Start Chat', async () => {
  const page = await newPage(browser);
  await page.goto(`${site.url}/`);
  const widget = host(page);
  await page.waitForSelector('voice-call-widget');
  await page.evaluate(() => {
    const root = document.querySelector('voice-call-widget').shadowRoot;
    const seen = [];
    Object.defineProperty(window, '__statusSeen', { value: seen });
    new MutationObserver(() => {
      const text = root.querySelector('.status')?.textContent;
      if (text && seen.at(-1) !== text) seen.push(text);
    }).observe(root, { subtree: true, childList: true, characterData: true });
  });
  await widget.locator('.launcher').click();
  await widget.getByRole('button', { name: 'Start Call', exact: true }).click();
  await waitForState(page, 'failed', 30000);

  assert.equal(await widget.locator('header h2').textContent(), 'Connection Failed');
  await widget.getByRole('heading', { name: 'Unable to connect' }).waitFor();
  await widget.getByText("We're having trouble connecting to our call service. Please try again in a moment.").waitFor();
  await widget.getByText('The voice service is not reachable right now. Please try again in a moment.').waitFor();
  const seen = await page.evaluate(() => window.__statusSeen);
  for (const n of [1, 2, 3]) assert.ok(seen.includes(`Connection failed. Retrying (${n} of 3)…`), `status showed ${seen}`);

  // One session per attempt, each ended by the provider error, spaced by the backoff.
  const calls = await callsOfChatbot();
  assert.equal(calls.length, 4, 'the first attempt and three retries');
  assert.deepEqual(new Set(calls.map((c) => c.endReason)), new Set(['provider_error']));
  const starts = calls.map((c) => Date.parse(c.createdAt));
  for (let i = 1; i < starts.length; i++) {
    const gap = starts[i] - starts[i - 1];
    assert.ok(gap >= RETRY_BASE_MS * 2 ** (i - 1), `retry ${i} came ${gap} ms after the attempt before`);
  }
  const mock = await stack.mockState();
  assert.ok(mock.rejected_handshakes >= 4, `the mock refused ${mock.rejected_handshakes} handshakes`);
  await screenshot(page, 'connection-failed');

  // Retry Call starts over (and fails the same way), Start Chat hands over to chat.
  await widget.getByRole('button', { name: 'Retry Call' }).click();
  await waitForState(page, 'connecting');
  await waitForState(page, 'failed', 30000);
  assert.equal((await callsOfChatbot()).length, 8);
  await widget.getByRole('button', { name: 'Start Chat' }).click();
  await waitForState(page, 'idle');
  assert.equal(await widget.locator('.panel').isHidden(), true);
  assert.deepEqual(await events(page), [{ type: 'voicewidget:start-chat', detail: { chatbotId: stack.chatbotId, reason: 'connection-failed' } }]);
  // Failed loads are logged by the browser only for HTTP errors; the widget logs none.
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
