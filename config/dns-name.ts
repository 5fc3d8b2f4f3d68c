// DNS names as ACME identifiers. A name from the config ends up in a CSR, in an ACME order and
// (for dns-01) in a zone update, so it must be an unambiguous LDH name before anything sees it.
import { domainToASCII } from 'node:url';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

// WHATWG host parsing (behind domainToASCII) percent-decodes and turns "0x7f.1" into an IPv4
// address, so only let letters, digits, '.', '-' and non-ASCII (IDN) characters reach it.
const ALLOWED_INPUT = /^(?:[A-Za-z0-9.-]|[^\x00-\x7f])+$/;

/** Whether an ASCII (already punycoded, lowercase) name is a valid hostname for a certificate. */
export function isValidAsciiDnsName(name: string): boolean {
  if (name === 'localhost') return true;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (labels.length < 2) return false;
  if (!labels.every((label) => LABEL.test(label))) return false;
  // RFC 3696 section 2: a top-level domain is never all-numeric; this keeps IPv4 literals out.
  return !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}

/**
 * The ASCII form of a DNS name as written in the config: IDNs become punycode (xn--),
 * letters become lowercase, a leading "*." wildcard label is kept. Null when not a valid name.
 */
export function toAsciiDnsName(raw: string): string | null {
  if (raw.length === 0 || raw.length > 1024) return null;
  const wildcard = raw.startsWith('*.');
  const rest = wildcard ? raw.slice(2) : raw;
  if (!ALLOWED_INPUT.test(rest)) return null;
  const ascii = domainToASCII(rest);
  if (!isValidAsciiDnsName(ascii)) return null;
  if (wildcard && ascii === 'localhost') return null;
  return wildcard ? `*.${ascii}` : ascii;
}
