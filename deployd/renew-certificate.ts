// One certificate's pipeline up to the point where only a reload is missing:
//   keyd csr.create → netd lease.open (if the certificate has an exposure) → acmed order.issue
//   → lease.close (always) → privd deploy.install per key type → privd deploy.check.
// The reload is batched by the run (renewal-run.ts): each service once, after every certificate.
// Each step is journaled before it has effects elsewhere; an issued chain stays in the journal
// until committed, so a run that dies after the order installs that chain next time instead of
// ordering again.
import { acmedApi } from '../acmed/api.ts';
import type { CertificateConfig, Config, KeyType } from '../config/schema.ts';
import { keydApi } from '../keyd/api.ts';
import { netdApi } from '../netd/api.ts';
import { CHAIN_REFUSALS, PrivdErrorCode, privdApi } from '../privd/api.ts';
import type { Logger } from '../proto/log.ts';
import type { Step, WireError } from './api.ts';
import { crashPoint } from './crash-hook.ts';
import type { Journal, KeyTypeProgress } from './journal.ts';
import { readLeaf, sameNames } from './leaf.ts';
import { toWireError, type Call } from './peers.ts';
import type { ProgressLog } from './progress-log.ts';

export interface PipelineContext {
  config: Config;
  journal: Journal;
  call: Call;
  progress: ProgressLog;
  log: Logger;
  runId: string;
  staging: boolean;
}

export interface IssuedChain {
  keyType: KeyType;
  serial: string;
  notAfter: string;
  reusedOrder: boolean;
}

export type PipelineOutcome =
  | { ok: true; issued: IssuedChain[] }
  | { ok: false; step: Step; error: WireError; issued: IssuedChain[] };

// keyd no longer has the key the chain was issued for (or has a newer one): only a new order helps.
const KEY_GONE = new Set(['E_KEY_UNAVAILABLE', 'E_NO_KEY', PrivdErrorCode.KEY_NOT_CURRENT]);

export async function renewCertificate(ctx: PipelineContext, cert: CertificateConfig): Promise<PipelineOutcome> {
  const first = await runPipeline(ctx, cert);
  if (first.ok || !first.issued.some((c) => c.reusedOrder) || !KEY_GONE.has(first.error.code)) return first;
  ctx.log.warn({ cert: cert.name, error: first.error }, 'the journaled chain cannot be installed; ordering anew');
  return runPipeline(ctx, cert);
}

async function runPipeline(ctx: PipelineContext, cert: CertificateConfig): Promise<PipelineOutcome> {
  const { journal, call, progress, runId } = ctx;
  const reusable = reusableChains(journal.get(cert.name).inFlight?.keyTypes ?? {}, cert);
  journal.update(cert.name, (record) => {
    record.inFlight = { runId, startedAt: new Date().toISOString(), installSent: false, keyTypes: reusable };
  });
  const issued: IssuedChain[] = Object.entries(reusable).map(([keyType, p]) => ({
    keyType: keyType as KeyType, serial: p.serial!, notAfter: p.notAfter!, reusedOrder: true,
  }));
  let step: Step = 'csr';
  const begin = (next: Step, keyType?: KeyType, detail?: string) => {
    step = next;
    progress.note(runId, cert.name, next, 'start', detail, keyType);
  };
  try {
    const toOrder = cert.keyTypes.filter((keyType) => !reusable[keyType]);
    for (const keyType of cert.keyTypes.filter((k) => reusable[k])) {
      progress.note(runId, cert.name, 'order', 'ok', `reusing the chain issued in an interrupted run (serial ${reusable[keyType]!.serial})`, keyType);
    }
    if (toOrder.length > 0) issued.push(...(await orderChains(ctx, cert, toOrder, begin)));
    if (ctx.staging) return { ok: true, issued };

    for (const keyType of cert.keyTypes) {
      begin('install', keyType);
      const progressOf = journal.get(cert.name).inFlight!.keyTypes[keyType]!;
      journal.update(cert.name, (record) => {
        record.inFlight!.installSent = true;
        record.inFlight!.keyTypes[keyType] = { ...progressOf, step: 'install' };
      });
      const installed = await call(privdApi, 'deploy.install', { cert: cert.name, keyType, chainPem: progressOf.chainPem!, keyId: progressOf.keyId! });
      progress.note(runId, cert.name, 'install', 'ok', `version ${installed.version} into ${installed.changedTargets.length} target(s)`, keyType);
      crashPoint('installed');
    }
    begin('check');
    for (const keyType of cert.keyTypes) journal.recordStep(cert.name, keyType, { step: 'check' });
    const checked = await call(privdApi, 'deploy.check', { certs: [cert.name] });
    progress.note(runId, cert.name, 'check', 'ok', checked.checked.length > 0 ? `checked ${checked.checked.join(', ')}` : 'no checks configured');
    return { ok: true, issued };
  } catch (e) {
    const error = toWireError(e);
    progress.note(runId, cert.name, step, 'failed', `${error.code}: ${error.message}`);
    await abandon(ctx, cert, step, error);
    return { ok: false, step, error, issued };
  }
}

/** CSRs, then one lease for all orders of this certificate, then the orders; the lease is always closed. */
async function orderChains(
  ctx: PipelineContext,
  cert: CertificateConfig,
  keyTypes: KeyType[],
  begin: (step: Step, keyType?: KeyType, detail?: string) => void,
): Promise<IssuedChain[]> {
  const { journal, call, progress, runId } = ctx;
  const csrs: { keyType: KeyType; csrPem: string; keyId: string }[] = [];
  for (const keyType of keyTypes) {
    begin('csr', keyType);
    journal.recordStep(cert.name, keyType, { step: 'csr' });
    crashPoint('csr');
    const csr = await call(keydApi, 'csr.create', { cert: cert.name, keyType });
    csrs.push({ keyType, csrPem: csr.csrPem, keyId: csr.keyId });
    progress.note(runId, cert.name, 'csr', 'ok', csr.newKey ? 'new key' : 'reused key', keyType);
  }
  let leaseId: string | undefined;
  const issued: IssuedChain[] = [];
  try {
    if (cert.exposure !== undefined && !ctx.staging) {
      begin('lease', undefined, `exposure ${cert.exposure}`);
      const ttlSeconds = ctx.config.exposures[cert.exposure]!.maxTtlSeconds;
      const lease = await call(netdApi, 'lease.open', { cert: cert.name, exposure: cert.exposure, ttlSeconds });
      leaseId = lease.id;
      journal.update(cert.name, (record) => { record.inFlight!.leaseId = lease.id; });
      crashPoint('lease');
      progress.note(runId, cert.name, 'lease', 'ok', `lease ${lease.id} until ${lease.deadline}`);
    }
    const replacing = journal.get(cert.name).issued;
    for (const { keyType, csrPem, keyId } of csrs) {
      begin('order', keyType);
      journal.recordStep(cert.name, keyType, { step: 'order', keyId });
      const replaces = replacing[keyType]?.leafPem;
      const order = await call(acmedApi, 'order.issue', {
        cert: cert.name, csrPem, keyType, staging: ctx.staging, ...(replaces ? { replaces } : {}),
      });
      const leaf = readLeaf(order.chainPem);
      journal.recordStep(cert.name, keyType, { step: 'order', keyId, chainPem: order.chainPem, serial: leaf.serial, notAfter: order.notAfter });
      issued.push({ keyType, serial: leaf.serial, notAfter: order.notAfter, reusedOrder: false });
      progress.note(runId, cert.name, 'order', 'ok', `serial ${leaf.serial}, valid until ${order.notAfter}`, keyType);
    }
  } finally {
    if (leaseId !== undefined) await closeLease(ctx, cert.name, leaseId);
  }
  return issued;
}

export async function closeLease(ctx: Pick<PipelineContext, 'journal' | 'call' | 'log'>, cert: string, leaseId: string): Promise<void> {
  try {
    await ctx.call(netdApi, 'lease.close', { id: leaseId });
  } catch (e) {
    const error = toWireError(e);
    // Already gone (expired, or closed before a crash): nothing left open.
    if (error.code !== 'E_NO_LEASE') {
      ctx.log.error({ cert, leaseId, error }, 'cannot close the lease; it stays journaled and expires by its deadline');
      return;
    }
  }
  ctx.journal.update(cert, (record) => {
    if (record.inFlight?.leaseId === leaseId) delete record.inFlight.leaseId;
  });
}

/** After a failure: undo a half-done install, and keep only chains worth installing next time. */
async function abandon(ctx: PipelineContext, cert: CertificateConfig, step: Step, error: WireError): Promise<void> {
  // A failed check has already restored the previous files (privd's contract).
  if (ctx.journal.get(cert.name).inFlight?.installSent && step !== 'check') {
    try {
      await ctx.call(privdApi, 'deploy.rollback', { certs: [cert.name] });
    } catch (e) {
      ctx.log.error({ cert: cert.name, error: toWireError(e) }, 'rollback failed; privd rolls back pending installs when it restarts');
    }
  }
  // privd refused the chain itself: installing it again could never work, so it is not kept.
  const dropChains = CHAIN_REFUSALS.has(error.code) || KEY_GONE.has(error.code);
  ctx.journal.update(cert.name, (record) => {
    if (!record.inFlight) return;
    record.inFlight.installSent = false;
    record.inFlight.keyTypes = dropChains ? {} : reusableChains(record.inFlight.keyTypes, cert);
  });
}

/**
 * Chains from an unfinished run that may be installed instead of ordering again: issued for the
 * names the config lists now, for a key type it still lists, and with most of their life ahead.
 */
export function reusableChains(keyTypes: Partial<Record<KeyType, KeyTypeProgress>>, cert: CertificateConfig, now = new Date()): Partial<Record<KeyType, KeyTypeProgress>> {
  const kept: Partial<Record<KeyType, KeyTypeProgress>> = {};
  for (const keyType of cert.keyTypes) {
    const progress = keyTypes[keyType];
    if (!progress?.chainPem || !progress.keyId) continue;
    try {
      const leaf = readLeaf(progress.chainPem);
      const lifetime = leaf.notAfter.getTime() - leaf.notBefore.getTime();
      if (sameNames(leaf.names, cert.domains) && leaf.notAfter.getTime() - now.getTime() > lifetime / 2) {
        kept[keyType] = { step: 'order', keyId: progress.keyId, chainPem: progress.chainPem, serial: leaf.serial, notAfter: progress.notAfter ?? leaf.notAfter.toISOString() };
      }
    } catch {
      // An unreadable journaled chain is simply not reused.
    }
  }
  return kept;
}
