// The status of each certificate: privd's view of what is installed, deployd's journal (results,
// backoff, the CA's window) and the due decision. Reads only; contacts privd, never the CA.
import type { Config } from '../config/schema.ts';
import type { CertStatus } from './api.ts';
import { decideDue } from './due.ts';
import { configuredCertificates, fetchPrivdStatus, installedCopies, type PrivdCertStatus } from './installed-state.ts';
import type { Journal } from './journal.ts';
import type { Call } from './peers.ts';

const DAY_MS = 86_400_000;

/** privd's entry without the leaf PEM and names it carries for deployd: `status --json` keeps its published schema. */
function publishedKeyType(entry: PrivdCertStatus['keyTypes'][number]): CertStatus['keyTypes'][number] {
  if (!entry.installed) return entry;
  const { leafPem: _leafPem, names: _names, ...installed } = entry.installed;
  return { ...entry, installed };
}

export async function certificateStatus(deps: { config: Config; journal: Journal; call: Call }, names: string[] | undefined): Promise<CertStatus[]> {
  const certs = configuredCertificates(deps.config, names);
  const privd = await fetchPrivdStatus(deps.call, certs);
  const now = new Date();
  return certs.map((cert): CertStatus => {
    const status = privd.get(cert.name);
    const record = deps.journal.get(cert.name);
    const copies = installedCopies(cert, status);
    const decision = decideDue(cert, copies, record.ari, now);
    const notAfters = copies.flatMap((c) => (c.notAfter ? [c.notAfter.getTime()] : []));
    const notAfter = notAfters.length === cert.keyTypes.length && notAfters.length > 0 ? Math.min(...notAfters) : undefined;
    return {
      cert: cert.name,
      domains: cert.domains,
      keyTypes: cert.keyTypes.map((keyType) => publishedKeyType(status?.keyTypes.find((k) => k.keyType === keyType) ?? { keyType, targets: [] })),
      ...(notAfter !== undefined ? { notAfter: new Date(notAfter).toISOString(), daysLeft: Math.floor(((notAfter - now.getTime()) / DAY_MS) * 10) / 10 } : {}),
      expired: notAfter === undefined ? false : notAfter <= now.getTime(),
      pending: status?.pending ?? false,
      next: { at: decision.at.toISOString(), reason: decision.reason, detail: decision.detail, due: decision.due },
      ...(record.lastSuccess ? { lastSuccess: record.lastSuccess } : {}),
      ...(record.lastFailure ? { lastFailure: record.lastFailure } : {}),
      ...(record.consecutiveFailures > 0 && record.nextAttempt ? { nextAttempt: record.nextAttempt } : {}),
      failing: record.consecutiveFailures > 0,
      consecutiveFailures: record.consecutiveFailures,
      renewals: record.renewals,
    };
  });
}
