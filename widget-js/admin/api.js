// The console's client of the gateway's REST API (docs/api.md), signed in with the
// session cookie (docs/auth.md): every request carries the cookie, changes also the
// session's CSRF token (kept in memory only), and company routes the active company.
// JSON goes through the widget's `request` (one way to read the gateway's errors).

import { request, ApiError } from '/widget/v1/api.js';

export { ApiError };

export class ConsoleApi {
  constructor() {
    this.csrf = '';
    this.companyId = '';
    /** Called when a request finds the session over (401): the console shows sign-in. */
    this.onSignedOut = () => {};
    this.paths = null;
  }

  headers(method, extra = {}) {
    const headers = { ...extra };
    if (this.companyId) headers['X-Company-Id'] = this.companyId;
    if (method !== 'GET' && this.csrf) headers['X-CSRF-Token'] = this.csrf;
    return headers;
  }

  /** A JSON request; `ApiError` on refusal (a 401 also signs the console out). */
  async json(path, { method = 'GET', body, signal, headers } = {}) {
    try {
      return await request(path, { method, body, signal, credentials: 'same-origin', headers: this.headers(method, headers) });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && !path.startsWith('/api/auth/')) this.onSignedOut();
      throw err;
    }
  }

  get(path, options) {
    return this.json(path, options);
  }
  post(path, body, options = {}) {
    return this.json(path, { ...options, method: 'POST', body });
  }
  patch(path, body) {
    return this.json(path, { method: 'PATCH', body });
  }
  put(path, body) {
    return this.json(path, { method: 'PUT', body });
  }
  delete(path) {
    return this.json(path, { method: 'DELETE' });
  }

  /**
   * A binary or text answer (a voice preview, a transcript download) as a Blob. Plain
   * `<audio src>` and `<a href>` cannot send `X-Company-Id`, which master admins need.
   */
  async blob(path) {
    let response;
    try {
      response = await fetch(path, { credentials: 'same-origin', headers: this.headers('GET') });
    } catch {
      throw new ApiError(0, 'network', 'The gateway could not be reached.');
    }
    if (!response.ok) {
      const error = (await response.json().catch(() => null))?.error ?? {};
      if (response.status === 401) this.onSignedOut();
      throw new ApiError(response.status, error.code || `http_${response.status}`, error.message, { field: error.field });
    }
    return response.blob();
  }

  /**
   * The API's documented paths (`GET /api/openapi.json`), read once: screens that come
   * with other work (transcript downloads, recordings, tickets…) appear when it lists them.
   */
  async apiPaths() {
    if (!this.paths) {
      this.paths = request('/api/openapi.json', { credentials: 'same-origin' })
        .then((doc) => new Set(Object.keys(doc?.paths ?? {})))
        .catch(() => new Set());
    }
    return this.paths;
  }
}
