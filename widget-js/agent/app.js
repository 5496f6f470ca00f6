// The agent console at /agent (issue 14, docs/agent-protocol.md "The agent console"):
// signs in with the session cookie like the admin console (docs/auth.md), keeps the
// console socket `GET /api/agent/ws` open (presence in; offers, taken and cancelled out),
// rings and notifies when a caller waits, accepts with
// `POST /api/agent/escalations/{id}/accept`, and shows the ticket inbox (the admin
// console's Tickets screen). The call's media is `call.js`'s business (loaded on the
// first accept); this page renders the leg it reports.

import { ConsoleApi } from '/admin/api.js';
import { h, field, button, badge, announce, dateTime, errorText, failure } from '/admin/ui.js';
import { signInForm } from '/admin/signin.js';
import { applyMessage, close, mergePending, openEntries, acceptRefusal, callerText, sourceText, roleText, waitedText, socketUrl, reconnectDelay, agentRoute, newLeg, legUpdate, legText, legControls, speakingText, speakerText } from './logic.js';
import { prepare, ring, notify, notificationState } from './alert.js';

const api = new ConsoleApi();
const $ = (id) => document.getElementById(id);
const ROLE_NAMES = { master_admin: 'master admin', company_admin: 'company admin', support_agent: 'support agent' };
const COMPANY_KEY = 'voice-agent.company';
/** How long a call that stopped waiting stays in the list with its note. */
const CLOSED_SHOWN_MS = 20_000;

const state = {
  me: null,
  company: null,
  socket: null,
  /** What the agent chose; the socket sends it on every (re)connection. */
  desired: 'away',
  /** What the gateway confirmed: `offline` (no socket), `away` or `available`. */
  confirmed: 'offline',
  attempt: 0,
  reconnectTimer: null,
  /** The waiting calls (logic.js entries). */
  entries: [],
  /** The accepted call: `{offer, callId, join, leg (call.js controls), view (logic.js leg)}`. */
  call: null,
  ringOn: true,
  view: 'calls',
  generation: 0,
};

api.onSignedOut = () => {
  if (state.me) showSignIn('Your session has ended: sign in again.', true);
};

// --- signing in ----------------------------------------------------------------------

function showSignIn(message = '', error = false) {
  disconnect();
  state.call?.leg?.leave();
  Object.assign(state, { me: null, company: null, entries: [], call: null, desired: 'away', confirmed: 'offline' });
  api.csrf = '';
  api.companyId = '';
  $('nav').hidden = true;
  $('account').hidden = true;
  $('company-area').replaceChildren();
  const { form, focus } = signInForm({
    api,
    onSignedIn: (session) => signedIn(session),
    message,
    error,
    hint: 'Support agents and company admins sign in with their console account.',
  });
  $('main').replaceChildren(form);
  document.title = 'Sign in — Agent console';
  focus();
}

async function signedIn(session, { focus = true } = {}) {
  api.csrf = session.csrfToken;
  state.me = session.user;
  const companies = state.me.companies;
  state.company = companies.find((c) => c.id === sessionStorage.getItem(COMPANY_KEY)) ?? companies[0] ?? null;
  api.companyId = state.company?.id ?? '';
  renderAccount();
  renderCompanyPicker();
  if (!state.company) {
    $('nav').hidden = true;
    $('main').replaceChildren(h('h1', { tabindex: '-1', text: 'No company' }), h('p', { text: 'You are not a member of any company: an admin adds you with gateway user create … --company.' }));
    return;
  }
  connect();
  await route({ focus });
}

function renderAccount() {
  const { email, role } = state.me;
  const signOut = button('Sign out', async () => {
    try {
      await api.post('/api/auth/logout');
    } catch {
      // Signed out either way.
    }
    showSignIn('Signed out.');
  });
  const admin = role === 'support_agent' ? null : h('a', { href: '/admin', text: 'Admin console' });
  $('account').replaceChildren(h('p', {}, 'Signed in as ', h('strong', { text: email }), ` (${ROLE_NAMES[role] ?? role})`), admin ?? '', signOut);
  $('account').hidden = false;
}

function renderCompanyPicker() {
  const companies = state.me.companies;
  if (companies.length <= 1) {
    $('company-area').replaceChildren(companies.length ? h('p', {}, 'Company: ', h('strong', { text: companies[0].name })) : '');
    return;
  }
  const select = h('select', { id: 'company-picker' }, ...companies.map((c) => h('option', { value: c.id, text: c.name })));
  select.value = state.company?.id ?? '';
  select.addEventListener('change', () => {
    state.company = companies.find((c) => c.id === select.value) ?? null;
    api.companyId = state.company?.id ?? '';
    sessionStorage.setItem(COMPANY_KEY, api.companyId);
    state.entries = [];
    state.call?.leg?.leave();
    state.call = null;
    disconnect();
    connect();
    route({ focus: false });
  });
  $('company-area').replaceChildren(h('label', { for: 'company-picker', text: 'Company' }), select);
}

// --- the console socket --------------------------------------------------------------

function connect() {
  clearTimeout(state.reconnectTimer);
  const socket = new WebSocket(socketUrl(location.origin, api.companyId));
  state.socket = socket;
  socket.addEventListener('open', () => {
    if (state.socket !== socket) return;
    state.attempt = 0;
    state.confirmed = 'away';
    if (state.desired === 'available') {
      sendPresence();
      loadPending();
    }
    renderNav();
  });
  socket.addEventListener('message', (event) => {
    if (state.socket !== socket) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    handleMessage(message);
  });
  socket.addEventListener('close', () => {
    if (state.socket !== socket) return;
    state.socket = null;
    state.confirmed = 'offline';
    renderNav();
    if (state.me) reconnectLater();
  });
}

/** Tries again after a growing delay; a lost session shows the sign-in form instead. */
function reconnectLater() {
  const delay = reconnectDelay(state.attempt++);
  state.reconnectTimer = setTimeout(async () => {
    try {
      await api.get('/api/auth/session');
    } catch (err) {
      if (err.status === 401) return; // onSignedOut showed the sign-in form
    }
    if (state.me && !state.socket) connect();
  }, delay);
}

function disconnect() {
  clearTimeout(state.reconnectTimer);
  const socket = state.socket;
  state.socket = null;
  state.confirmed = 'offline';
  socket?.close(1000, 'leaving');
}

function sendPresence() {
  if (state.socket?.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify({ type: 'presence', status: state.desired }));
}

/** On (re)connecting while available: the waiting calls, dropping those that closed meanwhile. */
async function loadPending() {
  try {
    const offers = await api.get('/api/agent/escalations?status=pending');
    if (state.desired !== 'available') return;
    state.entries = mergePending(state.entries, offers);
    renderList();
  } catch (err) {
    if (err.status !== 401) announce(`Could not list the waiting calls: ${errorText(err)}`, 'error');
  }
}

function handleMessage(message) {
  const before = state.entries;
  state.entries = applyMessage(state.entries, message, state.me?.id);
  switch (message.type) {
    case 'presence':
      state.confirmed = message.status;
      announce(message.status === 'available' ? 'You are available: waiting calls will be offered to you.' : 'You are away: no calls are offered to you.');
      renderNav();
      break;
    case 'escalation':
      if (!before.some((e) => e.offer.escalationId === message.escalationId)) alertAgent(message);
      break;
    case 'escalation_taken':
    case 'escalation_cancelled': {
      const entry = state.entries.find((e) => e.offer.escalationId === message.escalationId);
      if (entry && !before.find((e) => e.offer.escalationId === message.escalationId)?.closed) {
        announce(`${callerText(entry.offer)}: ${entry.note}`);
        forgetLater(message.escalationId);
      }
      break;
    }
    case 'error':
      announce(`The gateway refused a message: ${message.message} (${message.code})`, 'error');
      if (message.code === 'database_unavailable') setTimeout(sendPresence, 2000);
      break;
    default:
      break;
  }
  renderList();
}

function alertAgent(offer) {
  const who = callerText(offer);
  announce(`A caller is waiting: ${who}. ${offer.reason}`);
  if (state.ringOn) ring();
  notify({ title: 'A caller is waiting', body: `${who} (${sourceText(offer.source)}): ${offer.reason}`, tag: offer.escalationId });
}

function forgetLater(escalationId) {
  setTimeout(() => {
    state.entries = state.entries.filter((e) => e.offer.escalationId !== escalationId || !e.closed);
    renderList();
  }, CLOSED_SHOWN_MS);
}

// --- the menu: presence and the two screens ------------------------------------------

const STATE_TEXT = {
  available: 'Available: calls are offered to you.',
  away: 'Away: no calls are offered to you.',
  offline: 'Not connected: reconnecting…',
};

function renderNav() {
  if (!state.me || !state.company) return;
  const group = h('fieldset', { class: 'presence', 'aria-describedby': 'presence-state' }, h('legend', { text: 'Your status' }));
  for (const [value, label] of [
    ['available', 'Available'],
    ['away', 'Away'],
  ]) {
    const radio = h('input', { type: 'radio', name: 'presence', id: `presence-${value}`, value });
    radio.checked = state.desired === value;
    radio.addEventListener('change', () => setPresence(value));
    group.append(h('span', { class: 'radio' }, radio, h('label', { for: `presence-${value}`, text: label })));
  }
  const pending = state.desired !== state.confirmed && state.confirmed !== 'offline';
  group.append(h('p', { id: 'presence-state', class: `state ${state.confirmed}`, 'data-presence': state.confirmed, text: pending ? 'Telling the gateway…' : STATE_TEXT[state.confirmed] }));
  const ringBox = field({ label: 'Ring when a caller waits', name: 'ring', kind: 'checkbox', value: state.ringOn });
  ringBox.control.addEventListener('change', () => (state.ringOn = ringBox.control.checked));
  group.append(ringBox.row);
  if (state.desired === 'available' && notificationState() === 'denied') {
    group.append(h('p', { class: 'hint', text: 'Browser notifications are blocked for this site: the ring and this page still tell you.' }));
  }
  const waiting = openEntries(state.entries).length;
  const item = (href, label, view, count) =>
    h(
      'li',
      {},
      h('a', { href, 'aria-current': state.view === view ? 'page' : false }, label, count ? h('span', { class: 'count', 'aria-hidden': 'true', text: count }) : '', count ? h('span', { class: 'sr-only', text: ` (${count} waiting)` }) : ''),
    );
  // Keep the focus on the radio the agent just used.
  const focused = document.activeElement?.id;
  $('nav').replaceChildren(group, h('ul', {}, item('/agent', 'Waiting calls', 'calls', waiting), item('/agent/tickets', 'Tickets', 'tickets', 0)));
  $('nav').hidden = false;
  if (focused?.startsWith('presence-') || focused?.includes('ring')) (document.getElementById(focused) ?? $('nav').querySelector('[name=ring]'))?.focus();
}

function setPresence(value) {
  state.desired = value;
  if (value === 'available') {
    // This click is the user gesture browsers want before sound and notifications.
    prepare().then(() => renderNav());
    loadPending();
  } else {
    state.entries = [];
    renderList();
  }
  sendPresence();
  renderNav();
}

// --- waiting calls -------------------------------------------------------------------

function callsScreen() {
  const lead = 'Callers who asked for a person. The first agent to accept gets the call; the others see it taken.';
  return [
    h('div', { class: 'screen-header' }, h('div', {}, h('h1', { tabindex: '-1', text: 'Waiting calls' }), h('p', { class: 'lead', text: lead }))),
    h('div', { id: 'on-call' }),
    h('section', { 'aria-labelledby': 'waiting-title' }, h('h2', { id: 'waiting-title', class: 'sr-only', text: 'Callers waiting' }), h('div', { id: 'waiting', class: 'waiting' })),
  ];
}

function renderList() {
  renderNav();
  const list = $('waiting');
  if (!list) return;
  renderCall();
  const focusKey = document.activeElement?.closest?.('[data-escalation]') ? document.activeElement.dataset.focusKey : null;
  let empty = 'Nobody is waiting.';
  if (state.desired === 'away') empty = 'You are away: choose Available to be offered calls.';
  else if (state.confirmed === 'offline') empty = 'Not connected to the gateway: reconnecting…';
  list.replaceChildren(...(state.entries.length ? state.entries.map(card) : [h('p', { class: 'empty', text: empty })]));
  if (focusKey) list.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
}

function card(entry) {
  const { offer } = entry;
  const id = offer.escalationId;
  const titleId = `offer-${id}`;
  const who = callerText(offer);
  const accept = entry.closed
    ? null
    : button(entry.accepting ? 'Accepting…' : 'Accept', () => acceptCall(entry), 'primary', { 'aria-label': `Accept the call of ${who}`, 'data-focus-key': `accept-${id}`, disabled: entry.accepting || onCall() });
  const transcript = offer.transcript?.length
    ? h(
        'details',
        { open: true },
        h('summary', { text: `Transcript so far (${offer.transcript.length} line${offer.transcript.length === 1 ? '' : 's'})` }),
        h('ol', { class: 'lines' }, ...offer.transcript.map((line) => h('li', { class: line.role }, h('strong', { text: `${roleText(line.role)}: ` }), line.text))),
      )
    : h('p', { class: 'muted', text: 'No transcript yet.' });
  return h(
    'article',
    { class: `card ${entry.closed ? 'closed' : ''}`, 'aria-labelledby': titleId, 'data-escalation': id, 'data-closed': entry.closed ?? 'no' },
    h('header', {}, h('h2', { id: titleId, text: who }), h('span', { class: 'badges' }, badge(sourceText(offer.source), 'info'), entry.closed ? badge('Closed') : badge('Waiting', 'warn'))),
    h('p', { class: 'reason' }, h('span', { class: 'sr-only', text: 'Reason: ' }), offer.reason || 'No reason given'),
    h(
      'dl',
      { class: 'facts' },
      h('dt', { text: 'Waiting since' }),
      h('dd', {}, dateTime(offer.waitingSince, { seconds: true }), entry.closed ? '' : [' (', h('span', { class: 'waited', 'data-since': offer.waitingSince, text: waitedText(offer.waitingSince) }), ')']),
      offer.expiresAt ? [h('dt', { text: 'Offered until' }), h('dd', { text: dateTime(offer.expiresAt, { seconds: true }) })] : '',
    ),
    transcript,
    entry.note ? h('p', { class: `note ${entry.error ? 'error' : ''}`, role: entry.error ? 'alert' : null, text: entry.note }) : '',
    accept ? h('div', { class: 'actions' }, accept) : '',
  );
}

async function acceptCall(entry) {
  const id = entry.offer.escalationId;
  const update = (fn) => (state.entries = state.entries.map((e) => (e.offer.escalationId === id ? fn(e) : e)));
  update((e) => ({ ...e, accepting: true, note: '', error: false }));
  renderList();
  try {
    const accepted = await api.post(`/api/agent/escalations/${encodeURIComponent(id)}/accept`, {});
    state.entries = close(state.entries, id, 'accepted');
    forgetLater(id);
    startCall(entry.offer, accepted);
  } catch (err) {
    const refusal = acceptRefusal(err);
    if (refusal.closed) {
      state.entries = close(state.entries, id, refusal.closed);
      forgetLater(id);
    }
    update((e) => ({ ...e, accepting: false, note: refusal.text, error: true }));
    announce(refusal.text, 'error');
    renderList();
    $('waiting')?.querySelector(`[data-escalation="${CSS.escape(id)}"] .note`)?.setAttribute('tabindex', '-1');
  }
}

// --- the accepted call ---------------------------------------------------------------

/** Joining or on a call: no other can be accepted meanwhile. */
const onCall = () => ['connecting', 'active'].includes(state.call?.view.state);

function startCall(offer, accepted) {
  state.call?.leg?.leave();
  const call = { offer, callId: accepted.callId, join: accepted.join, leg: null, view: newLeg() };
  state.call = call;
  announce(`You accepted the call of ${callerText(offer)}. Connecting you to the call…`);
  renderList();
  $('on-call-title')?.focus();
  joinLeg(call);
}

/** Starts (or, after a failure, starts again) the call's media leg. */
async function joinLeg(call) {
  call.leg?.leave();
  call.leg = null;
  legChanged(call, newLeg());
  try {
    const { joinCall } = await import('./call.js');
    if (state.call === call) call.leg = joinCall(call.join, { onState: (view) => legChanged(call, view) });
  } catch (err) {
    legChanged(call, legUpdate(newLeg(), { type: 'failure', code: 'load', message: errorText(err), retryable: true }));
  }
}

/** What the leg reports: rendered, its turns announced. */
function legChanged(call, view) {
  if (state.call !== call) return;
  const was = call.view.state;
  call.view = view;
  if (view.state === was) return renderCall();
  if (view.state === 'active') announce(`You are on the call with ${callerText(call.offer)}.`);
  else if (view.state !== 'connecting') announce(legText(view), view.state === 'failed' ? 'error' : '');
  renderList();
}

function leaveCall() {
  state.call?.leg?.leave();
  state.call = null;
  renderList();
  $('main').querySelector('h1')?.focus();
}

/** The call's card: rebuilt when its controls change (the focus kept), the transcript updated in place. */
function renderCall() {
  const slot = $('on-call');
  if (!slot) return;
  const call = state.call;
  if (!call) return slot.replaceChildren();
  const { view } = call;
  const key = JSON.stringify([call.callId, view.state, view.request, view.muted, view.handedOver]);
  let card = slot.firstElementChild;
  if (card?.dataset.key !== key) {
    const focused = slot.contains(document.activeElement) ? document.activeElement : null;
    card = callCard(call);
    card.dataset.key = key;
    slot.replaceChildren(card);
    if (focused) {
      const same = focused.dataset.focusKey && card.querySelector(`[data-focus-key="${focused.dataset.focusKey}"]`);
      (same && !same.disabled ? same : $('on-call-title')).focus();
    }
  }
  card.querySelector('[data-slot=speaking]').textContent = speakingText(view.speaking);
  renderLines(card.querySelector('ol.transcript'), call);
}

function callCard(call) {
  const { offer, join, view } = call;
  const admin = state.me.role !== 'support_agent';
  const controls = legControls(view);
  const key = (name) => ({ 'data-focus-key': name });
  const actions = controls.leave
    ? [
        controls.retry && !(Date.parse(join?.expiresAt) <= Date.now()) ? button('Try again', () => joinLeg(call), 'primary', key('retry')) : '',
        button('Back to waiting calls', leaveCall, '', key('leave')),
      ]
    : [
        button(view.muted ? 'Unmute' : 'Mute', () => call.leg?.mute(!view.muted), '', { ...key('mute'), disabled: !controls.mute }),
        button('Hand back to AI', () => call.leg?.handBack(), '', { ...key('handback'), disabled: !controls.handBack }),
        button('Hang up', () => call.leg?.hangUp(), 'danger', { ...key('hangup'), disabled: !controls.hangUp }),
      ];
  return h(
    'section',
    { class: `card on-call ${view.state}`, 'aria-labelledby': 'on-call-title', 'data-call': call.callId, 'data-leg': view.state, 'data-reason': view.reason ?? view.code },
    h('header', {}, h('h2', { id: 'on-call-title', tabindex: '-1', text: `Your call: ${callerText(offer)}` })),
    h('p', { class: 'reason', text: offer.reason }),
    h('p', { role: 'status', class: view.state === 'failed' ? 'notice' : 'leg', 'data-slot': 'join-state', text: legText(view) }),
    h('p', { class: 'speaking', 'data-slot': 'speaking' }),
    h('div', { class: 'actions' }, ...actions),
    h('h3', { id: 'call-transcript-title', text: 'Transcript' }),
    h('ol', { class: 'lines transcript', tabindex: '0', 'aria-labelledby': 'call-transcript-title' }),
    h(
      'dl',
      { class: 'facts' },
      h('dt', { text: 'Call' }),
      h('dd', {}, admin ? h('a', { href: `/admin/calls/${encodeURIComponent(call.callId)}`, text: call.callId }) : h('code', { text: call.callId })),
      h('dt', { text: 'Channel' }),
      h('dd', { text: sourceText(offer.source) }),
      view.state === 'connecting' ? [h('dt', { text: 'Join before' }), h('dd', { text: dateTime(join?.expiresAt, { seconds: true }) })] : '',
    ),
  );
}

/** The AI's part of the conversation (the offer's until the leg's comes), the hand-over, the live lines. */
function renderLines(list, call) {
  const { view, offer } = call;
  const line = (l, part) => h('li', { class: `${l.role}${l.final === false ? ' partial' : ''}`, 'data-part': part }, h('strong', { text: `${speakerText(l.role)}: ` }), l.text);
  const history = view.lines.filter((l) => !l.handedOver);
  const before = (history.length ? history : (offer.transcript ?? [])).map((l) => line(l, 'ai'));
  const live = view.lines.filter((l) => l.handedOver).map((l) => line(l, 'live'));
  const handover = view.handedOver ? h('li', { class: 'handover', 'data-part': 'handover' }, h('span', { text: 'Handed over to you' })) : '';
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
  list.replaceChildren(...before, handover, ...live);
  if (!before.length && !live.length && !handover) list.append(h('li', { class: 'muted', text: 'No transcript yet.' }));
  if (atEnd) list.scrollTop = list.scrollHeight;
}

// --- navigation ----------------------------------------------------------------------

function navigate(path) {
  history.pushState(null, '', path);
  return route();
}

async function route({ focus = true } = {}) {
  if (!state.me || !state.company) return;
  const generation = ++state.generation;
  const view = agentRoute(location.pathname);
  state.view = view;
  renderNav();
  let content;
  if (view === 'calls') content = callsScreen();
  else if (view === 'tickets') {
    $('main').replaceChildren(h('p', { class: 'empty', text: 'Loading…' }));
    try {
      const tickets = await import('/admin/screens/tickets.js');
      content = await tickets.render({
        api,
        search: location.search,
        basePath: '/agent/tickets',
        // Company admins may open a call's page in the admin console.
        screens: state.me.role === 'support_agent' ? [] : ['calls'],
        current: () => generation === state.generation,
      });
    } catch (err) {
      if (!state.me) return;
      content = failure(err);
    }
  } else content = [h('h1', { tabindex: '-1', text: 'Not found' }), h('p', {}, 'There is no such page in the agent console. ', h('a', { href: '/agent', text: 'See the waiting calls' }))];
  if (generation !== state.generation || !state.me) return;
  $('main').replaceChildren(...[content].flat());
  if (view === 'calls') renderList();
  const title = $('main').querySelector('h1')?.textContent;
  document.title = `${title ? `${title} — ` : ''}Agent console`;
  if (focus) $('main').querySelector('h1')?.focus();
}

document.addEventListener('click', (event) => {
  const anchor = event.target.closest?.('a[href]');
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (anchor.target || anchor.origin !== location.origin || !anchor.pathname.startsWith('/agent')) return;
  event.preventDefault();
  navigate(anchor.pathname + anchor.search);
});
window.addEventListener('popstate', () => route());
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  $('main').focus();
});
// The waited times tick in place (re-rendering would move a keyboard user's focus).
setInterval(() => {
  for (const span of document.querySelectorAll('.waited[data-since]')) span.textContent = waitedText(span.dataset.since);
}, 1000);

try {
  await signedIn(await api.get('/api/auth/session'), { focus: false });
} catch (err) {
  if (err.status === 401) showSignIn();
  else $('main').replaceChildren(failure(err));
}
