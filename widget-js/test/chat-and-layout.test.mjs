// Pages with and without a chat widget, the call button while a call connects, and room
// for the live transcript (the echo provider answers: no OpenAI key).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, startHostServer, hostPage, launchBrowser, newPage, events, host, waitForState } from './harness.mjs';

let stack;
let site;
let browser;

before(async () => {
  stack = await startStack({ name: 'chat-and-layout', openai: false });
  site = await startHostServer({});
  site.pages['/'] = hostPage(stack);
  site.pages['/with-chat'] = hostPage(stack, { attributes: 'data-chat="true"' });
  // A chat widget that loads after the call widget and announces itself.
  site.pages['/late-chat'] = hostPage(stack, {
    body: `<script>
      document.addEventListener('voicewidget:start-chat', (e) => (window.__chatOpened = e.detail.reason));
      setTimeout(() => document.dispatchEvent(new CustomEvent('voicewidget:chat-available')), 1500);
    </script>`,
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await site?.close();
  await stack?.stop();
});

const chatButtons = (page) => host(page).getByRole('button', { name: /Chat/ });

test('a page without a chat gets no chat actions, before or after a call', async () => {
  const page = await newPage(browser);
  await page.goto(`${site.url}/`);
  const widget = host(page);
  await widget.locator('.launcher').click();
  await waitForState(page, 'preCall');
  assert.equal(await widget.locator('header h2').textContent(), 'Start Voice Call', 'the title, not "Back to Chat"');
  assert.equal(await chatButtons(page).count(), 0);
  await widget.getByRole('button', { name: 'Start Call', exact: true }).click();
  await waitForState(page, 'inCall');
  await widget.getByRole('button', { name: 'End call' }).click();
  await waitForState(page, 'ended');
  await widget.getByRole('button', { name: 'Call Again' }).waitFor();
  assert.equal(await chatButtons(page).count(), 0, 'no "Start Chat" after the call');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a page without a chat gets no "Use Chat Instead" when the microphone is denied', async () => {
  const denying = await launchBrowser({ denyMicrophone: true });
  try {
    const page = await newPage(denying);
    await page.goto(`${site.url}/`);
    const widget = host(page);
    await widget.locator('.launcher').click();
    await widget.getByRole('button', { name: 'Start Call', exact: true }).click();
    await waitForState(page, 'micDenied', 10000);
    await widget.getByRole('button', { name: 'Try Again' }).waitFor();
    assert.equal(await chatButtons(page).count(), 0);
    await page.context().close();
  } finally {
    await denying.close();
  }
});

test('chat actions appear with data-chat, or once a chat widget announces itself', async () => {
  const page = await newPage(browser);
  await page.goto(`${site.url}/with-chat`);
  await host(page).locator('.launcher').click();
  await host(page).getByRole('button', { name: 'Back to Chat' }).waitFor();
  await page.context().close();

  const late = await newPage(browser);
  await late.goto(`${site.url}/late-chat`);
  await host(late).locator('.launcher').click();
  await waitForState(late, 'preCall');
  assert.equal(await chatButtons(late).count(), 0, 'no chat yet');
  await host(late).getByRole('button', { name: 'Back to Chat' }).waitFor({ timeout: 5000 });
  await host(late).getByRole('button', { name: 'Back to Chat' }).click();
  await waitForState(late, 'idle');
  assert.equal(await late.evaluate(() => window.__chatOpened), 'back-to-chat');
  assert.deepEqual(await events(late), [{ type: 'voicewidget:start-chat', detail: { chatbotId: stack.chatbotId, reason: 'back-to-chat' } }]);
  await late.context().close();
});

test('while a call is connecting the button says so, not "Return to call"', async () => {
  const page = await newPage(browser);
  // Hold the session request so the call stays connecting for a while.
  let release;
  const held = new Promise((resolve) => (release = resolve));
  await page.route('**/api/widget/call/session', async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(`${site.url}/`);
  const widget = host(page);
  const launcher = widget.locator('.launcher');
  await launcher.click();
  await widget.getByRole('button', { name: 'Start Call', exact: true }).click();
  await waitForState(page, 'connecting');
  await page.keyboard.press('Escape');
  assert.equal(await widget.locator('.panel').isHidden(), true);
  const connecting = (await launcher.textContent()).trim();
  assert.doesNotMatch(connecting, /Return to call/);
  assert.match(connecting, /Connecting/);
  release();
  await waitForState(page, 'inCall');
  assert.match(await launcher.textContent(), /Return to call$/);
  await launcher.click();
  await widget.getByRole('button', { name: 'End call' }).click();
  await waitForState(page, 'ended');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the live transcript has room for several lines, unclipped', async () => {
  const page = await newPage(browser); // 1100 × 820
  await page.goto(`${site.url}/`);
  const widget = host(page);
  await widget.locator('.launcher').click();
  await widget.getByRole('button', { name: 'Start Call', exact: true }).click();
  await waitForState(page, 'inCall');
  const box = await page.evaluate(() => {
    const root = document.querySelector('voice-call-widget').shadowRoot;
    const lines = root.querySelector('.lines');
    const section = root.querySelector('.transcript');
    const body = section.closest('.body');
    const panel = root.querySelector('.panel').getBoundingClientRect();
    const rect = section.getBoundingClientRect();
    return {
      lines: lines.clientHeight,
      lineHeight: parseFloat(getComputedStyle(lines.parentElement).lineHeight) || 21,
      clipped: section.scrollHeight > section.clientHeight + 1,
      bodyScrolls: body.scrollHeight > body.clientHeight + 1,
      inside: rect.top >= panel.top && rect.bottom <= panel.bottom,
    };
  });
  assert.ok(box.lines >= 8 * 21, `room for 8 lines of 21 px: ${JSON.stringify(box)}`);
  assert.equal(box.clipped, false, JSON.stringify(box));
  assert.equal(box.bodyScrolls, false, `everything fits the panel: ${JSON.stringify(box)}`);
  assert.ok(box.inside, JSON.stringify(box));
  await widget.getByRole('button', { name: 'End call' }).click();
  await waitForState(page, 'ended');
  await page.context().close();
});
