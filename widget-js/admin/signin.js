// The sign-in form of the consoles (/admin and /agent, docs/auth.md): e-mail and
// password to `POST /api/auth/login`, the API's refusals in words. The session cookie is
// set by the gateway; the caller keeps the CSRF token of the answer in memory.

import { h, field, errorText } from './ui.js';

/**
 * The form; `onSignedIn(session)` gets the sign-in answer (`{user, csrfToken}`). `message`
 * shows on its status line (an ended session, a sign-out), as an error when `error`.
 */
export function signInForm({ api, onSignedIn, message = '', error = false, hint }) {
  const email = field({ label: 'E-mail', name: 'email', kind: 'email', attrs: { autocomplete: 'username', spellcheck: 'false', required: true } });
  const password = field({
    label: 'Password',
    name: 'password',
    kind: 'password',
    hint: hint ?? 'Sign in with your console account (a password is set with gateway user create … --password-stdin or gateway user passwd).',
    attrs: { autocomplete: 'current-password', required: true },
  });
  const note = h('p', { class: `message ${error ? 'error' : ''}`, role: 'status', text: message });
  const form = h(
    'form',
    { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: '-1', text: 'Sign in' }),
    email.row,
    password.row,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Sign in' })),
    note,
  );
  const say = (text, isError = false) => {
    note.textContent = text;
    note.classList.toggle('error', isError);
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    say('Signing in…');
    try {
      const session = await api.post('/api/auth/login', { email: email.control.value.trim(), password: password.control.value });
      await onSignedIn(session);
    } catch (err) {
      if (err.code === 'invalid_credentials') return say('Wrong e-mail or password.', true);
      if (err.code === 'rate_limited') return say('Too many sign-in attempts: try again later.', true);
      say(errorText(err), true);
    }
  });
  return { form, focus: () => email.control.focus() };
}
