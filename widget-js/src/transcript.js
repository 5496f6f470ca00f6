// The live transcript: lines keyed by the server's `itemId`. Each `transcript` message
// carries the whole line so far, so a line is replaced, never appended to; `final`
// marks the stored version. Lines keep the order in which they first appeared.

import { strings, durationInWords } from './i18n.js';

export class Transcript {
  constructor() {
    /** @type {{id: number, itemId: string, role: 'user'|'agent', text: string, final: boolean}[]} */
    this.lines = [];
    this.nextId = 1;
  }

  /**
   * Applies a `transcript` message. Returns the line it changed and whether it is
   * new, or null for a message without text.
   */
  apply({ role, text, final, itemId }) {
    if (typeof text !== 'string' || (role !== 'user' && role !== 'agent')) return null;
    const key = typeof itemId === 'string' ? itemId : '';
    // Lines without an id are whole lines on their own.
    let line = key ? this.lines.find((l) => l.itemId === key && l.role === role) : undefined;
    const isNew = !line;
    if (!line) {
      if (!text.trim()) return null;
      line = { id: this.nextId++, itemId: key, role, text: '', final: false };
      this.lines.push(line);
    }
    line.text = text;
    line.final = line.final || final === true;
    return { line, isNew };
  }

  /** The stored (final) lines. */
  finalLines() {
    return this.lines.filter((l) => l.final && l.text.trim());
  }

  clear() {
    this.lines = [];
  }
}

/** "You" or "Agent". */
export function speakerLabel(role) {
  return role === 'user' ? strings.you : strings.agent;
}

/**
 * The downloadable transcript: a header (chatbot title, date, duration) and one
 * `You: …` / `Agent: …` line per final line.
 */
export function transcriptText({ title, startedAt, durationMs, lines }) {
  const date = formatDate(startedAt instanceof Date ? startedAt : new Date(startedAt ?? Date.now()));
  const header = [
    strings.transcriptFileTitle(title || 'Voice call'),
    strings.transcriptFileDate(date),
    strings.transcriptFileDuration(durationInWords(durationMs)),
  ];
  const body = lines.map((l) => `${speakerLabel(l.role)}: ${l.text.trim()}`);
  return [...header, '', ...body, ''].join('\n');
}

/** A file name like `call-transcript-2026-11-25-1403.txt` (local time). */
export function transcriptFileName(startedAt) {
  const d = startedAt instanceof Date ? startedAt : new Date(startedAt ?? Date.now());
  const pad = (n) => String(n).padStart(2, '0');
  return `call-transcript-${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}.txt`;
}

function formatDate(d) {
  const pad = (n) => String(n).padStart(2, '0');
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const zone = `${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())} (UTC${zone})`;
}
