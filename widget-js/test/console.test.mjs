// The admin console in headless Chromium against a real gateway and the local mocks
// (OpenAI Realtime, Twilio REST), walked screen by screen as admins would: a master admin
// switches calls on for a new company and adds a call model; that company's admin adds
// a Twilio number (wrong token, then the right one), configures Call Options (an
// out-of-range value shows the API's error), previews a voice, changes the widget colour
// in the live preview, fills the knowledge base, registers webhook endpoints (the signing
// secret shown once), places a test call and finds it in Calls, reads the test call's
// deliveries in the webhook log and redelivers one, sees a failing endpoint disabled with
// its reason and its notice counted in the menu, dismisses the notice and enables the
// endpoint again; a support agent sees no configuration (only Tickets); the layout holds at tablet width.
// UPDATE_DOCS_SCREENSHOT=1 copies the screenshots to docs/images/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { startStack, launchBrowser, newPage, waitForState, eventually, screenshot, REPO } from './harness.mjs';

const TWILIO = { sid: 'AC0123456789abcdef0123456789abcdef', token: 'fedcba9876543210fedcba9876543210', number: '+15551234567' };
const WHATSAPP = { phoneNumberId: '106853218861309', token: 'EAAGtest0123456789abcdefghij', number: '+1 555-555-5555' };
const COMPANY = 'Acme Travel';
const companyAdmin = { email: 'admin@acme.test', password: 'acme-admin-password', role: 'company_admin', company: COMPANY };
const agent = { email: 'agent@acme.test', password: 'acme-agent-password', role: 'support_agent', company: COMPANY };

let stack;
let browser;
/** The company admin's page, shared by the tests that follow one another. */
let page;
let acme;
let model;
/** A company's systems receiving webhooks: `/hooks/crm` takes them, `/hooks/down` answers 503 while `down`. */
let receiver;
/** The CRM endpoint's signing secret, as the console showed it once. */
let crmSecret;

/** A local receiver of webhook deliveries that records each one. */
async function startReceiver() {
  const got = [];
  const state = { got, down: true };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (req.url === '/hooks/down' && state.down) res.writeHead(503).end('upstream busy');
      else res.writeHead(200).end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.url = `http://127.0.0.1:${server.address().port}`;
  state.close = () => new Promise((r) => server.close(r));
  state.events = (path, type) => got.filter((r) => r.path === path && r.headers['x-gateway-event'] === type);
  return state;
}

before(async () => {
  receiver = await startReceiver();
  stack = await startStack({
    name: 'console',
    mockArgs: ['--twilio-account', `${TWILIO.sid}:${TWILIO.token}:${TWILIO.number}`, '--graph-number', `${WHATSAPP.phoneNumberId}:${WHATSAPP.token}`],
    // Webhooks to the local receiver, retried quickly and given up after 3 s, so a
    // failing endpoint is disabled within the test.
    env: { GATEWAY_WEBHOOKS_ALLOW_PRIVATE: 'true', GATEWAY_WEBHOOKS_POLL_MS: '100', GATEWAY_WEBHOOKS_BACKOFF_MS: '200', GATEWAY_WEBHOOKS_RETRY_WINDOW_SECONDS: '3' },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
  await receiver?.close();
});

async function signIn(p, who, { path = '/admin' } = {}) {
  await p.goto(`${stack.url}${path}`);
  await p.getByLabel('E-mail').fill(who.email);
  await p.getByLabel('Password').fill(who.password);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByText(`Signed in as ${who.email}`).waitFor();
}

const nav = (p) => p.getByRole('navigation', { name: 'Console' });
const heading = (p, name) => p.getByRole('heading', { level: 1, name }).waitFor();
const dialog = (p) => p.getByRole('dialog');
const navLinks = async (p) => (await nav(p).getByRole('link').allTextContents()).map((t) => t.trim());

/**
 * The page's problems other than the 401 of the session probe before signing in and the
 * refusals a test provoked on purpose (`expected`: path patterns with their status).
 */
const problems = (p, expected = []) =>
  p.problems.filter((line) => ![/status of 401 .*\/api\/auth\/session\)$/, ...expected].some((pattern) => pattern.test(line)));

/** Every visible form control and button has an accessible name. */
async function unlabelled(p) {
  return p.evaluate(() => {
    const named = (el) =>
      el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim()) || el.closest('label');
    return [...document.querySelectorAll('input, select, textarea, button')]
      .filter((el) => el.type !== 'hidden' && el.getClientRects().length && !named(el))
      .map((el) => el.outerHTML.slice(0, 120));
  });
}

async function shoot(p, name, options = { fullPage: true }) {
  // Without the passing status message of an earlier step.
  await p.evaluate(() => document.getElementById('console-status')?.replaceChildren());
  const file = await screenshot(p, name, options);
  if (process.env.UPDATE_DOCS_SCREENSHOT) {
    await mkdir(join(REPO, 'docs', 'images'), { recursive: true });
    await copyFile(file, join(REPO, 'docs', 'images', `${name}.png`));
  }
}

test('a master admin creates a company, switches voice calls on in its Features and adds a call model', async () => {
  const p = await newPage(browser);
  await signIn(p, stack.admin);
  await heading(p, 'Companies');
  assert.deepEqual((await navLinks(p)).slice(0, 2), ['Companies', 'AI models']);

  await p.getByLabel('Company name').fill(COMPANY);
  await p.getByRole('button', { name: 'Create company' }).click();
  await p.getByRole('heading', { name: `Features — ${COMPANY}` }).waitFor();
  const calls = p.getByRole('switch', { name: 'Voice Calls' });
  assert.equal(await calls.isChecked(), false, 'calls are off for a new company');
  assert.equal(await p.getByLabel('Chat Feature (always on)').isDisabled(), true);
  await p.getByText('When on, its company admins see everything about calls').waitFor();
  await calls.check();
  await p.getByRole('button', { name: 'Save features' }).click();
  await p.getByText(`Voice calls are on for ${COMPANY}.`).waitFor();
  acme = (await stack.api('/api/admin/companies')).find((c) => c.name === COMPANY);
  assert.equal(acme.settings.features.callEnabled, true);
  const row = p.getByRole('row', { name: new RegExp(COMPANY) });
  await row.getByText('On', { exact: true }).waitFor();
  await shoot(p, 'console-companies');

  // AI models: filter by type, add a call model, see a duplicate refused next to its field.
  await nav(p).getByRole('link', { name: 'AI models' }).click();
  await heading(p, 'AI models');
  await p.getByLabel('Show').selectOption('call');
  await p.getByRole('row', { name: /GPT Realtime/ }).first().waitFor();
  const types = await p.locator('tbody tr td:nth-child(4)').allTextContents();
  assert.ok(types.length && types.every((t) => t === 'Call' || t === 'Both'), `call-capable only: ${types}`);
  assert.equal(await p.getByRole('row', { name: /GPT-5\.2/ }).count(), 0, 'chat models are filtered out');
  const addModel = async () => {
    await p.getByRole('button', { name: 'Add model' }).click();
    const box = dialog(p);
    await box.getByLabel('Provider').selectOption('openai');
    await box.getByLabel('Model ID').fill('gpt-realtime-mini');
    await box.getByLabel('Display Name').fill('GPT Realtime Mini');
    await box.getByLabel('Model Type').selectOption({ label: 'Call Only' });
    await box.getByLabel('Realtime dialect (OpenAI)').selectOption('ga');
    await box.getByRole('button', { name: 'Add model' }).click();
    return box;
  };
  await addModel();
  const added = p.getByRole('row', { name: /GPT Realtime Mini/ });
  await added.waitFor();
  assert.equal(await added.locator('td').nth(3).textContent(), 'Call');
  assert.match(await added.locator('td').nth(4).textContent(), /^10 \(alloy, ash, ballad, coral, …\)$/);
  model = (await stack.api('/api/admin/ai-models?type=call')).find((m) => m.modelId === 'gpt-realtime-mini');
  assert.equal(model.modelType, 'call');
  const again = await addModel();
  await again.getByText('This provider already has a model with that id (already_exists)').waitFor();
  assert.equal(await again.getByLabel('Model ID').getAttribute('aria-invalid'), 'true');
  await again.getByRole('button', { name: 'Cancel' }).click();

  // Deactivate a chat model.
  await p.getByLabel('Show').selectOption('chat');
  await p.getByRole('button', { name: 'Deactivate GPT-5 Nano' }).click();
  await p.getByRole('row', { name: /GPT-5 Nano/ }).getByText('Inactive').waitFor();
  assert.equal((await stack.api('/api/admin/ai-models')).find((m) => m.modelId === 'gpt-5-nano').isActive, false);
  await p.getByLabel('Show').selectOption('');
  await shoot(p, 'console-ai-models');
  assert.deepEqual(await unlabelled(p), []);
  assert.deepEqual(problems(p, [/status of 409 .*\/api\/admin\/ai-models\)$/]), []);
  await p.getByRole('button', { name: 'Sign out' }).click();
  await p.getByLabel('E-mail').waitFor();
  await p.context().close();
});

test('a company admin sees only their company, and neither Companies nor AI models', async () => {
  await stack.createUser(companyAdmin);
  page = await newPage(browser);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.url });
  await signIn(page, companyAdmin);
  await heading(page, 'Chatbots');
  const links = await navLinks(page);
  assert.deepEqual(links, ['Chatbots', 'Integration accounts', 'Calls', 'Knowledge base', 'Test Call', 'Tickets', 'Webhooks', 'Notices']);
  await page.getByText(`Company: ${COMPANY}`).waitFor();
  assert.equal(await page.locator('#company-picker').count(), 0, 'one company: no picker');
  assert.equal(await page.getByText('Demo Company').count(), 0);
  await page.goto(`${stack.url}/admin/companies`);
  await page.getByText('Companies is not available to a company admin.').waitFor();

  await nav(page).getByRole('link', { name: 'Chatbots' }).click();
  await heading(page, 'Chatbots');
  await page.getByLabel('Name', { exact: true }).fill('Trip Helper');
  await page.getByLabel('Call (voice)').check();
  await page.getByRole('button', { name: 'Create chatbot' }).click();
  await heading(page, 'Trip Helper');
  await page.getByRole('link', { name: 'Call Options' }).and(page.locator('[aria-current="page"]')).waitFor();
});

test('a company admin adds a Twilio number, copies its webhook URL and tests the connection: wrong token fails, the right one passes', async () => {
  await nav(page).getByRole('link', { name: 'Integration accounts' }).click();
  await heading(page, 'Integration Accounts');
  await page.getByRole('button', { name: '+ Add Account' }).click();
  const form = dialog(page);
  await form.getByLabel('Account Type').selectOption('twilio');
  assert.equal(await form.getByLabel('Business Account ID').isVisible(), false, 'WhatsApp fields are hidden for Twilio');
  await form.getByLabel('Account Name').fill('Main Twilio Account');
  await form.getByLabel('Twilio Account SID').fill('AC123');
  await form.getByLabel('Twilio Auth Token').fill('wrong-token-0000000000000000');
  await form.getByLabel('Phone Number', { exact: true }).fill('+1 (555) 123-4567');
  await form.getByLabel('Chatbot answering calls').selectOption({ label: 'Trip Helper' });
  await form.getByRole('button', { name: 'Save' }).click();
  // The API's field error shows under its control; nothing is created.
  await form.getByText('Must be AC followed by 32 hexadecimal digits (invalid_value)').waitFor();
  assert.equal(await form.getByLabel('Twilio Account SID').getAttribute('aria-invalid'), 'true');
  assert.deepEqual(await stack.api('/api/company/integration-accounts', { headers: { 'X-Company-Id': acme.id } }), []);
  await form.getByLabel('Twilio Account SID').fill(TWILIO.sid);
  await form.getByRole('button', { name: 'Save' }).click();

  // After saving: the webhook URL with a copy button and the Twilio console steps.
  const created = dialog(page);
  await created.getByRole('heading', { name: '✅ Integration Account Created' }).waitFor();
  const [account] = await stack.api('/api/company/integration-accounts', { headers: { 'X-Company-Id': acme.id } });
  assert.equal(account.phoneNumber, TWILIO.number, 'the number is stored in E.164');
  assert.equal(await created.locator('#new-webhook-url').textContent(), account.webhookUrl);
  await created.getByText('Under "Voice & Fax", paste the webhook URL in "A CALL COMES IN".').waitFor();
  await created.getByRole('button', { name: 'Copy' }).click();
  await created.getByRole('button', { name: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), account.webhookUrl);
  await shoot(page, 'console-integration-created', { fullPage: false });

  // The connection test against the Twilio mock: the wrong token is refused.
  await created.getByRole('button', { name: 'Test connection' }).click();
  const report = dialog(page);
  await report.getByRole('heading', { name: 'Connection Test' }).waitFor();
  await report.getByText(/^The account is inactive: /).waitFor();
  assert.ok((await report.locator('.checks li.failed').count()) >= 1, 'a failed check');
  await report.getByRole('button', { name: 'OK' }).click();
  const card = page.locator(`[data-account="${account.id}"]`);
  await card.getByText('Inactive', { exact: true }).waitFor();
  await card.getByText('Trip Helper').waitFor();

  // Edit: the saved token shows masked; Replace opens an empty box for the right one.
  await page.getByRole('button', { name: 'Edit Main Twilio Account' }).click();
  const edit = dialog(page);
  await edit.getByText(/••••.* \(saved\)/).waitFor();
  await edit.getByRole('button', { name: 'Replace Twilio Auth Token' }).click();
  await edit.getByLabel('Twilio Auth Token').fill(TWILIO.token);
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Main Twilio Account saved. Test the connection again to activate it.').waitFor();
  await page.getByRole('button', { name: 'Test connection of Main Twilio Account' }).click();
  await dialog(page).getByText('Your account is ready to receive calls.').waitFor();
  assert.equal(await dialog(page).locator('.checks li.failed').count(), 0);
  await dialog(page).getByRole('button', { name: 'OK' }).click();
  await card.getByText('Active', { exact: true }).waitFor();
  const [active] = await stack.api('/api/company/integration-accounts', { headers: { 'X-Company-Id': acme.id } });
  assert.equal(active.status, 'active');
  assert.match(active.authToken, /^•+/, 'the API masks the secret');
  assert.equal(await card.getByText(TWILIO.token).count(), 0, 'the console never shows the secret');
  assert.deepEqual(await unlabelled(page), []);
});

test('a WhatsApp Business number shows its verify token and the Meta steps, and passes its connection test', async () => {
  await page.getByRole('button', { name: '+ Add Account' }).click();
  const form = dialog(page);
  await form.getByLabel('Account Type').selectOption('whatsapp');
  assert.equal(await form.getByLabel('Twilio Account SID').isVisible(), false, 'Twilio fields are hidden for WhatsApp');
  await form.getByLabel('Account Name').fill('Support WhatsApp');
  await form.getByLabel('Business Account ID').fill('123456789012345');
  await form.getByLabel('Phone Number ID').fill(WHATSAPP.phoneNumberId);
  await form.getByLabel('Phone Number', { exact: true }).fill(WHATSAPP.number);
  await form.getByLabel('Access Token').fill(WHATSAPP.token);
  await form.getByLabel('App Secret').fill('0123456789abcdef0123456789abcdef');
  await form.getByRole('button', { name: 'Save' }).click();
  const created = dialog(page);
  await created.getByRole('heading', { name: '✅ Integration Account Created' }).waitFor();
  const account = (await stack.api('/api/company/integration-accounts', { headers: { 'X-Company-Id': acme.id } })).find((a) => a.accountType === 'whatsapp');
  await created.getByText(account.verifyToken, { exact: true }).waitFor();
  await created.getByText('Under "Webhook fields", subscribe to the calls field.').waitFor();
  await created.getByRole('button', { name: 'Test connection' }).click();
  await dialog(page).getByText('Your account is ready to receive calls.').waitFor();
  await dialog(page).getByRole('button', { name: 'OK' }).click();
  const card = page.locator(`[data-account="${account.id}"]`);
  await card.getByText('Active', { exact: true }).waitFor();
  await card.getByText('none: calls to this number are refused').waitFor();
  await shoot(page, 'console-integrations');
});

test('the knowledge base takes an uploaded markdown file', async () => {
  await nav(page).getByRole('link', { name: 'Knowledge base' }).click();
  await heading(page, 'Knowledge base');
  await page.getByLabel('Name', { exact: true }).fill('Store FAQ');
  await page.getByRole('button', { name: 'Create category' }).click();
  await page.getByRole('heading', { name: 'Documents in Store FAQ' }).waitFor();
  const markdown = "# Store FAQ\n\n## Business hours\n\nWe're open Monday-Friday, 9 AM - 5 PM.\n\n## Shipping\n\nWe ship to the US and Canada.\n";
  await page.getByLabel('Upload a file (optional)').setInputFiles({ name: 'store-faq.md', mimeType: 'text/markdown', buffer: Buffer.from(markdown) });
  await eventually(async () => (await page.getByLabel('Content').inputValue()) === markdown, { message: 'the file read into the form' });
  assert.equal(await page.getByLabel('Title').inputValue(), 'store-faq');
  assert.equal(await page.getByLabel('Format').inputValue(), 'text/markdown');
  await page.getByLabel('Title').fill('Store FAQ');
  await page.getByRole('button', { name: 'Add document' }).click();
  await page.getByRole('row', { name: /Store FAQ Markdown, 115 characters in 2 passages/ }).waitFor();
});

test('Call Options: model, voice preview, ranges checked by the API with the error beside the control, knowledge categories', async () => {
  await nav(page).getByRole('link', { name: 'Chatbots' }).click();
  await page.getByRole('link', { name: 'Call Options of Trip Helper' }).click();
  await page.getByRole('heading', { name: 'AI Model & Voice' }).waitFor();
  const bot = (await stack.api('/api/company/chatbots', { headers: { 'X-Company-Id': acme.id } })).find((b) => b.name === 'Trip Helper');
  const options = await page.getByLabel('Call AI Model').locator('option').allTextContents();
  assert.ok(options.includes('GPT Realtime Mini (openai)'), `${options}`);
  assert.ok(!options.some((o) => o.startsWith('GPT-5')), 'only call-capable models');
  await page.getByLabel('Call AI Model').selectOption({ label: 'GPT Realtime Mini (openai)' });
  await page.getByRole('radio', { name: 'Marin' }).waitFor();
  await page.getByRole('radio', { name: 'Shimmer' }).check();

  // ▶ Preview plays a sample generated through the provider (the OpenAI mock).
  const [preview] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/api/company/voices/shimmer/preview')),
    page.getByRole('button', { name: 'Preview voice Shimmer' }).click(),
  ]);
  assert.equal(preview.status(), 200);
  assert.equal(preview.headers()['content-type'], 'audio/wav');
  await page.getByText('Playing Shimmer.').waitFor();
  assert.equal(await page.locator('audio[data-voice="shimmer"]').count(), 1);

  await page.getByLabel('Store FAQ (1 document)').check();
  await page.getByLabel('Silence Timeout (seconds)', { exact: true }).fill('301');
  await page.getByRole('button', { name: 'Save Call Options' }).click();
  const silence = page.locator('[data-field="silenceTimeoutSeconds"]');
  await silence.getByText('Must be between 30 and 300 seconds (invalid_value)').waitFor();
  assert.equal(await page.getByLabel('Silence Timeout (seconds)', { exact: true }).getAttribute('aria-invalid'), 'true');
  const unchanged = await stack.api(`/api/company/chatbots/${bot.id}/call-settings`, { headers: { 'X-Company-Id': acme.id } });
  assert.equal(unchanged.silenceTimeoutSeconds, 180, 'a refused save changes nothing');
  assert.equal(unchanged.aiModelId, null);
  await shoot(page, 'console-call-options-error', { fullPage: false });

  await page.getByLabel('Silence Timeout (seconds)', { exact: true }).fill('120');
  await page.getByRole('button', { name: 'Save Call Options' }).click();
  await page.getByText('Call Options saved.').waitFor();
  const saved = await stack.api(`/api/company/chatbots/${bot.id}/call-settings`, { headers: { 'X-Company-Id': acme.id } });
  assert.equal(saved.aiModelId, model.id);
  assert.equal(saved.voice, 'shimmer');
  assert.equal(saved.silenceTimeoutSeconds, 120);
  assert.equal(await page.getByLabel('Silence Timeout (seconds)', { exact: true }).getAttribute('aria-invalid'), null, 'the error is gone');
  const linked = await stack.api(`/api/company/chatbots/${bot.id}/knowledge-categories`, { headers: { 'X-Company-Id': acme.id } });
  assert.deepEqual(linked.categories.map((c) => c.name), ['Store FAQ']);
  await shoot(page, 'console-call-options');
  assert.deepEqual(await unlabelled(page), []);

  // What the agent would find now that the category is linked.
  await nav(page).getByRole('link', { name: 'Knowledge base' }).click();
  await page.getByRole('search', { name: 'Search the knowledge base' }).getByLabel('Chatbot').selectOption({ label: 'Trip Helper' });
  await page.getByLabel('Question').fill('What are your business hours?');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const found = page.getByRole('list', { name: 'What the agent would find' });
  await found.getByText("We're open Monday-Friday, 9 AM - 5 PM.", { exact: false }).waitFor();
  await shoot(page, 'console-knowledge');
});

test('the Widget tab previews the real widget with unsaved changes', async () => {
  await nav(page).getByRole('link', { name: 'Chatbots' }).click();
  await page.getByRole('link', { name: 'Widget of Trip Helper' }).click();
  const preview = page.frameLocator('iframe[title="Widget preview"]');
  const launcher = preview.locator('voice-call-widget .launcher');
  const colour = () => launcher.evaluate((el) => getComputedStyle(el).backgroundColor);
  await launcher.waitFor();
  assert.equal(await colour(), 'rgb(16, 185, 129)');
  await page.getByLabel('Call Button Color', { exact: true }).fill('#7c3aed');
  await eventually(async () => (await colour()) === 'rgb(124, 58, 237)', { message: 'the preview takes the new colour' });
  await page.getByLabel('Call Button Text').fill('Talk to us');
  await eventually(async () => (await launcher.textContent()).includes('Talk to us'), { message: 'the preview takes the new text' });
  const bot = (await stack.api('/api/company/chatbots', { headers: { 'X-Company-Id': acme.id } })).find((b) => b.name === 'Trip Helper');
  const before = await stack.api(`/api/company/chatbots/${bot.id}/widget-settings`, { headers: { 'X-Company-Id': acme.id } });
  assert.equal(before.callButtonColor, '#10b981', 'the preview does not save');
  await launcher.click();
  await preview.getByRole('heading', { name: 'Start Voice Call' }).waitFor();
  await page.getByRole('button', { name: 'Save widget settings' }).click();
  await page.getByText('Widget settings saved.').waitFor();
  const after = await stack.api(`/api/company/chatbots/${bot.id}/widget-settings`, { headers: { 'X-Company-Id': acme.id } });
  assert.equal(after.callButtonColor, '#7c3aed');
  assert.equal(after.callButtonText, 'Talk to us');
  await page.setViewportSize({ width: 1100, height: 1000 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await shoot(page, 'console-widget', { fullPage: false });
  await page.setViewportSize({ width: 1100, height: 820 });
});

test('a company admin adds webhook endpoints: the API refuses bad input beside its control, the signing secret shows once', async () => {
  const companyApi = (path) => stack.api(path, { headers: { 'X-Company-Id': acme.id } });
  await nav(page).getByRole('link', { name: 'Webhooks' }).click();
  await heading(page, 'Webhooks');
  await page.getByText('No webhook endpoints yet.').waitFor();
  await page.getByRole('button', { name: '+ Add endpoint' }).click();
  const form = dialog(page);
  await form.getByLabel('URL').fill('ftp://crm.example.com/hooks');
  await form.getByLabel('call.ended').check();
  await form.getByRole('button', { name: 'Add endpoint' }).click();
  await form.getByText('Must be an http or https URL (invalid_value)').waitFor();
  assert.equal(await form.getByLabel('URL').getAttribute('aria-invalid'), 'true');
  await form.getByLabel('URL').fill(`${receiver.url}/hooks/crm`);
  await form.getByLabel('call.ended').uncheck();
  await form.getByRole('button', { name: 'Add endpoint' }).click();
  await form.locator('[data-field="events"]').getByText('Must list at least one event type (invalid_value)').waitFor();
  assert.equal(await form.getByLabel('URL').getAttribute('aria-invalid'), null, 'the URL is fine now');
  assert.deepEqual(await companyApi('/api/company/webhooks'), [], 'refused twice, nothing registered');
  await form.getByLabel('Description (optional)').fill('CRM');
  await form.getByLabel('call.started').check();
  await form.getByLabel('call.ended').check();
  await form.getByRole('button', { name: 'Add endpoint' }).click();

  // The secret in full, this once, with Copy and the warning.
  const created = dialog(page);
  await created.getByRole('heading', { name: '✅ Webhook endpoint created' }).waitFor();
  await created.getByText('Copy the signing secret now: you will not see it again.').waitFor();
  crmSecret = await created.locator('#new-webhook-secret').textContent();
  assert.match(crmSecret, /^whsec_[A-Za-z0-9_-]{43}$/);
  await created.getByRole('button', { name: 'Copy secret' }).click();
  await created.getByRole('button', { name: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), crmSecret);
  await created.getByRole('button', { name: 'Done' }).click();
  const [crm] = await companyApi('/api/company/webhooks');
  assert.equal(crm.url, `${receiver.url}/hooks/crm`);
  assert.deepEqual(crm.events, ['call.started', 'call.ended']);
  const card = page.locator(`[data-webhook="${crm.id}"]`);
  await card.getByText('Active', { exact: true }).waitFor();
  await card.getByText(crm.secret, { exact: true }).waitFor();
  assert.match(crm.secret, /^whsec_•+/, 'masked from now on');
  assert.equal(await page.getByText(crmSecret).count(), 0, 'the full secret is gone from the page');

  // A second endpoint whose receiver is down: it will fail its deliveries.
  await page.getByRole('button', { name: '+ Add endpoint' }).click();
  await dialog(page).getByLabel('URL').fill(`${receiver.url}/hooks/down`);
  await dialog(page).getByLabel('Description (optional)').fill('Backup');
  await dialog(page).getByLabel('call.started').check();
  await dialog(page).getByRole('button', { name: 'Add endpoint' }).click();
  await dialog(page).getByRole('heading', { name: '✅ Webhook endpoint created' }).waitFor();
  await dialog(page).getByRole('button', { name: 'Done' }).click();
  await page.getByRole('heading', { name: 'Backup' }).waitFor();

  // Edit: the events change, the secret stays.
  await page.getByRole('button', { name: 'Edit CRM' }).click();
  assert.equal(await dialog(page).getByLabel('call.started').isChecked(), true);
  await dialog(page).getByLabel('call.failed').check();
  await dialog(page).getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('CRM saved.').waitFor();
  await card.getByText('call.failed', { exact: true }).waitFor();
  assert.deepEqual((await companyApi(`/api/company/webhooks/${crm.id}`)).events, ['call.started', 'call.ended', 'call.failed']);
  assert.deepEqual(await unlabelled(page), []);
});

test('a test call placed from the console is found in Calls with its timeline and transcript', async () => {
  await nav(page).getByRole('link', { name: 'Test Call' }).click();
  await heading(page, 'Test Your Chatbot');
  await page.getByLabel('Chatbot', { exact: true }).selectOption({ label: 'Trip Helper' });
  await page.getByRole('button', { name: '📞 Test Call' }).click();
  await waitForState(page, 'preCall');
  await page.locator('voice-call-widget').getByRole('button', { name: 'Start Call', exact: true }).click();
  await waitForState(page, 'inCall');
  const lines = () => page.locator('voice-call-widget').locator('.lines li').allTextContents();
  await eventually(async () => (await lines()).includes('You: Hi, can you hear me?'), { timeout: 20000, message: 'the caller line' });
  await eventually(async () => (await lines()).includes('Agent: Hello! How can I help you today?'), { message: 'the agent answer' });
  const sessionId = await page.evaluate(() => document.querySelector('voice-call-widget').voiceWidget.sessionId);
  await page.locator('voice-call-widget').getByRole('button', { name: 'End call' }).click();
  await waitForState(page, 'ended');
  await page.locator('#summary').getByText('completed').waitFor();
  await shoot(page, 'console-test-call');

  await page.getByRole('link', { name: 'Open this call in Calls' }).click();
  await page.getByRole('heading', { name: 'Timeline' }).waitFor();
  assert.match(page.url(), new RegExp(`/admin/calls/${sessionId}$`));
  const timeline = await page.locator('ol.timeline li strong').allTextContents();
  assert.deepEqual(timeline, ['Call created', 'Answered', 'Ended']);
  const transcript = await page.getByRole('list', { name: 'Transcript' }).locator('li').allTextContents();
  assert.ok(transcript.some((l) => /^\d+:\d\dCaller: Hi, can you hear me\?$/.test(l)), `${transcript}`);
  // The agent's line is stored as far as the caller heard it (the caller talked over it).
  assert.ok(transcript.some((l) => /^\d+:\d\dAgent: Hello!/.test(l)), `${transcript}`);
  // Transcript downloads and the recording player come with another branch's routes:
  // they show exactly when the API documents them.
  const paths = Object.keys((await (await fetch(`${stack.url}/api/openapi.json`)).json()).paths);
  const downloads = await page.getByRole('button', { name: /Download transcript/ }).count();
  assert.equal(downloads, paths.includes('/api/company/calls/{id}/transcript') ? 2 : 0);
  await shoot(page, 'console-call');

  // The history and its filters.
  await nav(page).getByRole('link', { name: 'Calls' }).click();
  await heading(page, 'Calls');
  const rows = page.locator('tbody tr');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().textContent(), /Trip Helper.*Website.*completed.*test/);
  await page.getByLabel('Source').selectOption('twilio');
  await page.getByText('No calls match these filters.').waitFor();
  assert.match(page.url(), /\/admin\/calls\?source=twilio$/);
  await page.getByLabel('Source').selectOption('');
  await page.getByLabel('Status').selectOption('completed');
  await rows.first().waitFor();
  const today = new Date();
  const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  await page.getByLabel('From').fill(day(today));
  await page.getByLabel('From').dispatchEvent('change');
  await eventually(async () => (await rows.count()) === 1 && (await page.getByText('1 call', { exact: true }).count()) === 1, { message: 'today’s call' });
  await page.getByLabel('From').fill(day(new Date(today.getTime() + 86400000)));
  await page.getByLabel('From').dispatchEvent('change');
  await page.getByText('No calls match these filters.').waitFor();
  await page.getByLabel('From').fill('');
  await page.getByLabel('From').dispatchEvent('change');
  await page.getByLabel('Chatbot').selectOption({ label: 'Trip Helper' });
  await rows.first().waitFor();
  await shoot(page, 'console-calls');
  assert.deepEqual(await unlabelled(page), []);
  // The company admin's page saw only the refusals the tests provoked (the bad Account
  // SID, the out-of-range silence timeout).
  const provoked = [/status of 422 .*\/api\/company\/integration-accounts\)$/, /status of 422 .*\/call-settings\)$/, /status of 422 .*\/api\/company\/webhooks\)$/];
  assert.deepEqual(problems(page, provoked), []);
});

/** True when `header` (`t=…,v1=…`) signs `body` with `secret` as docs/webhooks.md says. */
function signedWith(secret, header, body) {
  const fields = Object.fromEntries(header.split(',').map((part) => part.split('=', 2)));
  return createHmac('sha256', secret).update(`${fields.t}.${body}`).digest('hex') === fields.v1;
}

test("the test call's events are in the delivery log; Redeliver sends one again", async () => {
  const crm = (await stack.api('/api/company/webhooks', { headers: { 'X-Company-Id': acme.id } })).find((w) => w.description === 'CRM');
  await eventually(() => receiver.events('/hooks/crm', 'call.ended').length === 1, { message: 'call.ended at the CRM' });
  const [ended] = receiver.events('/hooks/crm', 'call.ended');
  assert.ok(signedWith(crmSecret, ended.headers['x-gateway-signature'], ended.body), 'signed with the secret the console showed');
  assert.equal(JSON.parse(ended.body).data.isTest, true);

  await nav(page).getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('link', { name: 'Delivery log of CRM' }).click();
  await heading(page, 'Delivery log of CRM');
  assert.match(page.url(), new RegExp(`/admin/webhooks/${crm.id}$`));
  const row = (type) => page.getByRole('row').filter({ has: page.locator('code', { hasText: type }) });
  await eventually(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    const delivered = (type) => row(type).getByText('Delivered', { exact: true }).count();
    return (await delivered('call.started')) === 1 && (await delivered('call.ended')) === 1;
  }, { message: 'both events delivered in the log' });
  // A cell with a disclosure reads as its summary (Chromium's innerText may or may not
  // include a closed <details>' content, depending on whether it was laid out).
  const cells = async (type) =>
    (await row(type).locator('td').evaluateAll((tds) => tds.map((td) => (td.querySelector('summary') ?? td).innerText))).slice(2, 5);
  assert.deepEqual(await cells('call.ended'), ['Delivered', '1', 'HTTP 200']);
  await row('call.ended').getByText(ended.headers['x-gateway-event-id']).waitFor();

  await row('call.ended').getByRole('button', { name: /^Redeliver call\.ended of / }).click();
  await page.getByText('Redelivery of call.ended queued.').waitFor();
  await eventually(() => receiver.events('/hooks/crm', 'call.ended').length === 2, { message: 'the redelivery at the CRM' });
  const again = receiver.events('/hooks/crm', 'call.ended')[1];
  assert.equal(again.headers['x-gateway-event-id'], ended.headers['x-gateway-event-id'], 'the same event, to deduplicate');
  await eventually(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    return (await cells('call.ended'))[1] === '2';
  }, { message: 'the second attempt in the log' });
  const attempts = row('call.ended').locator('summary');
  assert.equal(await attempts.getAttribute('aria-label'), '2 attempts: show them');
  await attempts.click();
  assert.equal(await row('call.ended').locator('ol.attempts li').count(), 2);
  await row('call.ended').getByText(/HTTP 200, \d+ ms/).first().waitFor();
  await page.getByLabel('Status').selectOption('failed');
  await page.getByText('No deliveries with this status.').waitFor();
  assert.match(page.url(), /\?status=failed$/);
  await page.getByLabel('Status').selectOption('');
  await row('call.ended').waitFor();
  await shoot(page, 'console-webhook-deliveries');
  assert.deepEqual(await unlabelled(page), []);
});

test('a failing endpoint is disabled with its reason, its notice is counted in the menu and dismissed, and the endpoint enabled again', async () => {
  const companyApi = (path) => stack.api(path, { headers: { 'X-Company-Id': acme.id } });
  const backup = (await companyApi('/api/company/webhooks')).find((w) => w.description === 'Backup');
  // Given up after its 3 s window: the endpoint is disabled and a notice opens.
  await eventually(async () => !(await companyApi(`/api/company/webhooks/${backup.id}`)).enabled, { message: 'the failing endpoint disabled' });
  assert.ok(receiver.events('/hooks/down', 'call.started').length >= 2, 'retried before giving up');
  await nav(page).getByRole('link', { name: 'Webhooks' }).click();
  const card = page.locator(`[data-webhook="${backup.id}"]`);
  await card.getByText('Disabled', { exact: true }).first().waitFor();
  const { disabledReason } = await companyApi(`/api/company/webhooks/${backup.id}`);
  assert.match(disabledReason, /503/);
  await card.getByText(disabledReason, { exact: false }).waitFor();
  await shoot(page, 'console-webhooks');

  // The menu counts the open notice.
  const notices = nav(page).getByRole('link', { name: 'Notices (1 open)' });
  await notices.waitFor();
  await notices.click();
  await heading(page, 'Notices');
  const notice = page.locator('[data-notice]');
  await notice.getByRole('heading', { name: 'Webhook endpoint disabled' }).waitFor();
  assert.deepEqual(await notice.locator('.badge').allTextContents(), ['Warning', 'Open']);
  const [open] = await companyApi('/api/company/notices?status=open');
  await notice.getByText(open.message).waitFor();
  await shoot(page, 'console-notices');
  assert.deepEqual(await unlabelled(page), []);
  await page.getByRole('button', { name: 'Dismiss: Webhook endpoint disabled' }).click();
  await page.getByText('No open notices: nothing is failing.').waitFor();
  await nav(page).getByRole('link', { name: 'Notices', exact: true }).waitFor();
  assert.equal((await companyApi(`/api/company/notices?status=all`))[0].status, 'dismissed');
  await page.getByLabel('Show').selectOption('all');
  await notice.locator('.badge', { hasText: 'Dismissed' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /^Dismiss/ }).count(), 0, 'nothing left to dismiss');

  // Its delivery log: the given-up delivery; Redeliver is refused until it is enabled.
  await notice.getByRole('link', { name: 'Open its delivery log' }).click();
  await heading(page, 'Delivery log of Backup');
  const row = page.getByRole('row').filter({ has: page.locator('code', { hasText: 'call.started' }) });
  assert.deepEqual((await row.locator('td').allInnerTexts()).slice(2, 3), ['Failed']);
  await row.getByText('HTTP 503', { exact: true }).waitFor();
  await row.getByRole('button', { name: /^Redeliver call\.started/ }).click();
  await page.getByRole('alert').getByText(/^The endpoint is disabled: enable it .*\(webhook_disabled\)$/).waitFor();
  receiver.down = false;
  await page.getByRole('button', { name: 'Enable Backup' }).click();
  await page.getByText('Backup enabled: deliveries waiting for it go out in order.').waitFor();
  await row.getByRole('button', { name: /^Redeliver call\.started/ }).click();
  await eventually(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    return (await row.getByText('Delivered', { exact: true }).count()) === 1;
  }, { message: 'the redelivery delivered' });
  assert.equal((await companyApi(`/api/company/webhooks/${backup.id}`)).enabled, true);
  assert.equal((await companyApi('/api/company/notices?status=all'))[0].status, 'dismissed', 'a dismissed notice stays dismissed');

  // Delete after a confirmation.
  await nav(page).getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('button', { name: 'Delete Backup' }).click();
  await dialog(page).getByRole('button', { name: 'Cancel' }).click();
  await page.getByRole('button', { name: 'Delete Backup' }).click();
  await dialog(page).getByRole('button', { name: 'Delete' }).click();
  await page.getByText('Backup deleted.').waitFor();
  assert.deepEqual((await companyApi('/api/company/webhooks')).map((w) => w.description), ['CRM']);
  const provoked = [/status of 409 .*\/redeliver\)$/];
  assert.deepEqual(problems(page, [...provoked, /status of 422 .*\/api\/company\/(integration-accounts|webhooks)\)$/, /status of 422 .*\/call-settings\)$/]), []);
});

test('the console works at tablet width and from the keyboard', async () => {
  const p = await newPage(browser, { viewport: { width: 820, height: 1180 } });
  await signIn(p, companyAdmin);
  await heading(p, 'Chatbots');
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px too wide)`);
  const box = await nav(p).boundingBox();
  assert.ok(box.width > 700, 'the navigation runs across the top');
  await p.goto(`${stack.url}/admin/integrations`);
  await heading(p, 'Integration Accounts');
  await shoot(p, 'console-tablet', { fullPage: false });
  // Keyboard: the skip link comes first and leads to the content; links are reachable.
  await p.keyboard.press('Tab');
  assert.equal(await p.evaluate(() => document.activeElement.textContent), 'Skip to content');
  await p.keyboard.press('Enter');
  assert.equal(await p.evaluate(() => document.activeElement.id), 'main');
  const outline = await nav(p).getByRole('link', { name: 'Calls' }).evaluate((el) => {
    el.focus();
    return getComputedStyle(el).outlineStyle;
  });
  assert.notEqual(outline, 'none', 'visible focus');
  await p.keyboard.press('Enter');
  await heading(p, 'Calls');
  assert.deepEqual(problems(p), []);
  await p.context().close();
});

test('a support agent sees neither Companies nor AI models, nor any configuration screen: only Tickets', async () => {
  await stack.createUser(agent);
  const p = await newPage(browser);
  await signIn(p, agent);
  // Their one screen here is the ticket inbox; calls are taken in the agent console.
  await heading(p, 'Tickets');
  assert.deepEqual(await navLinks(p), ['Tickets']);
  assert.equal(await p.getByRole('link', { name: 'Agent console' }).getAttribute('href'), '/agent');
  for (const [path, text] of [
    ['/admin/companies', 'Companies is not available to a support agent.'],
    ['/admin/ai-models', 'AI models is not available to a support agent.'],
    ['/admin/integrations', 'Integration accounts is not available to a support agent.'],
    ['/admin/webhooks', 'Webhooks is not available to a support agent.'],
    ['/admin/notices', 'Notices is not available to a support agent.'],
  ]) {
    await p.goto(`${stack.url}${path}`);
    await p.getByText(text).waitFor();
  }
  assert.equal(await p.getByRole('link', { name: 'Companies' }).count(), 0);
  assert.deepEqual(problems(p), []);
  await p.context().close();
});
