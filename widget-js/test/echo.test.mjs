// With no OpenAI key the demo chatbot answers with the echo provider (it plays the
// caller back): the demo page at `/` embeds the widget, which says so.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, launchBrowser, newPage, host, waitForState, audioLevels, eventually } from './harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ name: 'echo', openai: false });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('the demo page without an OpenAI key: the echo provider answers, and the widget says so', async () => {
  const config = await (await fetch(`${stack.url}/api/widget/chatbots/${stack.chatbotId}`)).json();
  assert.equal(config.call.provider, 'echo');
  assert.equal(config.call.echoMode, true);

  const page = await newPage(browser);
  await page.goto(`${stack.url}/`);
  await page.getByText('echo provider').first().waitFor(); // the demo page's own note
  const widget = host(page);
  await widget.locator('.launcher').click();
  const note = 'Demo mode: no AI is connected. The echo service plays back what you say after you stop talking.';
  await widget.getByText(note).waitFor();
  await widget.getByRole('button', { name: 'Start Call', exact: true }).click();
  await waitForState(page, 'inCall');
  await widget.getByText(note).waitFor();
  // The chime, then the caller's own speech played back.
  await eventually(async () => (await audioLevels(page)).agentPeak > 0.05, { timeout: 15000, message: 'echoed audio' });
  await widget.getByRole('button', { name: 'End call' }).click();
  await waitForState(page, 'ended');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
