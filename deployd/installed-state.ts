// What is installed, as privd reports it (committed versions, whether target files match, the
// installed leaves with their names and notBefore, the PEM for ARI): privd's lineage is the source
// of truth, not deployd's journal, which may be lost or may never have seen a lineage (imported,
// or installed by an admin). Also the CA's renewal window for those leaves (asked of acmed, cached
// in the journal until the CA's Retry-After).
import { acmedApi } from '../acmed/api.ts';
import type { CertificateConfig, Config } from '../config/schema.ts';
import { privdApi } from '../privd/api.ts';
import type { Logger } from '../proto/log.ts';
import type { ResultOut } from '../proto/api.ts';
import { RpcError } from '../proto/errors.ts';
import { DeploydErrorCode } from './api.ts';
import { chooseInsideWindow, type InstalledCopy } from './due.ts';
import type { Ari, Journal } from './journal.ts';
import { normalizeSerial, readLeaf } from './leaf.ts';
import { toWireError, type Call } from './peers.ts';

export type PrivdCertStatus = ResultOut<(typeof privdApi)['methods']['status']>['certs'][number];

/** privd's status of the configured certificates, by name (empty when none are configured). */
export async function fetchPrivdStatus(call: Call, certs: readonly CertificateConfig[]): Promise<Map<string, PrivdCertStatus>> {
  if (certs.length === 0) return new Map();
  const answer = await call(privdApi, 'status', { certs: certs.map((c) => c.name) });
  return new Map(answer.certs.map((c) => [c.cert, c]));
}

export function installedCopies(cert: CertificateConfig, privd: PrivdCertStatus | undefined): InstalledCopy[] {
  return cert.keyTypes.map((keyType): InstalledCopy => {
    const entry = privd?.keyTypes.find((k) => k.keyType === keyType);
    const installed = entry?.installed;
    if (!installed) return { keyType, present: false, filesMatch: false };
    return {
      keyType,
      present: true,
      filesMatch: entry.targets.every((t) => t.matches),
      serial: normalizeSerial(installed.serial),
      notAfter: new Date(installed.notAfter),
      notBefore: readLeaf(installed.leafPem).notBefore,
      names: installed.names,
      leafPem: installed.leafPem,
    };
  });
}

/**
 * The installed leaves become the ones the next order `replaces` (RFC 9773 section 5), also when
 * deployd's journal lost them or never had them.
 */
export function rememberInstalledLeaves(journal: Journal, cert: CertificateConfig, copies: readonly InstalledCopy[]): void {
  const issued = journal.get(cert.name).issued;
  const changed = copies.filter((c) => c.leafPem !== undefined && c.leafPem !== issued[c.keyType]?.leafPem);
  if (changed.length === 0) return;
  journal.update(cert.name, (record) => {
    for (const copy of changed) record.issued[copy.keyType] = { leafPem: copy.leafPem! };
  });
}

/** Where a renewal window is kept: the journal for this host's certificates, the delivery queue for a remote host's. */
export interface AriCache {
  get(): Ari | undefined;
  set(ari: Ari): void;
}

export function journalAriCache(journal: Journal, cert: string): AriCache {
  return { get: () => journal.get(cert).ari, set: (ari) => journal.update(cert, (r) => { r.ari = ari; }) };
}

/**
 * Asks acmed for the ARI window of the certificate's first key type's installed leaf when the
 * cached answer is stale. A failure keeps the old answer (or none): renewBeforeDays still applies.
 */
export async function refreshRenewalWindow(
  deps: { call: Call; log: Logger },
  cert: CertificateConfig,
  copies: readonly InstalledCopy[],
  now: Date,
  cache: AriCache,
): Promise<void> {
  const copy = copies.find((c) => c.present && c.leafPem !== undefined);
  if (!copy?.serial) return;
  const cached = cache.get();
  if (cached && cached.serial === copy.serial && new Date(cached.recheckAt) > now) return;
  const certPem = copy.leafPem!;
  try {
    const info = await deps.call(acmedApi, 'renewal.info', { cert: cert.name, certPem });
    if (!info.supported) {
      cache.set({ serial: copy.serial, supported: false, recheckAt: new Date(now.getTime() + 86_400_000).toISOString() });
      return;
    }
    const start = new Date(info.start);
    const end = new Date(info.end);
    const sameWindow = cached !== undefined && cached.serial === copy.serial && cached.start === info.start && cached.end === info.end;
    const chosen = sameWindow && cached.chosen ? cached.chosen : chooseInsideWindow(start, end, now).toISOString();
    const recheck = Math.max(info.retryAfterSeconds, 60) * 1000;
    cache.set({ serial: copy.serial, supported: true, start: info.start, end: info.end, chosen, recheckAt: new Date(now.getTime() + recheck).toISOString() });
  } catch (e) {
    deps.log.warn({ cert: cert.name, error: toWireError(e) }, 'no renewal window from acmed; using renewBeforeDays');
  }
}

export function configuredCertificates(config: Config, names: readonly string[] | undefined): CertificateConfig[] {
  if (!names || names.length === 0) return config.certificates;
  return names.map((name) => {
    const cert = config.certificates.find((c) => c.name === name);
    if (!cert) throw new RpcError(DeploydErrorCode.UNKNOWN_CERT, `no certificate named ${JSON.stringify(name)} in the config (configured: ${config.certificates.map((c) => c.name).join(', ') || 'none'})`);
    return cert;
  });
}
