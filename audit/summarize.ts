// What of a request goes into the audit trail. The log is read by admins and kept for years, so
// no private key, HMAC or other secret may ever land in it, and a hostile peer must not be able
// to bloat it. Secrets and long strings are replaced by their length and sha256: enough to
// match a record against a file on disk, useless for recovering the secret.
import { createHash } from 'node:crypto';

export interface Digest {
  bytes: number;
  sha256: string;
}

const MAX_STRING_CHARS = 128;
const MAX_KEY_CHARS = 64;
const MAX_DEPTH = 8;
const MAX_ENTRIES = 64; // per array or object
const MAX_NODES = 512; // per summarized value

// Key names whose values are secrets or key material whatever their length: privkey, keyPem,
// hmacKeyFile contents, accountKey, clientSecret, password, token...
const SENSITIVE_KEY = /privkey|private|secret|hmac|pem|passw|token|key$/i;

function digest(data: string | Uint8Array): Digest {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function digestAnything(value: unknown): Digest {
  if (typeof value === 'string' || value instanceof Uint8Array) return digest(value);
  try {
    return digest(JSON.stringify(value) ?? String(value));
  } catch {
    return digest(String(value));
  }
}

/** A bounded, secret-free deep copy of value, fit for an audit record. */
export function summarizeParams(value: unknown): unknown {
  return summarize(value, 0, { nodesLeft: MAX_NODES });
}

function summarize(value: unknown, depth: number, budget: { nodesLeft: number }): unknown {
  if (--budget.nodesLeft < 0) return '[omitted: too large]';
  switch (typeof value) {
    case 'string':
      return value.length > MAX_STRING_CHARS || value.includes('-----BEGIN') ? digest(value) : value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  if (value instanceof Uint8Array) return digest(value);
  if (value instanceof ArrayBuffer) return digest(new Uint8Array(value));
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (depth >= MAX_DEPTH) return '[omitted: too deep]';
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ENTRIES).map((item) => summarize(item, depth + 1, budget) ?? null);
    if (value.length > MAX_ENTRIES) items.push(`[omitted: ${value.length - MAX_ENTRIES} more]`);
    return items;
  }
  const entries = Object.entries(value as object);
  const kept = entries.slice(0, MAX_ENTRIES).map(([key, item]): [string, unknown] => [
    summarizeKey(key),
    SENSITIVE_KEY.test(key) && item !== null && item !== undefined ? digestAnything(item) : summarize(item, depth + 1, budget),
  ]);
  if (entries.length > MAX_ENTRIES) kept.push(['[omitted]', `${entries.length - MAX_ENTRIES} more keys`]);
  // fromEntries defines own properties, so a "__proto__" key from the wire stays plain data.
  return Object.fromEntries(kept);
}

function summarizeKey(key: string): string {
  if (key.length <= MAX_KEY_CHARS && !key.includes('-----BEGIN')) return key;
  return `[key sha256:${digest(key).sha256}]`;
}
