// Test harness: a real gateway on local mock providers, a plain host page on another
// origin, and Debian's Chromium with a fake microphone. Builds nothing: it expects
// `cargo build --bins` to have been run (test.sh does), and says so otherwise.
//
//   const stack = await startStack({ mockArgs: ['--openai-reject', 'all'] });
//   const browser = await launchBrowser();
//   ...
//   await stack.stop();

import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createServer, request as httpRequest } from 'node:http';
import { mkdtemp, rm, writeFile, mkdir, readFile } from 'node:fs/promises';
import { createWriteStream, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const WIDGET_DIR = resolve(here, '..');
export const REPO = resolve(WIDGET_DIR, '..');
export const ARTIFACTS = join(WIDGET_DIR, 'artifacts');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const BIN = join(REPO, 'target', 'debug');

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function binary(name) {
  const path = join(BIN, name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: build the binaries first with \`cargo build --bins\` in ${REPO} (test.sh does this).`);
  }
  return path;
}

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stopChild(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** Resolves with the first line of `stream` that `pick` maps to a value. */
function waitForLine(child, stream, pick, what, timeoutMs = 20000) {
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: stream });
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}`)), timeoutMs);
    const onExit = (code) => finish(new Error(`${what}: the process exited (${code}) first`));
    function finish(err, value) {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.removeListener('line', onLine);
      err ? reject(err) : resolvePromise(value);
    }
    function onLine(line) {
      let value;
      try {
        value = pick(line);
      } catch {
        return;
      }
      if (value !== undefined) finish(null, value);
    }
    lines.on('line', onLine);
    child.once('exit', onExit);
  });
}

/**
 * Starts `mock-providers` and a `gateway serve --demo` on a fresh data directory, with
 * a master admin. `openai: false` leaves the OpenAI key out (the demo uses the echo
 * provider). Logs go to artifacts/logs/<name>-*.log.
 */
export async function startStack({ name = 'stack', mockArgs = [], openai = true, env = {} } = {}) {
  const gatewayBin = binary('gateway');
  const mockBin = binary('mock-providers');
  const dataDir = await mkdtemp(join(tmpdir(), 'voice-widget-test-'));
  const logDir = join(ARTIFACTS, 'logs');
  await mkdir(logDir, { recursive: true });
  const started = [];
  const stop = async () => {
    for (const child of started.reverse()) await stopChild(child);
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const mock = track(spawn(mockBin, mockArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } }));
    started.push(mock);
    mock.stderr.pipe(createWriteStream(join(logDir, `${name}-mocks.log`)));
    const mocks = await waitForLine(mock, mock.stdout, (line) => JSON.parse(line), 'the mock providers');

    const baseEnv = {
      ...process.env,
      GATEWAY_DATA_DIR: dataDir,
      GATEWAY_LOG_FORMAT: 'json',
      GATEWAY_PROVIDER_BACKOFF_MS: '20',
      GATEWAY_WIDGET_SESSIONS_PER_MINUTE: '1000',
      GATEWAY_RTC_BIND_IP: '127.0.0.1',
      RUST_LOG: 'info',
      ...env,
    };
    delete baseEnv.OPENAI_API_KEY;
    delete baseEnv.GATEWAY_PUBLIC_URL;
    delete baseEnv.DATABASE_URL;
    if (openai) {
      baseEnv.OPENAI_API_KEY = mocks.openai.api_key;
      baseEnv.OPENAI_REALTIME_URL = `${mocks.openai.ws_base_url}/realtime`;
    }
    // Connection tests of integration accounts go to the Twilio and Graph mocks.
    baseEnv.TWILIO_API_BASE_URL = mocks.twilio.base_url;
    baseEnv.META_GRAPH_BASE_URL = mocks.graph.base_url;
    // A master admin with a password (for the signed-in Test Call page) and an API token.
    const admin = { email: 'admin@widget.test', password: 'widget-test-password' };
    const created = promisify(execFile)(gatewayBin, ['user', 'create', '--email', admin.email, '--role', 'master_admin', '--password-stdin'], {
      env: baseEnv,
    });
    created.child.stdin.end(`${admin.password}\n`);
    const { stdout } = await created;
    const token = stdout.trim().split('\n').pop().trim();

    const gateway = track(spawn(gatewayBin, ['serve', '--demo', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'], env: baseEnv }));
    started.push(gateway);
    const log = createWriteStream(join(logDir, `${name}-gateway.log`));
    gateway.stdout.pipe(log);
    gateway.stderr.pipe(log);
    const address = await waitForLine(
      gateway,
      gateway.stderr,
      (line) => {
        const event = JSON.parse(line);
        return event.fields?.message === 'gateway listening' ? event.fields.address : undefined;
      },
      'the gateway to listen',
    );
    const url = `http://${address}`;
    const stack = { url, token, admin, dataDir, mocks, stop };
    /** Creates (or adds companies to) a user with a password, like `gateway user create`. */
    stack.createUser = async ({ email, password, role, company }) => {
      const args = ['user', 'create', '--email', email, '--role', role, '--password-stdin'];
      if (company) args.push('--company', company);
      const run = promisify(execFile)(gatewayBin, args, { env: baseEnv });
      run.child.stdin.end(`${password}\n`);
      await run;
      return { email, password };
    };
    stack.api = (path, options) => adminApi(url, token, path, options);
    const [company] = await stack.api('/api/admin/companies');
    stack.companyId = company.id;
    stack.companyApi = (path, options = {}) => stack.api(path, { ...options, headers: { 'X-Company-Id': company.id, ...options.headers } });
    const bots = await stack.companyApi('/api/company/chatbots');
    stack.chatbotId = bots.find((b) => b.chatbotType === 'call').id;
    stack.mockState = async () => (await fetch(mocks.openai.state_url)).json();
    return stack;
  } catch (err) {
    await stop();
    throw err;
  }
}

async function adminApi(base, token, path, { method = 'GET', body, headers = {} } = {}) {
  const response = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Serves HTML pages from a map of path → html on 127.0.0.1 (another origin than the gateway). */
export async function startHostServer(pages) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/favicon.ico') return res.writeHead(204).end();
    const page = pages[path];
    if (page === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(page);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}`, pages, close: () => new Promise((r) => server.close(r)) };
}

/**
 * An HTTP proxy in front of the gateway that records each request (method, path, body):
 * it sees what a page sends while it unloads, which the browser tools do not report.
 */
export async function startRecordingProxy(target) {
  const upstream = new URL(target);
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method, path: req.url, body: body.toString('utf8') });
      const forward = httpRequest(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
        (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', () => res.writeHead(502).end());
      forward.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const close = () => new Promise((r) => {
    server.close(r);
    server.closeAllConnections();
  });
  return { url: `http://127.0.0.1:${server.address().port}`, requests, close };
}

/** A plain host page with the embed snippet. */
export function hostPage(stack, { gateway = stack.url, retryBaseMs = 100, attributes = '', head = '', body = '' } = {}) {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Plain host page</title>${head}</head>
<body>
<h1>A shop</h1>
<p>Some content.</p>
${body}
<script src="${gateway}/widget/v1/call.js" data-chatbot-id="${stack.chatbotId}" data-retry-base-ms="${retryBaseMs}" ${attributes} async></script>
</body>
</html>`;
}

/**
 * A fake microphone: 48 kHz mono 16-bit PCM. 1 s of silence, 1.5 s of a loud
 * speech-like sound (harmonics of 150 Hz under a 4 Hz syllable envelope), then
 * `tailSeconds` of silence. Chromium loops the file.
 */
export function speechWav({ tailSeconds = 3.5 } = {}) {
  const rate = 48000;
  const seconds = 1 + 1.5 + tailSeconds;
  const samples = new Int16Array(Math.round(rate * seconds));
  const start = rate;
  const end = rate * 2.5;
  for (let i = start; i < end; i++) {
    const t = (i - start) / rate;
    const f0 = 150 * (1 + 0.05 * Math.sin(2 * Math.PI * 0.7 * t)); // a little intonation
    let v = 0;
    for (let k = 1; k <= 12; k++) v += Math.sin(2 * Math.PI * f0 * k * t) / k;
    const syllables = 0.55 + 0.45 * Math.abs(Math.sin(Math.PI * 4 * t));
    const fade = Math.min(1, t / 0.05, (1.5 - t) / 0.05);
    samples[i] = Math.round(Math.max(-1, Math.min(1, 0.45 * v * syllables * fade)) * 32767);
  }
  const data = Buffer.from(samples.buffer);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

/**
 * Headless Chromium (Debian's, never a downloaded one) with a fake microphone playing
 * a generated speech file. `denyMicrophone` leaves the fake permission UI out and
 * denies the prompt, as a user who says no.
 */
export async function launchBrowser({ denyMicrophone = false } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run scripts/ensure-browser-deps.sh (it installs Debian's chromium).`);
  }
  await mkdir(ARTIFACTS, { recursive: true });
  const wav = join(ARTIFACTS, 'fake-mic.wav');
  await writeFile(wav, speechWav());
  const args = [
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--autoplay-policy=no-user-gesture-required',
  ];
  args.unshift(denyMicrophone ? '--deny-permission-prompts' : '--use-fake-ui-for-media-stream');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/**
 * A page that records console errors and uncaught exceptions (`page.problems`) and
 * `voicewidget:*` DOM events (`await events(page)`).
 */
export async function newPage(browser, { viewport = { width: 1100, height: 820 } } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const where = message.location()?.url;
    page.problems.push(`console.error: ${message.text()}${where ? ` (${where})` : ''}`);
  });
  page.on('pageerror', (err) => page.problems.push(`uncaught: ${err.message}`));
  await page.addInitScript(() => {
    const seen = [];
    Object.defineProperty(window, '__widgetEvents', { value: seen, enumerable: false });
    for (const type of ['voicewidget:start-chat', 'voicewidget:call-ended']) {
      document.addEventListener(type, (event) => seen.push({ type, detail: event.detail }));
    }
  });
  return page;
}

export const events = (page) => page.evaluate(() => window.__widgetEvents);

/** The widget's host element and the state it shows. */
export const host = (page) => page.locator('voice-call-widget');
export const waitForState = (page, state, timeout = 20000) =>
  page.waitForSelector(`voice-call-widget[data-state="${state}"]`, { state: 'attached', timeout });

/** The remote (agent) and microphone levels measured by the widget (RMS, 0–1). */
export const audioLevels = (page) => page.evaluate(() => document.querySelector('voice-call-widget').voiceWidget.audioLevels());

/** Polls `fn` until it returns a truthy value. */
export async function eventually(fn, { timeout = 15000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${message} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export async function screenshot(page, name, options = {}) {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, ...options });
  return path;
}

export { readFile };

/**
 * The JSON examples of docs/widget-protocol.md: the session response, and the
 * client → gateway and gateway → client messages (one per line in their blocks).
 */
export async function protocolExamples() {
  const doc = await readFile(join(REPO, 'docs', 'widget-protocol.md'), 'utf8');
  const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1].trim());
  const section = (title) => {
    const start = doc.indexOf(title);
    if (start < 0) throw new Error(`docs/widget-protocol.md has no "${title}"`);
    const block = /```json\n([\s\S]*?)```/.exec(doc.slice(start));
    return block[1]
      .trim()
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line));
  };
  return {
    session: JSON.parse(blocks[0]),
    client: section('### Client → gateway'),
    server: section('### Gateway → client'),
  };
}

/**
 * Checks a message against the documented examples: an example of its `type` exists,
 * and every key it has is one the examples of that type use. A candidate's own keys are
 * checked against every documented candidate (both directions carry
 * `RTCIceCandidate.toJSON()`). Returns a list of problems (empty when it conforms).
 */
export function conformance(message, examples, allExamples = examples) {
  const same = examples.filter((e) => e.type === message.type);
  if (!same.length) return [`undocumented type ${JSON.stringify(message.type)}`];
  const keys = new Set(same.flatMap((e) => Object.keys(e)));
  const problems = Object.keys(message)
    .filter((k) => !keys.has(k))
    .map((k) => `${message.type}: undocumented key ${k}`);
  if (message.type === 'candidate' && message.candidate) {
    const candidates = allExamples.filter((e) => e.type === 'candidate' && e.candidate);
    const candidateKeys = new Set(candidates.flatMap((e) => Object.keys(e.candidate)));
    for (const k of Object.keys(message.candidate)) {
      if (!candidateKeys.has(k)) problems.push(`candidate: undocumented key ${k}`);
    }
  }
  return problems;
}
