// One renewal run: settle what an interrupted run left, decide per certificate whether it is due,
// run the due ones through their pipelines (a few at a time), reload every affected service once
// for all of them, then record results, run hooks and rewrite the metrics. Runs never overlap.
import { randomBytes } from 'node:crypto';
import type { CertificateConfig, Config } from '../config/schema.ts';
import { privdApi } from '../privd/api.ts';
import { RpcError } from '../proto/errors.ts';
import type { Logger } from '../proto/log.ts';
import { DeploydErrorCode, type CertResult, type RunResult, type Step, type WireError } from './api.ts';
import { planRetry } from './backoff.ts';
import { crashPoint } from './crash-hook.ts';
import { decideDue, type DueDecision } from './due.ts';
import { configuredCertificates, fetchPrivdStatus, installedCopies, journalAriCache, refreshRenewalWindow, rememberInstalledLeaves } from './installed-state.ts';
import { markRenewed, type Journal } from './journal.ts';
import { toWireError, type Call } from './peers.ts';
import type { ProgressLog } from './progress-log.ts';
import { recoverInterrupted } from './recover-interrupted.ts';
import { renewCertificate, type PipelineOutcome } from './renew-certificate.ts';
import { runHook, type HookEvent } from './run-hooks.ts';
import { writeMetrics } from './write-metrics.ts';
import { inPool } from './pool.ts';
import { fleetCertResult, renewFleetCertificates } from './deliveries.ts';
import type { FleetDeps } from './renew-on-hosts.ts';

export interface RunRequest {
  runId?: string | undefined;
  certs?: string[] | undefined;
  all: boolean;
  force: boolean;
  dryRun: boolean;
  staging: boolean;
}

export interface RunnerDeps {
  config: Config;
  journal: Journal;
  call: Call;
  progress: ProgressLog;
  log: Logger;
  /** Certificates with hosts: the delivery queue, deployd's audit log and its ssh state. */
  fleet: FleetDeps;
}

interface Planned {
  cert: CertificateConfig;
  decision: DueDecision;
  deferredUntil?: string;
}

export class RenewalRunner {
  private current: { runId: string; startedAt: string } | null = null;
  private recovering: Promise<void> | null = null;

  constructor(private readonly deps: RunnerDeps) {}

  /** At start: close what a crashed run left open, without waiting for the first renew.run. */
  recoverAtStart(): void {
    this.recovering = recoverInterrupted(this.deps)
      .catch((e) => this.deps.log.warn({ error: toWireError(e) }, 'recovery at start incomplete; retried before the next run'))
      .finally(() => { this.recovering = null; });
  }

  async run(request: RunRequest): Promise<RunResult> {
    const runId = request.runId ?? randomBytes(8).toString('hex');
    return this.exclusive(runId, async (startedAt) => {
      if (this.recovering) await this.recovering;
      return this.runUnlocked(runId, startedAt, request);
    });
  }

  /** True while a run, a push or a delivery retry holds the lock. */
  get busy(): boolean {
    return this.current !== null;
  }

  /** What deployd is doing under the config in force (an edited config waits for it), or null. */
  activity(): string | null {
    if (this.current) return `renewal run ${this.current.runId} (started ${this.current.startedAt}) is in progress`;
    return this.recovering ? 'the recovery of an interrupted run is in progress' : null;
  }

  /**
   * Runs, pushes and delivery retries never overlap (each may talk to the same host about the
   * same certificate); a second one is refused with E_BUSY. Progress is kept under runId.
   */
  async exclusive<T>(runId: string, work: (startedAt: string) => Promise<T>): Promise<T> {
    if (this.current) {
      throw new RpcError(DeploydErrorCode.BUSY, `renewal run ${this.current.runId} (started ${this.current.startedAt}) is still in progress`);
    }
    const startedAt = new Date().toISOString();
    this.current = { runId, startedAt };
    this.deps.progress.begin(runId);
    try {
      return await work(startedAt);
    } finally {
      this.deps.progress.finish(runId);
      this.current = null;
    }
  }

  private async runUnlocked(runId: string, startedAt: string, request: RunRequest): Promise<RunResult> {
    const { config, journal, call, log } = this.deps;
    const chosen = configuredCertificates(config, request.all ? undefined : request.certs);
    // Certificates with hosts go to those hosts (renew-on-hosts.ts); one without a challenge is
    // a remote-role host's, ordered by its central host, and not renewed here at all.
    const selected = chosen.filter((c) => c.hosts.length === 0 && c.challenge !== undefined);
    const fleetCerts = chosen.filter((c) => c.hosts.length > 0);
    const named = !request.all && (request.certs?.length ?? 0) > 0;
    if (!request.dryRun) await recoverInterrupted(this.deps);
    const privd = await fetchPrivdStatus(call, selected);
    const now = new Date();
    const planned: Planned[] = [];
    for (const cert of selected) {
      const copies = installedCopies(cert, privd.get(cert.name));
      if (!request.dryRun) {
        rememberInstalledLeaves(journal, cert, copies);
        await refreshRenewalWindow(this.deps, cert, copies, now, journalAriCache(journal, cert.name));
      }
      const due = decideDue(cert, copies, journal.get(cert.name).ari, now);
      const decision: DueDecision = request.force ? { due: true, at: now, reason: 'forced', detail: 'renewal forced by the admin' } : due;
      planned.push({ cert, decision, ...deferral(journal, cert.name, now, request.force, named) });
    }
    const results = new Map<string, CertResult>();
    const toRenew: CertificateConfig[] = [];
    for (const { cert, decision, deferredUntil } of planned) {
      const base = { cert: cert.name, reason: decision.reason, detail: decision.detail, issued: [] };
      if (!decision.due) results.set(cert.name, { ...base, outcome: 'not-due', detail: `due ${decision.at.toISOString()}: ${decision.detail}` });
      else if (deferredUntil) results.set(cert.name, { ...base, outcome: 'deferred', nextAttempt: deferredUntil, detail: `failing; next attempt after ${deferredUntil}` });
      else if (request.dryRun) results.set(cert.name, { ...base, outcome: 'due' });
      else toRenew.push(cert);
      this.deps.progress.note(runId, cert.name, 'plan', 'ok', decision.due ? `due: ${decision.detail}` : `not due until ${decision.at.toISOString()}`);
    }

    const ctx = { ...this.deps, runId, staging: request.staging };
    const fleetRun = { runId, force: request.force, dryRun: request.dryRun, staging: request.staging };
    const [outcomes, hostResults] = await Promise.all([
      inPool(toRenew, config.renewal.concurrency, (cert) => renewCertificate(ctx, cert)),
      renewFleetCertificates(this.deps.fleet, fleetRun, fleetCerts),
    ]);
    const installed = toRenew.filter((cert, i) => outcomes[i]!.ok && !request.staging);
    const reloaded = await this.reloadOnce(runId, installed, outcomes, toRenew);

    for (const [i, cert] of toRenew.entries()) {
      const outcome = outcomes[i]!;
      const decision = planned.find((p) => p.cert === cert)!.decision;
      const base = { cert: cert.name, reason: decision.reason, detail: decision.detail, issued: outcome.issued };
      if (outcome.ok) {
        results.set(cert.name, { ...base, outcome: request.staging ? 'staged' : 'renewed' });
        this.recordSuccess(cert, request.staging);
        await this.hook(runId, cert, { kind: 'renewed', serials: outcome.issued.map((c) => c.serial), notAfter: earliest(outcome.issued.map((c) => c.notAfter)) ?? '' }, request.staging);
      } else {
        const nextAttempt = this.recordFailure(cert, outcome.step, outcome.error, request.staging);
        results.set(cert.name, { ...base, outcome: 'failed', failedStep: outcome.step, error: outcome.error, ...(nextAttempt ? { nextAttempt } : {}) });
        await this.hook(runId, cert, { kind: 'failure', step: outcome.step, error: outcome.error }, false);
      }
    }
    for (const cert of fleetCerts) {
      const result = fleetCertResult(cert, hostResults.get(cert.name) ?? []);
      results.set(cert.name, result);
      if (result.outcome === 'renewed') await this.hook(runId, cert, { kind: 'renewed', serials: result.issued.map((c) => c.serial), notAfter: earliest(result.issued.map((c) => c.notAfter)) ?? '' }, false);
      if (result.outcome === 'failed') await this.hook(runId, cert, { kind: 'failure', step: result.failedStep ?? 'install', error: result.error ?? { code: 'E_INTERNAL', message: result.detail } }, false);
    }
    for (const cert of chosen) if (!results.has(cert.name)) results.set(cert.name, { cert: cert.name, outcome: 'not-due', detail: 'ordered by the central host: this host has the remote role', issued: [] });
    const ordered = chosen.map((c) => results.get(c.name)!);
    this.updateMetrics(privd, ordered);
    const exitCode = ordered.some((r) => r.outcome === 'failed' || r.outcome === 'deferred') ? 1
      : ordered.some((r) => r.outcome === 'renewed' || r.outcome === 'staged' || r.outcome === 'due') ? 0 : 2;
    log.info({ runId, exitCode, results: ordered.map((r) => `${r.cert}:${r.outcome}`) }, 'renewal run finished');
    return { runId, startedAt, finishedAt: new Date().toISOString(), results: ordered, reloaded, exitCode };
  }

  /** One deploy.reload for every installed certificate: each affected service reloads once. */
  private async reloadOnce(runId: string, installed: CertificateConfig[], outcomes: PipelineOutcome[], all: CertificateConfig[]): Promise<string[]> {
    if (installed.length === 0) return [];
    const names = installed.map((c) => c.name);
    const fail = (error: WireError, certs: CertificateConfig[]) => {
      for (const cert of certs) {
        const i = all.indexOf(cert);
        outcomes[i] = { ok: false, step: 'reload', error, issued: outcomes[i]!.issued };
        this.deps.progress.note(runId, cert.name, 'reload', 'failed', `${error.code}: ${error.message}`);
      }
    };
    for (const cert of installed) for (const keyType of cert.keyTypes) this.deps.journal.recordStep(cert.name, keyType, { step: 'reload' });
    for (const name of names) this.deps.progress.note(runId, name, 'reload', 'start');
    crashPoint('reload');
    try {
      const answer = await this.deps.call(privdApi, 'deploy.reload', { certs: names });
      const committed = new Set(answer.committed.map((c) => c.cert));
      fail({ code: 'E_NOT_COMMITTED', message: 'privd reloaded but did not commit this certificate' }, installed.filter((c) => !committed.has(c.name)));
      for (const name of committed) this.deps.progress.note(runId, name, 'reload', 'ok', answer.reloaded.length > 0 ? `reloaded ${answer.reloaded.join(', ')}` : 'committed; no service to reload');
      return answer.reloaded;
    } catch (e) {
      // privd restored the previous files (and reloaded them) itself; the chains stay journaled.
      fail(toWireError(e), installed);
      return [];
    }
  }

  private recordSuccess(cert: CertificateConfig, staging: boolean): void {
    this.deps.journal.update(cert.name, (record) => {
      // A staging chain is never installed or reused: it is not trusted and not the live lineage.
      if (!staging) markRenewed(record, Object.fromEntries(cert.keyTypes.map((k) => [k, record.inFlight?.keyTypes[k]?.chainPem])));
      if (!record.inFlight?.leaseId) delete record.inFlight;
    });
  }

  /** A staging failure says nothing about production: no backoff, and its chains are dropped. */
  private recordFailure(cert: CertificateConfig, step: Step, error: WireError, staging: boolean): string | undefined {
    const now = new Date();
    const record = this.deps.journal.update(cert.name, (r) => {
      if (!staging) {
        r.consecutiveFailures += 1;
        r.lastFailure = { at: now.toISOString(), step, error };
        const retry = planRetry(r.consecutiveFailures, error, now);
        r.nextAttempt = retry.nextAttempt.toISOString();
        if (retry.rateLimitedUntil) r.rateLimitedUntil = retry.rateLimitedUntil.toISOString();
      }
      const keepChains = !staging && r.inFlight && Object.keys(r.inFlight.keyTypes).length > 0;
      if (r.inFlight && !keepChains && !r.inFlight.leaseId) delete r.inFlight;
    });
    return staging ? undefined : record.nextAttempt;
  }

  private async hook(runId: string, cert: CertificateConfig, event: HookEvent, skip: boolean): Promise<void> {
    if (skip) return;
    const outcome = await runHook(this.deps.config, cert, event);
    if (!outcome) return;
    this.deps.progress.note(runId, cert.name, 'hook', outcome.ok ? 'ok' : 'failed', `${outcome.argv[0]}: ${outcome.detail}`);
    if (!outcome.ok) this.deps.log.warn({ cert: cert.name, hook: outcome.argv, detail: outcome.detail }, `${event.kind} hook failed`);
  }

  private updateMetrics(privd: Awaited<ReturnType<typeof fetchPrivdStatus>>, results: CertResult[]): void {
    const expiries = new Map<string, string | undefined>();
    for (const [name, status] of privd) {
      expiries.set(name, earliest(status.keyTypes.flatMap((k) => (k.installed ? [k.installed.notAfter] : []))));
    }
    for (const result of results) if (result.outcome === 'renewed') expiries.set(result.cert, earliest(result.issued.map((i) => i.notAfter)));
    try {
      writeMetrics(this.deps.config, this.deps.journal, expiries, this.deps.fleet.store);
    } catch (e) {
      this.deps.log.error({ error: toWireError(e), file: this.deps.config.renewal.metricsFile }, 'cannot write the metrics file');
    }
  }
}

/**
 * Whether a due certificate waits: the CA's Retry-After binds everyone but --force; the backoff
 * after ordinary failures binds the scheduler, not an admin who named the certificate.
 */
function deferral(journal: Journal, cert: string, now: Date, force: boolean, named: boolean): { deferredUntil?: string } {
  if (force) return {};
  const record = journal.get(cert);
  if (record.rateLimitedUntil && new Date(record.rateLimitedUntil) > now) return { deferredUntil: record.rateLimitedUntil };
  if (!named && record.nextAttempt && new Date(record.nextAttempt) > now) return { deferredUntil: record.nextAttempt };
  return {};
}

function earliest(isoTimes: string[]): string | undefined {
  return [...isoTimes].sort((a, b) => Date.parse(a) - Date.parse(b))[0];
}
