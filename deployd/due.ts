// When a certificate is due, and why. Pure: the caller gathers what is installed (privd's status
// with the installed leaves) and the CA's renewal window (ARI), this decides.
//
// Order of reasons: something missing or altered on disk is repaired now; names changed in the
// config mean a new certificate now; otherwise the CA's ARI window (a random instant inside it,
// RFC 9773 section 4.2) and renewAfterDays (rotation by age) can only make the date that
// renewBeforeDays (default: a third of the lifetime) gives earlier.
import type { CertificateConfig, KeyType } from '../config/schema.ts';
import type { DueReason } from './api.ts';
import type { Ari } from './journal.ts';
import { sameNames } from './leaf.ts';

const DAY_MS = 86_400_000;
/** Let's Encrypt's lifetime, assumed when only notAfter is known (a lineage deployd did not issue). */
const ASSUMED_LIFETIME_MS = 90 * DAY_MS;

export interface InstalledCopy {
  keyType: KeyType;
  /** privd has a committed version of this key type. */
  present: boolean;
  /** Every target file holds exactly the lineage's bytes. */
  filesMatch: boolean;
  serial?: string;
  notAfter?: Date;
  /** From the installed leaf privd reports, whoever issued it. */
  notBefore?: Date;
  names?: string[];
  leafPem?: string;
}

export interface DueDecision {
  due: boolean;
  at: Date;
  reason: DueReason;
  detail: string;
}

export function decideDue(cert: CertificateConfig, installed: readonly InstalledCopy[], ari: Ari | undefined, now: Date): DueDecision {
  const immediately = (reason: DueReason, detail: string): DueDecision => ({ due: true, at: now, reason, detail });
  for (const keyType of cert.keyTypes) {
    const copy = installed.find((c) => c.keyType === keyType);
    if (!copy?.present || !copy.notAfter) return immediately('missing', `no ${keyType} certificate is installed`);
    if (!copy.filesMatch) return immediately('mismatch', `installed ${keyType} files differ from the lineage (edited or missing)`);
    if (copy.names && !sameNames(copy.names, cert.domains)) {
      return immediately('names', `the config's names (${cert.domains.join(', ')}) differ from the certificate's (${copy.names.join(', ')})`);
    }
  }
  const candidates = installed
    .filter((copy) => cert.keyTypes.includes(copy.keyType))
    .map((copy) => renewalDateOf(cert, copy, ari));
  const earliest = candidates.reduce((a, b) => (b.at < a.at ? b : a));
  return { ...earliest, due: now.getTime() >= earliest.at.getTime() };
}

function renewalDateOf(cert: CertificateConfig, copy: InstalledCopy, ari: Ari | undefined): Omit<DueDecision, 'due'> {
  const notAfter = copy.notAfter!;
  const lifetimeMs = copy.notBefore ? notAfter.getTime() - copy.notBefore.getTime() : ASSUMED_LIFETIME_MS;
  const beforeMs = cert.renewBeforeDays !== undefined ? cert.renewBeforeDays * DAY_MS : lifetimeMs / 3;
  let best: Omit<DueDecision, 'due'> = {
    at: new Date(notAfter.getTime() - beforeMs),
    reason: 'expiry',
    detail: `${formatDays(beforeMs)} before notAfter ${notAfter.toISOString()}`,
  };
  // The CA's window may bring a renewal forward, never push it past the date above: a window that
  // reaches to the certificate's expiry (or, from a hostile CA, to 2100) must not let it run out.
  if (ari?.supported && ari.chosen && ari.serial === copy.serial && new Date(ari.chosen) < best.at) {
    best = { at: new Date(ari.chosen), reason: 'ari', detail: `inside the CA's renewal window ${ari.start} .. ${ari.end}` };
  }
  if (cert.renewAfterDays !== undefined && copy.notBefore) {
    const byAge = new Date(copy.notBefore.getTime() + cert.renewAfterDays * DAY_MS);
    if (byAge < best.at) best = { at: byAge, reason: 'age', detail: `${cert.renewAfterDays} days after issuance (renewAfterDays)` };
  }
  return best;
}

/** A random instant inside an ARI window, or now when the window has already opened past its end. */
export function chooseInsideWindow(start: Date, end: Date, now: Date, random = Math.random): Date {
  if (end <= now) return now;
  const from = Math.max(start.getTime(), now.getTime());
  return new Date(from + Math.floor(random() * (end.getTime() - from)));
}

function formatDays(ms: number): string {
  const days = ms / DAY_MS;
  return `${Number.isInteger(days) ? days : days.toFixed(1)} days`;
}
