// Everything certsepctl prints passes through here. Much of it comes from peers: a CA's error
// detail relayed by acmed, a remote host's messages, audit records written by any daemon, names
// in a config. A terminal obeys control characters in that text (ESC and CSI sequences that
// move the cursor, rewrite the screen or the window title, or answer back), and bidi controls
// make a line read differently from what it contains. Human output shows them as \uXXXX; JSON
// output escapes them the same way (JSON.stringify escapes C0 only), so it stays valid JSON.

// C0 (but for what a caller allows), DEL, C1 (U+009B is CSI to some terminals), line and paragraph
// separators, and the bidi marks, embeddings, overrides and isolates.
const CONTROLS = '\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';
const ANY_CONTROL = new RegExp(`[${CONTROLS}]`, 'g');
const CONTROL_BUT_NEWLINE = new RegExp(`(?![\\n\\t])[${CONTROLS}]`, 'g');
const NOT_ESCAPED_BY_JSON = /[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** One line: every control character escaped, newlines and tabs too (a table cell, a message). */
export function printableLine(text: string): string {
  return text.replace(ANY_CONTROL, escape);
}

/** Lines of text: control characters escaped, but newlines and tabs kept. */
export function printableText(text: string): string {
  return text.replace(CONTROL_BUT_NEWLINE, escape);
}

/** JSON for --json: as JSON.stringify, with DEL, C1 and bidi controls escaped as well. */
export function printableJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(NOT_ESCAPED_BY_JSON, escape);
}

export function print(text: string): void {
  process.stdout.write(printableText(text));
}

export function printError(text: string): void {
  process.stderr.write(printableText(text));
}

export function printJson(value: unknown): void {
  process.stdout.write(`${printableJson(value)}\n`);
}
