// The admin console at /admin (issue 12). Signs in with the session cookie
// (docs/auth.md), shows the screens the person's role allows for the active company
// (logic.js decides which), and routes /admin/… URLs on the client: each screen is a
// module in screens/ with `render(ctx)`, reading and writing only the documented REST API.

import { ConsoleApi } from './api.js';
import { h, failure } from './ui.js';
import { signInForm } from './signin.js';
import { navFor, homePath, parseRoute, SCREENS } from './logic.js';

const api = new ConsoleApi();
const meta = document.querySelector('meta[name="gateway-public-url"]')?.content ?? '';
const publicUrl = meta && !meta.includes('{{') ? meta.replace(/\/+$/, '') : location.origin;
const $ = (id) => document.getElementById(id);
const ROLE_NAMES = { master_admin: 'master admin', company_admin: 'company admin', support_agent: 'support agent' };
const COMPANY_KEY = 'voice-console.company';

const state = {
  me: null,
  company: null,
  apiPaths: new Set(),
  /** Functions the current screen asked to run when it is left. */
  leave: [],
  /** Bumped on each navigation, so a slow screen does not replace a newer one. */
  generation: 0,
  /** Open notices of the active company (the menu's count), null until read. */
  openNotices: null,
};
/** How often the menu's count of open notices is read again while the console is open. */
const NOTICES_EVERY_MS = 60_000;

api.onSignedOut = () => {
  if (state.me) showSignIn('Your session has ended: sign in again.', true);
};

// --- signing in ----------------------------------------------------------------------

function showSignIn(message = '', error = false) {
  leaveScreen();
  Object.assign(state, { me: null, company: null, openNotices: null });
  api.csrf = '';
  api.companyId = '';
  $('nav').hidden = true;
  $('account').hidden = true;
  $('company-area').replaceChildren();
  const { form, focus } = signInForm({ api, onSignedIn: (session) => signedIn(session), message, error });
  $('main').replaceChildren(form);
  document.title = 'Sign in — Voice Gateway';
  focus();
}

/** `focus`: move focus to the screen's heading (not on page load: Tab starts at the skip link). */
async function signedIn(session, { focus = true } = {}) {
  api.csrf = session.csrfToken;
  state.me = session.user;
  state.apiPaths = await api.apiPaths();
  const stored = sessionStorage.getItem(COMPANY_KEY);
  const companies = state.me.companies;
  state.company = companies.find((c) => c.id === stored) ?? companies[0] ?? null;
  api.companyId = state.company?.id ?? '';
  renderAccount();
  renderCompanyPicker();
  await route({ focus });
}

function renderAccount() {
  const { email, role } = state.me;
  const signOut = h('button', { type: 'button', class: 'btn', text: 'Sign out' });
  signOut.addEventListener('click', async () => {
    try {
      await api.post('/api/auth/logout');
    } catch {
      // Signed out either way: an ended session has nothing left to end.
    }
    showSignIn('Signed out.');
  });
  // Agents and company admins take escalated calls in the agent console.
  const agentConsole = role === 'master_admin' ? null : h('a', { href: '/agent', text: 'Agent console' });
  $('account').replaceChildren(h('p', {}, 'Signed in as ', h('strong', { text: email }), ` (${ROLE_NAMES[role] ?? role})`), agentConsole ?? '', signOut);
  $('account').hidden = false;
}

function renderCompanyPicker() {
  const area = $('company-area');
  const companies = state.me.companies;
  if (!companies.length) {
    area.replaceChildren(h('p', { class: 'muted', text: state.me.role === 'master_admin' ? 'No companies yet' : 'Not a member of any company' }));
    return;
  }
  if (companies.length === 1) {
    area.replaceChildren(h('p', {}, 'Company: ', h('strong', { text: companies[0].name })));
    return;
  }
  const select = h('select', { id: 'company-picker' }, ...companies.map((c) => h('option', { value: c.id, text: c.name })));
  select.value = state.company?.id ?? '';
  select.addEventListener('change', () => chooseCompany(select.value));
  area.replaceChildren(h('label', { for: 'company-picker', text: 'Company' }), select);
}

function chooseCompany(id) {
  state.company = state.me.companies.find((c) => c.id === id) ?? null;
  state.openNotices = null;
  api.companyId = state.company?.id ?? '';
  sessionStorage.setItem(COMPANY_KEY, api.companyId);
  const { screen, id: itemId } = parseRoute(location.pathname);
  const entry = SCREENS.find((s) => s.id === screen);
  // A chatbot or call of the previous company means nothing in this one.
  if (entry?.scope === 'company' && itemId) return navigate(`/admin/${screen}`);
  route({ focus: false });
}

/** Reads `/api/me` again (a company's call feature or the company list changed). */
async function refreshMe() {
  const me = await api.get('/api/me');
  state.me = me;
  state.company = me.companies.find((c) => c.id === state.company?.id) ?? me.companies[0] ?? null;
  api.companyId = state.company?.id ?? '';
  renderCompanyPicker();
  renderNav(navFor(me.role, state.company, state.apiPaths), parseRoute(location.pathname));
}

// --- navigation ----------------------------------------------------------------------

/** A menu entry's text: its label, and for Notices the count of open ones. */
function navLabel(s) {
  if (s.id !== 'notices' || !state.openNotices) return [s.label];
  return [s.label, h('span', { class: 'count', 'aria-hidden': 'true', text: state.openNotices }), h('span', { class: 'sr-only', text: ` (${state.openNotices} open)` })];
}

function renderNav(nav, route) {
  const item = (s) =>
    h('li', {}, h('a', { href: `/admin/${s.id}`, 'aria-current': s.id === route.screen ? 'page' : false }, ...navLabel(s)));
  const platform = nav.filter((s) => s.scope === 'platform');
  const company = nav.filter((s) => s.scope === 'company');
  const groups = [];
  if (platform.length) groups.push(h('h2', { text: 'Platform' }), h('ul', {}, ...platform.map(item)));
  if (company.length) groups.push(h('h2', { text: state.company.name }), h('ul', {}, ...company.map(item)));
  const admin = state.me.role !== 'support_agent';
  if (admin && state.company && !state.company.callEnabled) {
    groups.push(h('p', { class: 'note', text: `Voice calls are off for ${state.company.name}: call settings, integration accounts and Test Call appear once a master admin enables them.` }));
  }
  $('nav').replaceChildren(...groups);
  $('nav').hidden = !groups.length;
}

/**
 * Reads the active company's open notices again for the menu's count (after each
 * navigation, a dismissal, and every minute); silent on failure, the screens say why.
 */
async function refreshNotices() {
  const company = state.company?.id;
  if (!state.me || !navFor(state.me.role, state.company, state.apiPaths).some((s) => s.id === 'notices')) return;
  try {
    const open = await api.get('/api/company/notices?status=open&limit=200');
    if (!state.me || state.company?.id !== company) return;
    state.openNotices = open.length >= 200 ? '200+' : open.length;
    // In place: a keyboard user's focus in the menu stays where it is.
    const entry = SCREENS.find((s) => s.id === 'notices');
    document.querySelector('#nav a[href="/admin/notices"]')?.replaceChildren(...navLabel(entry));
  } catch {
    // The count waits for the next try; a lost session is handled by the client.
  }
}
setInterval(refreshNotices, NOTICES_EVERY_MS);

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  return route();
}

function leaveScreen() {
  for (const fn of state.leave.splice(0)) {
    try {
      fn();
    } catch (err) {
      console.warn('[console] leaving a screen:', err);
    }
  }
}

async function route({ focus = true } = {}) {
  if (!state.me) return;
  const generation = ++state.generation;
  leaveScreen();
  const parsed = parseRoute(location.pathname);
  const nav = navFor(state.me.role, state.company, state.apiPaths);
  renderNav(nav, parsed);
  refreshNotices();
  if (parsed.screen === null) {
    history.replaceState(null, '', homePath(nav) + location.search);
    return route({ focus });
  }
  const main = $('main');
  let content;
  const entry = nav.find((s) => s.id === parsed.screen);
  if (parsed.screen === 'welcome') content = welcome(nav);
  else if (!entry) content = unavailable(parsed.screen);
  else {
    main.replaceChildren(h('p', { class: 'empty', text: 'Loading…' }));
    try {
      const screen = await import(`./screens/${entry.module}.js`);
      if (generation !== state.generation) return;
      content = await screen.render(context(parsed));
    } catch (err) {
      if (!state.me) return; // signed out meanwhile
      console.warn('[console]', err);
      content = failure(err);
    }
  }
  if (generation !== state.generation || !state.me) return;
  main.replaceChildren(...[content].flat().filter((node) => node !== null && node !== undefined && node !== false));
  const title = main.querySelector('h1')?.textContent;
  document.title = `${title ? `${title} — ` : ''}Voice Gateway console`;
  if (focus) main.querySelector('h1')?.focus();
}

function context(route) {
  return {
    api,
    me: state.me,
    company: state.company,
    route,
    search: location.search,
    publicUrl,
    apiPaths: state.apiPaths,
    navigate,
    refreshMe,
    refreshNotices,
    /** The screens this person may open (links to others are left out). */
    screens: navFor(state.me.role, state.company, state.apiPaths).map((s) => s.id),
    onLeave: (fn) => state.leave.push(fn),
    /** Whether this screen is still the one shown (async work checks before drawing). */
    current: ((generation) => () => generation === state.generation)(state.generation),
  };
}

function welcome(nav) {
  const agent = state.me.role === 'support_agent';
  return h(
    'div',
    {},
    h('h1', { tabindex: '-1', text: 'Welcome' }),
    agent
      ? h('p', {}, 'You are signed in as a support agent. The configuration screens are for admins; escalated calls and the ticket inbox are in the ', h('a', { href: '/agent', text: 'agent console' }), '.')
      : h('p', { text: nav.length ? 'Choose a screen in the menu.' : 'Choose a company to work on.' }),
  );
}

function unavailable(screen) {
  const entry = SCREENS.find((s) => s.id === screen);
  let text = 'There is no such page in the console.';
  if (entry && !entry.roles.includes(state.me.role)) text = `${entry.label} is not available to a ${ROLE_NAMES[state.me.role] ?? state.me.role}.`;
  else if (entry && entry.scope === 'company' && !state.company) text = `${entry.label} acts on a company: you are not a member of any.`;
  else if (entry?.calls && !state.company?.callEnabled) {
    text = `${entry.label} is part of voice calls, which are not enabled for ${state.company.name}. A master admin can enable them under Companies → Features.`;
  } else if (entry) text = `${entry.label} is not available yet.`;
  return h('div', {}, h('h1', { tabindex: '-1', text: entry ? entry.label : 'Not found' }), h('p', { text }), h('p', {}, h('a', { href: '/admin', text: 'Go to the console home' })));
}

// Links inside the console are routed here, without reloading the page.
document.addEventListener('click', (event) => {
  const anchor = event.target.closest?.('a[href]');
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (anchor.target || anchor.hasAttribute('download') || anchor.getAttribute('href').startsWith('#')) return;
  if (anchor.origin !== location.origin || !anchor.pathname.startsWith('/admin')) return;
  event.preventDefault();
  navigate(anchor.pathname + anchor.search);
});
window.addEventListener('popstate', () => route());
// The skip link moves focus itself: following `#main` alone leaves it on the body.
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  $('main').focus();
});

// Signed in already (the cookie outlives the tab)? Otherwise the form.
try {
  await signedIn(await api.get('/api/auth/session'), { focus: false });
} catch (err) {
  if (err.status === 401) showSignIn();
  else $('main').replaceChildren(failure(err));
}
