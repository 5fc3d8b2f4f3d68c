// A certificate delivered to remote hosts (its `hosts:`), one host at a time per worker:
//   connect (ssh) → a chain already queued for the host is delivered, nothing ordered
//   → else the host's status (what its privd has installed) → due? → csr.create on the host
//   (its keyd makes the key; only the CSR crosses) → order here through acmed (a netd lease if the
//   certificate has an exposure) → queue the chain (durable) → deliver: install per key type,
//   check, reload on the host, each by the host's own config.
// A failure during delivery keeps the chain queued: retried with backoff (delivery-retries.ts),
// by `certsepctl push`, or by the next run. Each host gets its own key and order, so one host's
// trouble never touches another's certificate.
import { acmedApi } from '../acmed/api.ts';
import type { AuditEntry } from '../audit/log.ts';
import type { CertificateConfig, Config, KeyType } from '../config/schema.ts';
import { netdApi } from '../netd/api.ts';
import type { Logger } from '../proto/log.ts';
import type { HostResult, Step, WireError } from './api.ts';
import { crashPoint, pausePoint } from './crash-hook.ts';
import type { Chains, DeliveryStore } from './delivery-store.ts';
import { decideDue, type DueDecision } from './due.ts';
import { installedCopies, refreshRenewalWindow } from './installed-state.ts';
import { readLeaf, sameNames } from './leaf.ts';
import { toWireError, type Call } from './peers.ts';
import type { ProgressLog } from './progress-log.ts';
import { SshSession, TRANSIENT_SSH_ERRORS } from './ssh-session.ts';

export interface FleetDeps {
  config: Config;
  call: Call;
  store: DeliveryStore;
  audit: { record(entry: AuditEntry): void };
  progress: ProgressLog;
  log: Logger;
  stateDir: string;
}

export interface FleetRun {
  runId: string;
  force: boolean;
  dryRun: boolean;
  staging: boolean;
}

// The host refused the chain itself, or no longer has the key it was issued for: only a new order helps.
const NEEDS_NEW_ORDER = new Set(['E_CHAIN', 'E_NAMES', 'E_KEY_MISMATCH', 'E_EXPIRED', 'E_KEY_TYPE', 'E_KEY_UNAVAILABLE', 'E_NO_KEY', 'E_UNKNOWN_CERT']);

class StepError extends Error {
  constructor(readonly step: Step, readonly error: WireError) {
    super(error.message);
  }
}

export async function renewOnHost(deps: FleetDeps, run: FleetRun, cert: CertificateConfig, host: string): Promise<HostResult> {
  const note = hostNotes(deps, run.runId, cert, host);
  const session = openSession(deps, host);
  let step: Step = 'connect';
  try {
    const queued = deps.store.get(cert.name, host).pending;
    if (queued && !run.dryRun && !run.staging && stillUsable(queued.chains, cert)) {
      note('plan', 'ok', `delivering the chain queued since ${queued.issuedAt}; nothing is ordered`);
      return await deliver(deps, session, run, cert, host, queued.chains, 'delivered');
    }
    note('connect', 'start');
    const status = await session.call('status', { certs: [cert.name] });
    deps.store.update(cert.name, host, (r) => { r.lastContact = new Date().toISOString(); });
    note('connect', 'ok');
    step = 'plan';
    const copies = installedCopies(cert, status.certs[0]);
    const ari = deps.store.ariCache(cert.name, host);
    if (!run.dryRun) await refreshRenewalWindow(deps, cert, copies, new Date(), ari);
    const decision: DueDecision = run.force
      ? { due: true, at: new Date(), reason: 'forced', detail: 'renewal forced by the admin' }
      : decideDue(cert, copies, ari.get(), new Date());
    note('plan', 'ok', decision.due ? `due: ${decision.detail}` : `not due until ${decision.at.toISOString()}`);
    if (!decision.due) return result(host, 'not-due', `due ${decision.at.toISOString()}: ${decision.detail}`);
    if (run.dryRun) return result(host, 'due', decision.detail);

    const csrs: { keyType: KeyType; csrPem: string; keyId: string }[] = [];
    for (const keyType of cert.keyTypes) {
      step = 'csr';
      note('csr', 'start', undefined, keyType);
      const csr = await session.call('csr.create', { cert: cert.name, keyType });
      csrs.push({ keyType, csrPem: csr.csrPem, keyId: csr.keyId });
      note('csr', 'ok', csr.newKey ? 'new key made on the host' : 'the host reuses its key', keyType);
    }
    step = 'order';
    const chains = await oneOrderAtATime(cert.name, () => orderFor(deps, run, cert, host, csrs, status.certs[0], note));
    const issued = issuedOf(chains, false);
    if (run.staging) return { ...result(host, 'staged', 'ordered from staging; nothing delivered'), issued };
    deps.store.update(cert.name, host, (r) => {
      r.pending = { chains, issuedAt: new Date().toISOString(), attempts: 0, nextAttempt: new Date().toISOString(), gaveUp: false };
    });
    crashPoint('queued');
    await pausePoint(`deliver:${host}`);
    return await deliver(deps, session, run, cert, host, chains, 'renewed');
  } catch (e) {
    const failure = e instanceof StepError ? e : new StepError(step, toWireError(e));
    note(failure.step, 'failed', `${failure.error.code}: ${failure.error.message}`);
    deps.store.update(cert.name, host, (r) => { r.lastError = { at: new Date().toISOString(), step: failure.step, error: failure.error }; });
    const pending = deps.store.get(cert.name, host).pending;
    // A queued chain that could not even be offered (host down) waits for its next attempt.
    if (pending && failure.step === 'connect' && !run.dryRun) return queueRetry(deps, cert, host, failure, []);
    return { ...result(host, 'failed', failure.error.message), failedStep: failure.step, error: failure.error };
  } finally {
    await session.close();
  }
}

/** Offers a chain to the host: install each key type, check, reload. */
export async function deliver(deps: FleetDeps, session: SshSession, run: Pick<FleetRun, 'runId'>, cert: CertificateConfig, host: string, chains: Chains, success: 'renewed' | 'delivered'): Promise<HostResult> {
  const note = hostNotes(deps, run.runId, cert, host);
  const issued = issuedOf(chains, success === 'delivered');
  let step: Step = 'install';
  let installSent = false;
  try {
    for (const keyType of cert.keyTypes) {
      const chain = chains[keyType];
      if (!chain) throw new StepError('install', { code: 'E_KEY_TYPE', message: `no ${keyType} chain is queued for ${host} (the config's key types changed)` });
      note('install', 'start', undefined, keyType);
      installSent = true;
      const installed = await session.call('deploy.install', { cert: cert.name, keyType, chainPem: chain.chainPem, keyId: chain.keyId });
      note('install', 'ok', `version ${installed.version} into ${installed.changedTargets.length} target(s)`, keyType);
    }
    step = 'check';
    note('check', 'start');
    const checked = await session.call('deploy.check', { certs: [cert.name] });
    note('check', 'ok', checked.checked.length > 0 ? `checked ${checked.checked.join(', ')}` : 'no checks configured');
    step = 'reload';
    note('reload', 'start');
    const reloaded = await session.call('deploy.reload', { certs: [cert.name] });
    note('reload', 'ok', reloaded.reloaded.length > 0 ? `reloaded ${reloaded.reloaded.join(', ')}` : 'committed; no service to reload');
    const now = new Date().toISOString();
    deps.store.update(cert.name, host, (r) => {
      r.delivered = { at: now, chains };
      r.lastContact = now;
      delete r.pending;
      delete r.lastError;
    });
    return { ...result(host, success, success === 'renewed' ? 'issued for the host\'s own key and delivered' : 'the queued chain was delivered'), issued };
  } catch (e) {
    const failure = e instanceof StepError ? e : new StepError(step, toWireError(e));
    note(failure.step, 'failed', `${failure.error.code}: ${failure.error.message}`);
    // A failed check or reload has been rolled back by the host's privd itself; a half-done
    // install (the second key type refused, the session lost) is rolled back here if possible.
    if (installSent && failure.step === 'install') await session.call('deploy.rollback', { certs: [cert.name] }).catch(() => undefined);
    deps.store.update(cert.name, host, (r) => { r.lastError = { at: new Date().toISOString(), step: failure.step, error: failure.error }; });
    if (NEEDS_NEW_ORDER.has(failure.error.code)) {
      deps.store.update(cert.name, host, (r) => { delete r.pending; });
      return { ...result(host, 'failed', `${failure.error.message} (the queued chain was dropped; the next run orders anew)`), issued, failedStep: failure.step, error: failure.error };
    }
    return queueRetry(deps, cert, host, failure, issued);
  }
}

/** Keeps the chain queued and plans the next attempt (the delivery config's backoff). */
function queueRetry(deps: FleetDeps, cert: CertificateConfig, host: string, failure: StepError, issued: HostResult['issued']): HostResult {
  const { retries, retryIntervalSeconds, maxRetryIntervalSeconds } = deps.config.delivery;
  const record = deps.store.update(cert.name, host, (r) => {
    if (!r.pending) return;
    r.pending.attempts += 1;
    const delay = Math.min(retryIntervalSeconds * 2 ** Math.min(r.pending.attempts - 1, 20), maxRetryIntervalSeconds);
    r.pending.nextAttempt = new Date(Date.now() + delay * 1000).toISOString();
    r.pending.gaveUp = r.pending.attempts > retries;
  });
  const pending = record.pending!;
  const transient = TRANSIENT_SSH_ERRORS.has(failure.error.code);
  const detail = pending.gaveUp
    ? `${failure.error.message} (${pending.attempts} attempts; retries used up: certsepctl push ${host} offers it again)`
    : `${failure.error.message} (${transient ? 'host unreachable' : 'the host could not take it'}; the chain stays queued, attempt ${pending.attempts + 1} after ${pending.nextAttempt})`;
  return { ...result(host, 'pending', detail), issued, failedStep: failure.step, error: failure.error, ...(pending.gaveUp ? {} : { nextAttempt: pending.nextAttempt }) };
}

// One order at a time per certificate: its hosts' orders answer the same challenges (the same
// listener port, the same _acme-challenge TXT name), which must not overlap.
const orderingNow = new Map<string, Promise<unknown>>();

function oneOrderAtATime<T>(cert: string, work: () => Promise<T>): Promise<T> {
  const previous = orderingNow.get(cert) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(work);
  orderingNow.set(cert, mine);
  void mine.finally(() => { if (orderingNow.get(cert) === mine) orderingNow.delete(cert); }).catch(() => undefined);
  return mine;
}

type Note = (step: Step, state: 'start' | 'ok' | 'failed', detail?: string, keyType?: KeyType) => void;

/** Progress lines of one host's pipeline, in the run's progress log under the certificate, named by host. */
function hostNotes(deps: FleetDeps, runId: string, cert: CertificateConfig, host: string): Note {
  return (step, state, detail, keyType) => deps.progress.note(runId, cert.name, step, state, `${host}${detail ? `: ${detail}` : ''}`, keyType);
}

async function orderFor(
  deps: FleetDeps, run: FleetRun, cert: CertificateConfig, host: string,
  csrs: { keyType: KeyType; csrPem: string; keyId: string }[],
  installed: Parameters<typeof installedCopies>[1],
  note: Note,
): Promise<Chains> {
  let leaseId: string | undefined;
  const chains: Chains = {};
  try {
    if (cert.exposure !== undefined && !run.staging) {
      note('lease', 'start', `exposure ${cert.exposure}`);
      const lease = await deps.call(netdApi, 'lease.open', { cert: cert.name, exposure: cert.exposure, ttlSeconds: deps.config.exposures[cert.exposure]!.maxTtlSeconds });
      leaseId = lease.id;
      note('lease', 'ok', `lease ${lease.id} until ${lease.deadline}`);
    }
    for (const { keyType, csrPem, keyId } of csrs) {
      note('order', 'start', undefined, keyType);
      const replaces = installed?.keyTypes.find((k) => k.keyType === keyType)?.installed?.leafPem;
      const order = await deps.call(acmedApi, 'order.issue', { cert: cert.name, csrPem, keyType, staging: run.staging, ...(replaces ? { replaces } : {}) });
      const leaf = readLeaf(order.chainPem);
      chains[keyType] = { keyId, chainPem: order.chainPem, serial: leaf.serial, notAfter: order.notAfter };
      note('order', 'ok', `serial ${leaf.serial}, valid until ${order.notAfter}`, keyType);
    }
  } finally {
    if (leaseId !== undefined) {
      await deps.call(netdApi, 'lease.close', { id: leaseId }).catch((e) => deps.log.warn({ cert: cert.name, host, leaseId, error: toWireError(e) }, 'cannot close the lease; it expires by its deadline'));
    }
  }
  return chains;
}


/** A queued chain is worth delivering while it names the configured domains and has most of its life ahead. */
export function stillUsable(chains: Chains, cert: CertificateConfig, now = new Date()): boolean {
  return cert.keyTypes.every((keyType) => {
    const chain = chains[keyType];
    if (!chain) return false;
    try {
      const leaf = readLeaf(chain.chainPem);
      return sameNames(leaf.names, cert.domains) && leaf.notAfter.getTime() - now.getTime() > (leaf.notAfter.getTime() - leaf.notBefore.getTime()) / 2;
    } catch {
      return false;
    }
  });
}

function issuedOf(chains: Chains, reusedOrder: boolean): HostResult['issued'] {
  return Object.entries(chains).map(([keyType, c]) => ({ keyType: keyType as KeyType, serial: c.serial, notAfter: c.notAfter, reusedOrder }));
}

function result(host: string, outcome: HostResult['outcome'], detail: string): HostResult {
  return { host, outcome, detail: detail.slice(0, 1024), issued: [] };
}

/** An ssh session whose every call is recorded in deployd's audit log: what was sent to whom. */
export function openSession(deps: Pick<FleetDeps, 'config' | 'audit' | 'stateDir'>, host: string): SshSession {
  const target = deps.config.hosts[host]!;
  return SshSession.open(deps.config, host, deps.stateDir, (method, params, outcome, error) => {
    deps.audit.record({
      peer: null,
      method: `remote.${method}`,
      params,
      outcome,
      ...(error ? { code: error.code, message: error.message } : {}),
      detail: { host, address: target.address, port: target.port, user: target.user },
    });
  });
}
