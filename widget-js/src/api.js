// The gateway's public widget API (docs/widget-protocol.md): settings, sessions,
// hang-up and rating. Errors become `ApiError`s that say whether trying again may help.

export class ApiError extends Error {
  constructor(status, code, message, { retryable = false, field } = {}) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryable = retryable;
    this.field = field;
  }
}

/** Refusals that calling again cannot fix (the rest, and network failures, may pass). */
const FINAL_CODES = new Set([
  'not_found',
  'calls_disabled',
  'not_a_call_chatbot',
  'origin_not_allowed',
  'voice_unavailable',
  'unauthorized',
  'forbidden',
  'company_required',
  'invalid_value',
]);

/**
 * `fetch` returning parsed JSON (or null for 204), throwing `ApiError`. Without cookies
 * unless `credentials` says otherwise (the signed-in Test Call page).
 */
export async function request(url, { method = 'GET', body, headers = {}, signal, credentials = 'omit' } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method,
      signal,
      headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials,
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The call service could not be reached.', { retryable: true });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error ?? {};
    const code = error.code || `http_${response.status}`;
    const retryable = !FINAL_CODES.has(code) && (response.status >= 500 || response.status === 429 || response.status === 408);
    throw new ApiError(response.status, code, error.message, { retryable, field: error.field });
  }
  return data;
}

export class GatewayApi {
  /** @param {string} base the gateway's origin (and path prefix), without a trailing slash */
  constructor(base) {
    this.base = base.replace(/\/+$/, '');
  }

  chatbot(chatbotId, signal) {
    return request(`${this.base}/api/widget/chatbots/${encodeURIComponent(chatbotId)}`, { signal });
  }

  openSession(chatbotId, signal) {
    return request(`${this.base}/api/widget/call/session`, { method: 'POST', body: { chatbotId }, signal });
  }

  endCall(sessionId, token) {
    return request(`${this.base}/api/widget/call/${encodeURIComponent(sessionId)}/end`, {
      method: 'POST',
      body: { token },
    });
  }

  /**
   * Ends the call while the page unloads: a keep-alive fetch, which outlives the page.
   * (Not `sendBeacon`: a beacon is sent with credentials, which the gateway's wildcard
   * CORS answer does not allow for a JSON body, so the browser would block it.)
   */
  endCallOnUnload(sessionId, token) {
    const url = `${this.base}/api/widget/call/${encodeURIComponent(sessionId)}/end`;
    fetch(url, {
      method: 'POST',
      keepalive: true,
      credentials: 'omit',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token }),
    }).catch(() => {});
  }

  rate(sessionId, token, rating, comment) {
    const body = { token, rating };
    if (comment && comment.trim()) body.comment = comment.trim();
    return request(`${this.base}/api/widget/call/${encodeURIComponent(sessionId)}/rating`, { method: 'POST', body });
  }
}
