// On start, before serving: finish what a killed privd left. Runs in the journal are rolled back
// (and, if services were being reloaded, the services reloaded with the restored files) or, when
// the journal says committing, rolled forward (journal.ts explains why). A run that cannot be
// rolled back (a target directory is no longer root's) is audited and kept for the next start. Backup directories no
// run refers to (a crash after the journal entry went but before they were removed) are deleted:
// they hold copies of private keys.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditLog } from '../audit/log.ts';
import { certificateByName, type Config } from '../config/schema.ts';
import type { Logger } from '../proto/log.ts';
import { PrivdErrorCode } from './api.ts';
import type { InstallStores } from './install-targets.ts';
import { affectedServices, reloadServices } from './reload-services.ts';
import { finishCommit, rollBackRun } from './roll-back-run.ts';

export async function repairInterruptedRuns(config: Config, stores: InstallStores, audit: AuditLog, log: Logger): Promise<void> {
  for (const run of stores.journal.allRuns()) {
    const detail = { cert: run.cert, runId: run.runId, state: run.state, startedAt: run.startedAt };
    if (run.state === 'committing') {
      finishCommit(stores, run);
      audit.record({ peer: null, method: 'run.repair', outcome: 'ok', message: `completed the interrupted commit of ${run.cert} (rolled forward)`, detail });
      log.warn(detail, 'rolled an interrupted commit forward');
      continue;
    }
    let dirs: string[];
    try {
      dirs = rollBackRun(stores, run);
    } catch (e) {
      // The run stays journaled: the next start tries again. privd still serves, so status shows
      // the certificate as pending and the other certificates are not held hostage.
      const message = `cannot roll back the interrupted ${run.state} run of ${run.cert}: ${(e as Error).message}`;
      const code = PrivdErrorCode.ROLLBACK_FAILED;
      audit.record({ peer: null, method: 'run.repair', outcome: 'error', code, message, detail });
      log.error(detail, message);
      continue;
    }
    let message = `rolled back the interrupted ${run.state} run of ${run.cert}: restored the previous files of ${dirs.length} target(s)`;
    let outcome: 'ok' | 'error' = 'ok';
    const cert = certificateByName(config, run.cert);
    if (run.state === 'reloading' && cert) {
      const reload = await reloadServices(config, affectedServices(config, [cert]), true);
      message += reload.failures.length === 0 ? `; reloaded ${reload.reloaded.join(', ') || 'no services'}` : `; reload failed: ${reload.failures.join('; ')}`;
      if (reload.failures.length > 0) outcome = 'error';
    }
    audit.record({ peer: null, method: 'run.repair', outcome, message, detail: { ...detail, targets: dirs } });
    log.warn({ ...detail, targets: dirs }, message);
  }
  if (!existsSync(stores.backupRoot)) return;
  const live = new Set(stores.journal.allRuns().map((r) => r.runId));
  for (const runId of readdirSync(stores.backupRoot)) {
    if (!live.has(runId)) rmSync(join(stores.backupRoot, runId), { recursive: true, force: true });
  }
}
