// The ticket inbox (the admin console's Tickets screen) and the agent console at /agent,
// in headless Chromium against a real gateway. Callers are real widget calls from a host
// page whose fake microphone speaks every few seconds; the mock OpenAI server scripts
// `escalate_to_human` after the first turn and `take_message` after the next
// (mock-providers `--tool-call NAME@N=JSON`). With nobody available the AI takes a
// message: a ticket, found, closed and filtered in /admin/tickets. With agents signed in
// to /agent and available, the escalation is offered to both with its reason (ring and
// notification), the second agent's accept wins and the first sees it taken. The winner's
// media leg (agent/call.js: the agent's fake microphone, the widget's signaling on
// `join.wsUrl`) becomes active, the agent hears the caller (the page's RTCPeerConnection
// stats, read through call.js's `audioStats`: inbound audio packets growing, with energy),
// mutes and unmutes, and hangs up: the caller's widget ends with `agent_hangup`. An agent
// who is away is offered nothing until they are available again; the next call's agent
// hands the caller back to the AI, who stays on; a caller who hangs up while waiting
// closes the offer.
// UPDATE_DOCS_SCREENSHOT=1 copies the screenshots to docs/images/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startStack, startHostServer, hostPage, launchBrowser, newPage, eventually, screenshot, events, host, waitForState, REPO } from './harness.mjs';

const REASON = 'wants to talk about a refund';
const MESSAGE = { name: 'Ada Lovelace', callbackNumber: '+14155550100', message: 'Please call me back about my order.' };

let stack;
let site;
let browser;
const agent1 = { email: 'first@agents.test', password: 'first-agent-password', role: 'support_agent' };
const agent2 = { email: 'second@agents.test', password: 'second-agent-password', role: 'support_agent' };

before(async () => {
  stack = await startStack({
    name: 'agent-console',
    mockArgs: ['--tool-call', `escalate_to_human@1=${JSON.stringify({ reason: REASON })}`, '--tool-call', `take_message@1=${JSON.stringify(MESSAGE)}`],
  });
  await stack.companyApi(`/api/company/chatbots/${stack.chatbotId}/call-settings`, {
    method: 'PATCH',
    body: { greetingMessage: '', escalationEnabled: true, escalationTimeoutSeconds: 10 },
  });
  for (const who of [agent1, agent2]) await stack.createUser({ ...who, company: stack.companyId });
  site = await startHostServer({});
  site.pages['/'] = hostPage(stack);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await site?.close();
  await stack?.stop();
});

/** A widget call from the host page; resolves once it is in progress. */
async function placeCall() {
  const caller = await newPage(browser);
  await caller.goto(`${site.url}/`);
  const widget = caller.locator('voice-call-widget');
  await widget.locator('.launcher').click();
  await widget.getByRole('button', { name: 'Start Call', exact: true }).click();
  await caller.waitForSelector('voice-call-widget[data-state="inCall"]', { state: 'attached', timeout: 20000 });
  return caller;
}

/** The caller leaves: the page closes (the widget ends its call as the page unloads). */
async function hangUp(caller) {
  await caller.close({ runBeforeUnload: true });
  await caller.context().close();
}

/** A page that records the notifications and ring tones it makes (test-only observers). */
async function agentPage(viewport) {
  const p = await newPage(browser, viewport ? { viewport } : undefined);
  await p.context().grantPermissions(['notifications'], { origin: stack.url });
  await p.addInitScript(() => {
    const shown = [];
    Object.defineProperty(window, '__notifications', { value: shown });
    const Real = window.Notification;
    if (Real) {
      window.Notification = class extends Real {
        constructor(title, options) {
          shown.push({ title, body: options?.body });
          super(title, options);
        }
      };
    }
    let tones = 0;
    Object.defineProperty(window, '__tones', { get: () => tones });
    const create = AudioContext.prototype.createOscillator;
    AudioContext.prototype.createOscillator = function createOscillator() {
      tones += 1;
      return create.call(this);
    };
  });
  return p;
}

async function signIn(p, who, path) {
  await p.goto(`${stack.url}${path}`);
  await p.getByLabel('E-mail').fill(who.email);
  await p.getByLabel('Password').fill(who.password);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByText(`Signed in as ${who.email}`).waitFor();
}

const presence = (p) => p.locator('[data-presence]').getAttribute('data-presence');
async function goAvailable(p) {
  await p.getByLabel('Available', { exact: true }).check();
  await eventually(async () => (await presence(p)) === 'available', { message: 'the gateway confirms available' });
}
const offers = (p) => p.locator('[data-escalation]');
const leg = (p) => p.locator('[data-call]').getAttribute('data-leg');
/** The caller's audio as the agent's page receives it (agent/call.js `audioStats`). */
const heard = (p) => p.evaluate(async () => (await import('/agent/call.js')).audioStats());
const openOffers = (p) => p.locator('[data-escalation][data-closed="no"]');

/** The page's problems other than the 401 of the session probe and refusals provoked on purpose. */
const problems = (p, expected = []) => p.problems.filter((line) => ![/status of 401 .*\/api\/auth\/session\)$/, ...expected].some((pattern) => pattern.test(line)));

async function unlabelled(p) {
  return p.evaluate(() => {
    const named = (el) => el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim()) || el.closest('label');
    return [...document.querySelectorAll('input, select, textarea, button')].filter((el) => el.type !== 'hidden' && el.getClientRects().length && !named(el)).map((el) => el.outerHTML.slice(0, 120));
  });
}

async function shoot(p, name, options = { fullPage: true }) {
  await p.evaluate(() => document.getElementById('console-status')?.replaceChildren());
  const file = await screenshot(p, name, options);
  if (process.env.UPDATE_DOCS_SCREENSHOT) {
    await mkdir(join(REPO, 'docs', 'images'), { recursive: true });
    await copyFile(file, join(REPO, 'docs', 'images', `${name}.png`));
  }
}

test('with nobody available the AI takes a message; the ticket is in the inbox, closed, filtered and reopened', async () => {
  const caller = await placeCall();
  const ticket = await eventually(async () => (await stack.companyApi('/api/company/tickets'))[0], { timeout: 40000, message: 'a ticket from take_message' });
  await hangUp(caller);
  assert.equal(ticket.name, MESSAGE.name);

  // A support agent's only admin screen is Tickets, where they land.
  const p = await agentPage();
  await signIn(p, agent1, '/admin');
  await p.waitForURL(/\/admin\/tickets$/);
  await p.getByRole('heading', { level: 1, name: 'Tickets' }).waitFor();
  assert.deepEqual((await p.getByRole('navigation', { name: 'Console' }).getByRole('link').allTextContents()).map((t) => t.trim()), ['Tickets']);
  const row = p.locator(`tr[data-ticket="${ticket.id}"]`);
  await row.waitFor();
  const cells = (await row.locator('td').allInnerTexts()).map((t) => t.trim());
  assert.equal(cells[0], MESSAGE.name);
  assert.equal(cells[1], MESSAGE.callbackNumber);
  assert.equal(cells[2], MESSAGE.message);
  assert.match(cells[3], /just now|minute/);
  assert.equal(cells[4], 'Open');
  assert.equal(await row.locator('a[href^="tel:"]').getAttribute('href'), 'tel:+14155550100');
  assert.equal(await row.getByRole('link', { name: /Open the call/ }).count(), 0, 'agents cannot open the admin call page');
  assert.deepEqual(await unlabelled(p), []);
  await shoot(p, 'console-tickets');

  // Close it: it leaves the open list, and is in the closed one and in all.
  await row.getByRole('button', { name: `Close the ticket of ${MESSAGE.name}` }).click();
  await p.getByText('No open tickets').waitFor();
  assert.equal((await stack.companyApi(`/api/company/tickets/${ticket.id}`)).status, 'closed');
  await p.getByLabel('Show').selectOption('closed');
  await p.waitForURL(/\?status=closed$/);
  await row.waitFor();
  assert.equal((await row.locator('td').nth(4).innerText()).trim(), 'Closed');
  await p.getByLabel('Show').selectOption('all');
  await row.waitFor();
  await row.getByRole('button', { name: `Reopen the ticket of ${MESSAGE.name}` }).click();
  await eventually(async () => (await row.locator('td').nth(4).innerText()).trim() === 'Open', { message: 'reopened' });
  assert.equal((await stack.companyApi(`/api/company/tickets/${ticket.id}`)).status, 'open');

  // A company admin links each ticket to its call's page.
  const admin = await stack.createUser({ email: 'boss@agents.test', password: 'company-admin-password', role: 'company_admin', company: stack.companyId });
  const q = await newPage(browser);
  await signIn(q, admin, '/admin/tickets?status=all');
  await q.getByRole('link', { name: `Open the call of ${MESSAGE.name}'s message` }).click();
  await q.waitForURL(new RegExp(`/admin/calls/${ticket.callId}$`));
  assert.deepEqual(problems(p), []);
  assert.deepEqual(problems(q), []);
  await p.context().close();
  await q.context().close();
});

test('the agent console: available agents are offered the call; the first accept wins and joins its audio, the other sees it taken; away means no offers', async () => {
  const first = await agentPage();
  const second = await agentPage();
  await signIn(first, agent1, '/agent');
  await first.getByRole('heading', { level: 1, name: 'Waiting calls' }).waitFor();
  await eventually(async () => (await presence(first)) === 'away', { message: 'a console starts away once connected' });
  await first.getByText('You are away: choose Available to be offered calls.').waitFor();
  await goAvailable(first);
  await signIn(second, agent2, '/agent');
  await goAvailable(second);

  // A caller asks for a person: both consoles show the call with its reason, and ring.
  let caller = await placeCall();
  const offer = first.locator('[data-escalation]').first();
  await offer.waitFor({ timeout: 30000 });
  const escalationId = await offer.getAttribute('data-escalation');
  await offer.getByText(REASON).waitFor();
  await offer.getByRole('heading', { name: `A visitor on ${site.url}` }).waitFor();
  await offer.getByText('Website').waitFor();
  await offer.getByText(/^(Transcript so far \(\d+ lines?\)|No transcript yet\.)$/).waitFor();
  await second.locator(`[data-escalation="${escalationId}"]`).waitFor();
  await eventually(() => first.evaluate(() => window.__notifications.length === 1 && window.__tones >= 2), { message: 'a notification and a ring' });
  const [notification] = await first.evaluate(() => window.__notifications);
  assert.equal(notification.title, 'A caller is waiting');
  assert.match(notification.body, new RegExp(REASON));
  assert.match(await first.getByRole('link', { name: /Waiting calls/ }).textContent(), /\(1 waiting\)/, 'the menu counts it');
  assert.deepEqual(await unlabelled(first), []);
  await shoot(first, 'agent-console');

  // The second agent accepts first: 200, the join state, then the media leg connects.
  await second.getByRole('button', { name: `Accept the call of A visitor on ${site.url}` }).click();
  const onCall = second.locator('[data-call]');
  await onCall.waitFor();
  assert.ok(await onCall.getAttribute('data-call'), 'the call id of the 200');
  // The first sees it taken.
  await first.locator(`[data-escalation="${escalationId}"][data-closed="taken"]`).getByText('Another agent took this call.').waitFor();
  assert.equal(await first.getByRole('button', { name: /^Accept/ }).count(), 0);
  await eventually(async () => (await leg(second)) === 'active', { timeout: 30000, message: "the agent's leg active" });
  await onCall.getByText('On the call: you and the caller hear each other.').waitFor();
  // The conversation with the AI (the transcript so far, sent first on the leg's socket)
  // above the hand-over; the live lines below it.
  await onCall.locator('[data-part="handover"]').getByText('Handed over to you').waitFor();
  await onCall.locator('li.user[data-part="ai"]').first().waitFor();

  // The agent hears the caller: audio packets keep arriving, and they carry sound (the fake
  // microphone speaks 1.5 s in every 6).
  const hearing = (test, message, timeout) => eventually(async () => [await heard(second)].find((stats) => stats && test(stats)), { message, timeout });
  const start = await hearing((s) => s.packetsReceived > 0, 'inbound audio on the agent page');
  const later = await hearing((s) => s.packetsReceived > start.packetsReceived + 50 && s.totalAudioEnergy > 0, "the caller's voice on the agent page", 20000);
  assert.ok(later.bytesReceived > start.bytesReceived, JSON.stringify({ start, later }));
  assert.equal(await second.locator('audio').evaluate((audio) => audio.autoplay && audio.srcObject instanceof MediaStream && !audio.paused), true, "the caller's audio plays");
  // What the agent says (their fake microphone) is transcribed live, below the hand-over.
  await onCall.locator('li.human_agent[data-part="live"]').getByText(/^You: /).first().waitFor({ timeout: 20000 });
  const parts = await onCall.locator('ol.transcript li[data-part]').evaluateAll((items) => items.map((li) => li.dataset.part));
  const divider = parts.indexOf('handover');
  assert.ok(!parts.slice(0, divider).includes('live') && !parts.slice(divider).includes('ai'), parts.join(' '));

  // Mute and unmute: the button says which, the card shows it.
  await onCall.getByRole('button', { name: 'Mute', exact: true }).click();
  await onCall.getByRole('button', { name: 'Unmute', exact: true }).waitFor();
  await onCall.getByText(/Your microphone is muted\./).waitFor();
  assert.equal(await second.evaluate(() => document.activeElement?.textContent), 'Unmute', 'the focus stays on the toggle');
  await onCall.getByRole('button', { name: 'Unmute', exact: true }).click();
  await onCall.getByRole('button', { name: 'Mute', exact: true }).waitFor();
  await onCall.getByRole('button', { name: 'Hand back to AI' }).waitFor();
  assert.deepEqual(await unlabelled(second), []);
  await shoot(second, 'agent-console-accepted');

  // The agent hangs up: the call is over for the caller too.
  await onCall.getByRole('button', { name: 'Hang up' }).click();
  await eventually(async () => (await leg(second)) === 'ended', { message: "the agent's leg ended" });
  assert.equal(await onCall.getAttribute('data-reason'), 'agent_hangup');
  await onCall.getByText('You hung up: the call is over.').waitFor();
  await waitForState(caller, 'ended');
  const ended = (await events(caller)).find((e) => e.type === 'voicewidget:call-ended');
  assert.equal(ended?.detail.reason, 'agent_hangup', JSON.stringify(ended));
  assert.equal(await heard(second), null, 'the leg is closed');
  assert.equal(await second.locator('audio').count(), 0);
  await hangUp(caller);
  await second.getByRole('button', { name: 'Back to waiting calls' }).click();

  // Away: the next caller is offered to the second agent only.
  await first.getByLabel('Away', { exact: true }).check();
  await eventually(async () => (await presence(first)) === 'away', { message: 'the gateway confirms away' });
  assert.equal(await offers(first).count(), 0);
  caller = await placeCall();
  const next = second.locator('[data-escalation][data-closed="no"]').first();
  await next.waitFor({ timeout: 30000 });
  const nextId = await next.getAttribute('data-escalation');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await offers(first).count(), 0, 'no offers while away');
  // Available again: the call that waits is offered at once; this time the first agent wins.
  await goAvailable(first);
  const again = first.locator(`[data-escalation="${nextId}"]`);
  await again.waitFor();
  await again.getByRole('button', { name: /^Accept the call of/ }).click();
  await first.locator('[data-call]').waitFor();
  await second.locator(`[data-escalation="${nextId}"][data-closed="taken"]`).waitFor();
  // This agent hands the caller back to the AI: their leg ends, the caller's call goes on.
  await eventually(async () => (await leg(first)) === 'active', { timeout: 30000, message: "the first agent's leg active" });
  await first.getByRole('button', { name: 'Hand back to AI' }).click();
  await eventually(async () => (await leg(first)) === 'ended', { message: 'handed back' });
  assert.equal(await first.locator('[data-call]').getAttribute('data-reason'), 'transferred');
  await first.locator('[data-call]').getByText(/back to the AI: the call goes on without you/).waitFor();
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await host(caller).getAttribute('data-state'), 'inCall', 'the caller is still on the call, with the AI');
  await hangUp(caller);
  await first.getByRole('button', { name: 'Back to waiting calls' }).click();

  // A caller who hangs up while waiting closes the offer.
  caller = await placeCall();
  const waiting = openOffers(first).first();
  await waiting.waitFor({ timeout: 30000 });
  const lastId = await waiting.getAttribute('data-escalation');
  await hangUp(caller);
  await first.locator(`[data-escalation="${lastId}"][data-closed="cancelled"]`).getByText(/the caller hung up/).waitFor({ timeout: 15000 });

  // The ticket inbox is in the agent console too.
  await first.getByRole('link', { name: 'Tickets' }).click();
  await first.getByRole('heading', { level: 1, name: 'Tickets' }).waitFor();
  await first.getByText(MESSAGE.message).waitFor();
  assert.equal(await presence(first), 'available', 'the socket stays open on the Tickets screen');

  // Tablet width: one column, the status control above the content.
  await first.setViewportSize({ width: 820, height: 1000 });
  await first.getByRole('link', { name: /Waiting calls/ }).click();
  const box = await first.locator('fieldset.presence').boundingBox();
  assert.ok(box.width < 820 && box.y < 200, JSON.stringify(box));
  assert.deepEqual(problems(first), []);
  assert.deepEqual(problems(second), []);
});
