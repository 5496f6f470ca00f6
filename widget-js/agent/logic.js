// The agent console's decisions, without the DOM or the network: the list of waiting
// calls kept from the socket's messages (docs/agent-protocol.md), what an accept's
// refusal means, how a caller and a transcript line read, the socket's address and its
// reconnection delays. Pure functions, unit-tested in Node (test/agent-units.test.mjs).

/**
 * One waiting call as the console shows it: the offer (`escalation` message fields) and,
 * once it is no longer open, why (`closed`: `taken`, `taken_by_you`, `accepted`,
 * `cancelled`, `gone`) with its words (`note`).
 * @typedef {{offer: object, closed: string|null, note: string}} Entry
 */

const CLOSED_NOTES = {
  taken: 'Another agent took this call.',
  taken_by_you: 'You accepted this call on another console.',
  accepted: 'You accepted this call.',
  cancelled: 'Closed: the caller hung up, or nobody accepted in time.',
  gone: 'This call no longer waits for an agent.',
};

/** The list after a socket message; unknown types and other escalations change nothing. */
export function applyMessage(entries, message, myId) {
  switch (message?.type) {
    case 'escalation': {
      if (!message.escalationId) return entries;
      const { type: _type, ...offer } = message;
      const entry = { offer, closed: null, note: '' };
      const at = entries.findIndex((e) => e.offer.escalationId === offer.escalationId);
      // Offered again (going away and back): fresh details, unless it closed meanwhile.
      if (at >= 0) return entries[at].closed ? entries : entries.map((e, i) => (i === at ? entry : e));
      return sortByWaiting([...entries, entry]);
    }
    case 'escalation_taken': {
      const mine = message.agentId && message.agentId === myId;
      // This console's own accept, announced before its answer arrived, is this console's.
      const accepting = entries.some((e) => e.offer.escalationId === message.escalationId && e.accepting);
      return close(entries, message.escalationId, mine ? (accepting ? 'accepted' : 'taken_by_you') : 'taken');
    }
    case 'escalation_cancelled':
      return close(entries, message.escalationId, 'cancelled');
    case 'presence':
      // Away: the gateway forgets what it showed and sends no more news of it.
      return message.status === 'away' ? [] : entries;
    default:
      return entries;
  }
}

/**
 * Marks an entry closed (`reason` one of the CLOSED_NOTES keys); an entry already closed
 * keeps its first reason (this console's own accept before the socket's `escalation_taken`).
 */
export function close(entries, escalationId, reason) {
  return entries.map((e) => (e.offer.escalationId === escalationId && !e.closed ? { ...e, closed: reason, note: CLOSED_NOTES[reason] ?? reason } : e));
}

/**
 * The list after reading `GET /api/agent/escalations?status=pending` (on (re)connecting):
 * the pending ones with fresh details, closed entries kept for their note, open entries
 * that are no longer pending dropped (they were taken or closed while disconnected).
 */
export function mergePending(entries, offers) {
  const pending = new Map(offers.map((o) => [o.escalationId, o]));
  const kept = entries.filter((e) => e.closed || pending.has(e.offer.escalationId));
  let next = kept.map((e) => (!e.closed && pending.has(e.offer.escalationId) ? { ...e, offer: pending.get(e.offer.escalationId) } : e));
  for (const offer of offers) {
    if (!next.some((e) => e.offer.escalationId === offer.escalationId)) next = [...next, { offer, closed: null, note: '' }];
  }
  return sortByWaiting(next);
}

/** Oldest waiting first (the caller who waited longest is served first). */
function sortByWaiting(entries) {
  return [...entries].sort((a, b) => Date.parse(a.offer.waitingSince) - Date.parse(b.offer.waitingSince));
}

/** The entries still waiting for an agent. */
export const openEntries = (entries) => entries.filter((e) => !e.closed);

/**
 * What a refused accept means: `{closed, text}` (`closed` as in `close`, null when the
 * call may still be accepted and trying again can help).
 */
export function acceptRefusal(err) {
  switch (err?.code) {
    case 'already_taken':
      return { closed: 'taken', text: 'Too late: another agent accepted this call first.' };
    case 'escalation_closed':
      return { closed: 'cancelled', text: 'This call is closed: the caller hung up, or nobody accepted in time.' };
    case 'not_found':
      return { closed: 'gone', text: 'This call is no longer waiting (it is not found in your company).' };
    case 'network':
      return { closed: null, text: 'The gateway could not be reached: try again.' };
    default:
      return { closed: null, text: `The call could not be accepted: ${err?.message || err?.code || 'unknown error'}.` };
  }
}

const SOURCES = { web: 'Website', twilio: 'Phone', whatsapp: 'WhatsApp' };

/** The channel of a call in words. */
export const sourceText = (source) => SOURCES[source] ?? (source || 'Unknown channel');

/** Who is calling: their number, or for website calls the page they called from. */
export function callerText(offer) {
  if (!offer.caller) return offer.source === 'web' ? 'A website visitor' : 'An unknown caller';
  if (offer.source === 'web') return `A visitor on ${offer.caller}`;
  return offer.caller;
}

const ROLES = { user: 'Caller', agent: 'AI', system: 'System', human_agent: 'Agent' };

/** Who said a transcript line. */
export const roleText = (role) => ROLES[role] ?? role;

/** How long someone has waited, in words ("45 s", "3 min 5 s"), at `now` (ms). */
export function waitedText(since, now = Date.now()) {
  const seconds = Math.max(0, Math.floor((now - Date.parse(since)) / 1000));
  if (!Number.isFinite(seconds)) return '';
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** The console socket's URL on the page's origin (`?companyId=` when one is picked). */
export function socketUrl(origin, companyId) {
  const url = new URL('/api/agent/ws', origin);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (companyId) url.searchParams.set('companyId', companyId);
  return url.toString();
}

/** Delay before reconnection attempt `n` (0-based): 1 s doubling to 30 s, with jitter from `random`. */
export function reconnectDelay(n, random = Math.random) {
  const base = Math.min(30_000, 1000 * 2 ** Math.min(n, 5));
  return Math.round(base * (0.75 + 0.5 * random()));
}

/** The console's own addresses: `/agent` (waiting calls) and `/agent/tickets`; anything else is not found. */
export function agentRoute(pathname) {
  const path = pathname.replace(/\/+$/, '');
  if (path === '/agent') return 'calls';
  if (path === '/agent/tickets') return 'tickets';
  return 'not-found';
}
