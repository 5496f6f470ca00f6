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

// --- the accepted call's leg (call.js) -------------------------------------------------

/**
 * The leg: `state` connecting, active, ended (`reason`) or failed (`code`, `message`,
 * `retryable`); `handedOver` once the gateway's first `state` came (the transcript so far
 * is before it); `request` the agent's pending `end` or `handback`; `lines` the transcript.
 */
export const newLeg = () => ({ state: 'connecting', handedOver: false, muted: false, speaking: 'none', request: null, reason: null, code: null, message: '', retryable: false, lines: [] });

/** The end reasons the console words itself. */
const ENDED = {
  agent_hangup: 'You hung up: the call is over.',
  transferred: 'You handed the caller back to the AI: the call goes on without you.',
  caller_hangup: 'The caller hung up.',
  network_lost: 'The call ended: an audio connection was lost.',
  connection_lost: 'The connection to the call was lost.',
};

/** Why joining failed. */
const FAILED = {
  microphone_denied: 'Your microphone is blocked: allow it for this site, then try again.',
  microphone: 'Your microphone could not be started.',
  invalid_token: 'The join link is not valid any more (it lasts 2 minutes).',
  session_ended: 'The call is not live any more, or another agent has joined it.',
  timeout: "The call's audio did not connect in time.",
  ice_failed: 'The audio connection could not be set up.',
};

/**
 * The leg after an event: the connection's `handover`, `transcript`, `speaking`, `active`,
 * `ended {reason, message}`, `failure {code, message, retryable}` (a call that ended before
 * the agent was connected is ended); the agent's `muted {muted}` and `request {what}`.
 */
export function legUpdate(leg, event) {
  const over = leg.state === 'ended' || leg.state === 'failed';
  switch (event.type) {
    case 'handover':
      return { ...leg, handedOver: true };
    case 'transcript':
      return { ...leg, lines: applyLine(leg.lines, event, leg.handedOver) };
    case 'speaking':
      return over ? leg : { ...leg, speaking: event.who ?? 'none' };
    case 'muted':
      return { ...leg, muted: event.muted === true };
    case 'request':
      return over ? leg : { ...leg, request: event.what };
    case 'active':
      return over ? leg : { ...leg, state: 'active', handedOver: true };
    case 'ended':
      return over ? leg : { ...leg, state: 'ended', reason: event.reason, message: event.message ?? '', speaking: 'none', request: null };
    case 'failure':
      if (over || ENDED[event.code]) return legUpdate(leg, { type: 'ended', reason: event.code });
      return { ...leg, state: 'failed', code: event.code, message: event.message ?? '', retryable: event.retryable === true && !['invalid_token', 'session_ended'].includes(event.code), speaking: 'none', request: null };
    default:
      return leg;
  }
}

/**
 * A `transcript` message applied to the lines (`{itemId, role, text, final, handedOver}`):
 * `text` is the whole line so far, so it replaces the line of the same item and role. The
 * AI's lines are before the hand-over, even one it finishes after.
 */
export function applyLine(lines, { role, text, final, itemId }, handedOver) {
  if (typeof text !== 'string' || typeof role !== 'string') return lines;
  const key = typeof itemId === 'string' ? itemId : '';
  const at = key ? lines.findIndex((l) => l.itemId === key && l.role === role) : -1;
  if (at < 0) return text.trim() ? [...lines, { itemId: key, role, text, final: final === true, handedOver: handedOver && role !== 'agent' }] : lines;
  return lines.map((l, i) => (i === at ? { ...l, text, final: l.final || final === true } : l));
}

/** What the leg's status line says. */
export function legText(leg) {
  if (leg.state === 'ended') return ENDED[leg.reason] ?? (leg.message || `The call ended (${leg.reason || 'no reason given'}).`);
  if (leg.state === 'failed') {
    const why = FAILED[leg.code] ?? `The call could not be joined: ${leg.message || leg.code}.`;
    return leg.retryable ? `${why} The caller waits on hold; if your audio does not join in time, the AI takes the call back.` : why;
  }
  if (leg.request === 'end') return 'Hanging up…';
  if (leg.request === 'handback') return 'Handing the caller back to the AI…';
  if (leg.state === 'active') return `On the call: you and the caller hear each other.${leg.muted ? ' Your microphone is muted.' : ''}`;
  return 'Accepted. Connecting you to the call…';
}

/** Who is talking now, in words ('' for nobody). */
export const speakingText = (who) => ({ user: 'The caller is speaking…', agent: 'You are speaking…' })[who] ?? '';

/** Who said a line of the call's transcript, as its agent reads it (their own lines are "You"). */
export const speakerText = (role) => (role === 'human_agent' ? 'You' : roleText(role));

/** What the agent can do: mute; hang up or hand back once the gateway took the leg; leave once it is over. */
export function legControls(leg) {
  const live = leg.state === 'connecting' || leg.state === 'active';
  return { mute: live && !leg.request, hangUp: live && leg.handedOver && !leg.request, handBack: live && leg.handedOver && !leg.request, retry: leg.state === 'failed' && leg.retryable, leave: !live };
}
