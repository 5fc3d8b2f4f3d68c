// The status of each certificate: privd's view of what is installed, deployd's journal (results,
// backoff, the CA's window) and the due decision. Reads only; contacts privd, never the CA.
import type { CertificateConfig, Config } from '../config/schema.ts';
import type { CertStatus, HostStatus } from './api.ts';
import type { Chains, DeliveryStore } from './delivery-store.ts';
import { decideDue, type InstalledCopy } from './due.ts';
import type { Ari, Journal } from './journal.ts';
import { readLeaf } from './leaf.ts';
import { configuredCertificates, fetchPrivdStatus, installedCopies, type PrivdCertStatus } from './installed-state.ts';
import type { Call } from './peers.ts';

const DAY_MS = 86_400_000;

/** privd's entry without the leaf PEM and names it carries for deployd: `status --json` keeps its published schema. */
function publishedKeyType(entry: PrivdCertStatus['keyTypes'][number]): CertStatus['keyTypes'][number] {
  if (!entry.installed) return entry;
  const { leafPem: _leafPem, names: _names, ...installed } = entry.installed;
  return { ...entry, installed };
}

export async function certificateStatus(deps: { config: Config; journal: Journal; call: Call; store: DeliveryStore }, names: string[] | undefined): Promise<CertStatus[]> {
  const certs = configuredCertificates(deps.config, names);
  const privd = await fetchPrivdStatus(deps.call, certs);
  const now = new Date();
  return certs.map((cert): CertStatus => {
    const status = privd.get(cert.name);
    const record = deps.journal.get(cert.name);
    // A certificate of remote hosts is as due as its most due host (what each last confirmed).
    const { copies, ari } = cert.hosts.length > 0 ? mostDueHost(deps.store, cert, now) : { copies: installedCopies(cert, status), ari: record.ari };
    const decision = decideDue(cert, copies, ari, now);
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
      ...(cert.hosts.length > 0 ? { hosts: cert.hosts.map((host) => hostStatus(deps, cert, host)) } : {}),
    };
  });
}

function mostDueHost(store: DeliveryStore, cert: CertificateConfig, now: Date): { copies: InstalledCopy[]; ari: Ari | undefined } {
  const perHost = cert.hosts.map((host) => {
    const record = store.get(cert.name, host);
    return { copies: copiesOf(cert, record.delivered?.chains ?? {}), ari: record.ari };
  });
  const when = (h: (typeof perHost)[number]) => decideDue(cert, h.copies, h.ari, now);
  return perHost.reduce((a, b) => (when(b).at < when(a).at ? b : a));
}

function copiesOf(cert: CertificateConfig, chains: Chains): InstalledCopy[] {
  return cert.keyTypes.map((keyType): InstalledCopy => {
    const chain = chains[keyType];
    if (!chain) return { keyType, present: false, filesMatch: false };
    const leaf = readLeaf(chain.chainPem);
    return { keyType, present: true, filesMatch: true, serial: leaf.serial, notAfter: leaf.notAfter, notBefore: leaf.notBefore, names: leaf.names, leafPem: leaf.leafPem };
  });
}

/** A host's state from the delivery queue alone: status never opens an ssh connection. */
function hostStatus(deps: { config: Config; store: DeliveryStore }, cert: CertificateConfig, host: string): HostStatus {
  const record = deps.store.get(cert.name, host);
  const serials = (chains: Chains) => Object.values(chains).map((c) => c!.serial);
  const state = record.pending ? 'pending' : record.lastError ? 'failed' : record.delivered ? 'delivered' : 'never';
  const notAfters = record.delivered ? Object.values(record.delivered.chains).map((c) => c!.notAfter).sort() : [];
  return {
    host,
    address: deps.config.hosts[host]?.address ?? '?',
    state,
    ...(record.delivered ? { delivered: { at: record.delivered.at, serials: serials(record.delivered.chains), notAfter: notAfters[0]! } } : {}),
    ...(record.pending ? {
      pending: {
        since: record.pending.issuedAt,
        serials: serials(record.pending.chains),
        attempts: record.pending.attempts,
        ...(record.pending.gaveUp ? {} : { nextAttempt: record.pending.nextAttempt }),
      },
    } : {}),
    ...(record.lastError ? { lastError: record.lastError } : {}),
    ...(record.lastContact ? { lastContact: record.lastContact } : {}),
  };
}
