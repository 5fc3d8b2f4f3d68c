// privd's handlers: one per method of api.ts. Mutating requests run one at a time, callers
// taking turns (take-turns.ts), so two runs never interleave their writes, journal entries or
// reloads, and no caller's backlog holds another's request for long. Each reads the config in
// force when its turn comes; an edited config waits while a run is pending (privd/main.ts), so
// install, check, reload and rollback of one run all act on the same config.
import type { CertificateConfig, Config } from '../config/schema.ts';
import { certificateByName } from '../config/schema.ts';
import { uidsForRole } from '../config/users.ts';
import type { PeerCredentials } from '../proto/api.ts';
import { RpcError } from '../proto/errors.ts';
import type { OwnHandlers } from '../runtime/config-status.ts';
import type { DaemonContext } from '../runtime/daemon.ts';
import { PrivdErrorCode, type privdApi } from './api.ts';
import { crashPoint } from './crash-hook.ts';
import { installCertificate } from './install-certificate.ts';
import type { InstallStores } from './install-targets.ts';
import type { RunRecord } from './journal.ts';
import { affectedServices, reloadServices } from './reload-services.ts';
import { certificateStatus } from './report-status.ts';
import { commitRun, rollBackRun } from './roll-back-run.ts';
import { runChecks } from './run-checks.ts';
import { TakeTurns } from './take-turns.ts';

type PrivdMethods = (typeof privdApi)['methods'];

export function createHandlers(ctx: DaemonContext, stores: InstallStores): OwnHandlers<PrivdMethods> {
  const { audit } = ctx;
  const turns = new TakeTurns();
  const oneAtATime = <T>(peer: PeerCredentials, work: () => Promise<T>): Promise<T> => turns.run(peer.uid, work);

  const knownCert = (config: Config, name: string): CertificateConfig => {
    const cert = certificateByName(config, name);
    if (!cert) throw new RpcError(PrivdErrorCode.UNKNOWN_CERT, `certificate ${JSON.stringify(name)} is not in privd's config (${ctx.configPath})`);
    return cert;
  };

  const pendingRuns = (certs: CertificateConfig[]): RunRecord[] =>
    certs.flatMap((cert) => stores.journal.runOf(cert.name) ?? []);

  /** Only an admin reloads outside a run: for deployd, each certificate's install must have passed deploy.check. */
  const assertCheckedRuns = (certs: CertificateConfig[]): void => {
    const unchecked = certs.filter((cert) => stores.journal.runOf(cert.name)?.state !== 'checked');
    if (unchecked.length === 0) return;
    const why = unchecked.map((cert) => {
      const run = stores.journal.runOf(cert.name);
      return `${cert.name} (${run ? `its install is ${run.state}, not checked` : 'nothing installed'})`;
    });
    throw new RpcError(
      PrivdErrorCode.NOT_CHECKED,
      `deploy.reload reloads only a run that installed files and passed deploy.check: ${why.join(', ')}`,
    );
  };

  const recordRollback = (peer: PeerCredentials | null, run: RunRecord, targets: string[], why: string) =>
    audit.record({ peer, method: 'run.rollback', outcome: 'ok', message: `${why}; restored the previous files of ${targets.length} target(s)`, detail: { cert: run.cert, runId: run.runId, targets } });

  /** Rolls back the pending runs of certs; returns "restored the previous files of N target(s)". */
  const rollBackPending = (peer: PeerCredentials, certs: CertificateConfig[], why: string): string => {
    let count = 0;
    for (const cert of certs) {
      const run = stores.journal.runOf(cert.name);
      if (!run) continue;
      const targets = rollBackRun(stores, run);
      recordRollback(peer, run, targets, why);
      count += targets.length;
    }
    return `restored the previous files of ${count} target(s)`;
  };

  return {
    'deploy.install': (p, { peer }) =>
      oneAtATime(peer, async () => {
        const config = ctx.config();
        const cert = knownCert(config, p.cert);
        const out = await installCertificate(config, stores, { cert, keyType: p.keyType, chainPem: p.chainPem, keyId: p.keyId }, (run, why) =>
          recordRollback(peer, run, [...new Set(run.files.map((f) => f.dir))], why),
        );
        return { runId: out.run.runId, cert: cert.name, keyType: p.keyType, version: out.version, serial: out.serial, notAfter: out.notAfter.toISOString(), changedTargets: out.changedTargets };
      }),

    'deploy.check': (p, { peer }) =>
      oneAtATime(peer, async () => {
        const config = ctx.config();
        const certs = p.certs.map((name) => knownCert(config, name));
        const services = affectedServices(config, certs);
        const failure = await runChecks(config, services);
        if (failure === null) {
          for (const run of pendingRuns(certs)) if (run.state === 'installed') stores.journal.setState(run, 'checked');
          return { checked: services.filter((name) => config.services[name]!.check.length > 0) };
        }
        // Nothing was reloaded yet, so the services still serve the old files: restoring suffices.
        const restored = rollBackPending(peer, certs, `check failed: ${failure}`);
        throw new RpcError(PrivdErrorCode.CHECK_FAILED, `check failed: ${failure}; ${restored}`);
      }),

    'deploy.reload': (p, { peer }) =>
      oneAtATime(peer, async () => {
        const config = ctx.config();
        const certs = p.certs.map((name) => knownCert(config, name));
        if (!uidsForRole(config, 'admin').includes(peer.uid)) assertCheckedRuns(certs);
        const runs = pendingRuns(certs);
        for (const run of runs) stores.journal.setState(run, 'reloading');
        const services = affectedServices(config, certs);
        const first = await reloadServices(config, services, false);
        if (first.failures.length === 0) {
          crashPoint('reloaded');
          const committed = runs.map((run) => {
            commitRun(stores, run);
            audit.record({ peer, method: 'run.commit', outcome: 'ok', message: `${run.cert} is now version ${Object.entries(run.versions).map(([t, v]) => `${v.version} (${t})`).join(', ')}`, detail: { cert: run.cert, runId: run.runId } });
            return { cert: run.cert, runId: run.runId, versions: Object.fromEntries(Object.entries(run.versions).map(([t, v]) => [t, v.version])) };
          });
          return { reloaded: first.reloaded, committed };
        }
        const failure = first.failures.join('; ');
        if (runs.length === 0) throw new RpcError(PrivdErrorCode.RELOAD_FAILED, `reload failed: ${failure}`);
        const restored = rollBackPending(peer, certs, `reload failed: ${failure}`);
        // Services reloaded before the failure now run the new files: reload all with the old ones.
        const again = await reloadServices(config, services, true);
        const reloadAgain = again.failures.length === 0 ? 'reloaded with the previous files' : `reload with the previous files failed too: ${again.failures.join('; ')}`;
        audit.record({ peer, method: 'run.reload-previous', outcome: again.failures.length === 0 ? 'ok' : 'error', message: reloadAgain, detail: { certs: p.certs, services } });
        throw new RpcError(PrivdErrorCode.RELOAD_FAILED, `reload failed: ${failure}; ${restored}; ${reloadAgain}`);
      }),

    'deploy.rollback': (p, { peer }) =>
      oneAtATime(peer, async () => {
        const config = ctx.config();
        const certs = p.certs.map((name) => knownCert(config, name));
        const rolledBack = certs.flatMap((cert) => {
          const run = stores.journal.runOf(cert.name);
          if (!run) return [];
          const targets = rollBackRun(stores, run);
          recordRollback(peer, run, targets, 'deploy.rollback asked for it');
          return [{ cert: run.cert, runId: run.runId, targets: targets.length }];
        });
        return { rolledBack };
      }),

    status: async (p) => {
      const config = ctx.config();
      const certs = p.certs ? p.certs.map((name) => knownCert(config, name)) : config.certificates;
      return { certs: certs.map((cert) => certificateStatus(cert, stores.lineage, stores.journal)) };
    },
  };
}
