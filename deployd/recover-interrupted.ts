// Before a run (and once at start): whatever the journal says was in flight belongs to a run that
// died (runs never overlap). Close its lease, settle privd's side of its install, and keep the
// chains it had already been issued, so the next attempt installs them instead of ordering again.
import type { Config } from '../config/schema.ts';
import { netdApi } from '../netd/api.ts';
import { privdApi } from '../privd/api.ts';
import type { Logger } from '../proto/log.ts';
import { fetchPrivdStatus } from './installed-state.ts';
import { markRenewed, type Journal } from './journal.ts';
import { normalizeSerial } from './leaf.ts';
import { closeLease, reusableChains } from './renew-certificate.ts';
import { toWireError, type Call } from './peers.ts';

export interface RecoveryDeps {
  config: Config;
  journal: Journal;
  call: Call;
  log: Logger;
}

export async function recoverInterrupted(deps: RecoveryDeps): Promise<void> {
  const { config, journal, log } = deps;
  const interrupted = config.certificates.filter((c) => journal.get(c.name).inFlight);
  if (interrupted.length === 0) return;
  log.info({ certs: interrupted.map((c) => c.name) }, 'recovering certificates whose last run was interrupted');
  await closeOrphanedLeases(deps, interrupted.filter((c) => c.exposure !== undefined).map((c) => c.name));
  const installing = interrupted.filter((c) => journal.get(c.name).inFlight!.installSent);
  const privd = installing.length > 0 ? await fetchPrivdStatus(deps.call, installing) : new Map();
  for (const cert of interrupted) {
    const inFlight = journal.get(cert.name).inFlight!;
    if (inFlight.installSent) {
      const status = privd.get(cert.name);
      const committed = cert.keyTypes.every((keyType) => {
        const installed = status?.keyTypes.find((k: { keyType: string }) => k.keyType === keyType)?.installed;
        const journaled = inFlight.keyTypes[keyType]?.serial;
        return installed !== undefined && journaled !== undefined && normalizeSerial(installed.serial) === journaled;
      });
      if (committed) {
        // The reload went through before the crash; only the journal had not heard of it.
        journal.update(cert.name, (record) => {
          markRenewed(record, Object.fromEntries(cert.keyTypes.map((k) => [k, inFlight.keyTypes[k]!.chainPem!])));
          delete record.inFlight;
        });
        log.info({ cert: cert.name }, 'the interrupted run had committed; recorded as renewed');
        continue;
      }
      if (status?.pending) await rollBack(deps, cert.name);
    }
    journal.update(cert.name, (record) => {
      const chains = reusableChains(record.inFlight!.keyTypes, cert);
      if (Object.keys(chains).length === 0 && !record.inFlight!.leaseId) delete record.inFlight;
      else record.inFlight = { ...record.inFlight!, installSent: false, keyTypes: chains };
    });
  }
}

/**
 * Leases the journal names, and any netd lease for an interrupted certificate (deployd may have
 * died between netd opening it and the journal recording its id).
 */
async function closeOrphanedLeases(deps: RecoveryDeps, certs: string[]): Promise<void> {
  if (certs.length === 0) return;
  const ids = new Map<string, string>();
  for (const cert of certs) {
    const id = deps.journal.get(cert).inFlight?.leaseId;
    if (id) ids.set(id, cert);
  }
  try {
    const { leases } = await deps.call(netdApi, 'lease.list', {});
    for (const lease of leases) if (certs.includes(lease.cert)) ids.set(lease.id, lease.cert);
  } catch (e) {
    deps.log.warn({ error: toWireError(e) }, 'cannot list netd leases; closing only the journaled ones');
  }
  for (const [id, cert] of ids) await closeLease(deps, cert, id);
}

async function rollBack(deps: RecoveryDeps, cert: string): Promise<void> {
  try {
    await deps.call(privdApi, 'deploy.rollback', { certs: [cert] });
    deps.log.info({ cert }, 'rolled back the install of an interrupted run');
  } catch (e) {
    deps.log.error({ cert, error: toWireError(e) }, 'cannot roll back the interrupted install; the next install joins it');
  }
}
