// The API reference page at /api/docs: rendered from /api/openapi.json by the gateway's
// own small viewer, with nothing fetched from anywhere but the gateway.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, launchBrowser, newPage } from './harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ name: 'api-docs', openai: false });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('the API reference page renders every route from the gateway alone', async () => {
  const page = await newPage(browser);
  const requested = [];
  page.on('request', (request) => requested.push(request.url()));
  const response = await page.goto(`${stack.url}/api/docs`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'] ?? '', /default-src 'self'/);

  const spec = await (await fetch(`${stack.url}/api/openapi.json`)).json();
  await page.getByRole('heading', { name: spec.info.title }).waitFor();
  const operations = page.locator('.operation');
  const count = Object.values(spec.paths).reduce((n, item) => n + Object.keys(item).filter((k) => k !== 'parameters').length, 0);
  assert.equal(await operations.count(), count, 'one entry per operation');

  // An operation with its body schema (from a $ref) and its documented answers.
  const session = page.locator('.operation', { has: page.getByText('/api/widget/call/session', { exact: true }) });
  await session.getByText('POST', { exact: true }).waitFor();
  await session.locator('summary').click();
  await session.getByText('chatbotId', { exact: true }).first().waitFor();
  await session.getByText('429', { exact: true }).waitFor();
  await session.getByText('rate_limited').first().waitFor();

  // The filter narrows the list.
  await page.getByRole('searchbox').fill('rating');
  await page.waitForFunction(() => [...document.querySelectorAll('.operation')].filter((o) => !o.hidden).length === 1);
  assert.ok(await page.locator('.operation:not([hidden])').getByText('/api/widget/call/{id}/rating').isVisible());

  const elsewhere = requested.filter((url) => !url.startsWith(stack.url));
  assert.deepEqual(elsewhere, [], 'nothing is loaded from outside the gateway');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
