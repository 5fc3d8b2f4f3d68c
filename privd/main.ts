// certsep-privd: the only root process of certsep. It acts on its own root-owned config alone
// (runDaemon refuses a config anyone but root could have written, at start and at every reload);
// requests name certificates.
//
// What privd may touch, and why:
//   - the target directories of the config's certificates (targets[].dir): writes cert.pem,
//     chain.pem, fullchain.pem, privkey.pem, combined.pem (and their key-type-suffixed twins) and
//     their temps, with the configured owner, group and mode — installing certificates is its job.
//     Only directories root alone controls (target-dir.ts).
//   - <paths.stateDir>/privd/ (root 0700): journal.json and backups/ of uncommitted runs, to
//     survive a crash mid-install and to roll back.
//   - <paths.stateDir>/live/ and /archive/ (root 0700): the certbot-compatible lineage.
//   - <paths.auditDir>/privd.audit.jsonl: every action, refusal, rollback and repair.
//   - keyd's socket (<paths.runDir>/keyd.sock): key.export, the only way it gets a private key.
//   - commands: the config's services[].check argv and reload argv or `systemctl <action> <unit>`,
//     without a shell, with a fixed PATH and a timeout; nothing else is ever executed.
// No network. Nothing from the wire becomes a path, a command, a unit, an owner or a mode.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runDaemon } from '../runtime/daemon.ts';
import { privdApi } from './api.ts';
import { createHandlers } from './handlers.ts';
import { Journal } from './journal.ts';
import { Lineage } from './lineage.ts';
import { repairInterruptedRuns } from './repair-runs.ts';

await runDaemon({
  name: 'privd',
  api: privdApi,
  requireRootOwnedConfig: true,
  async start(ctx) {
    // Installing means chown(2) to the configured owners: without root, every install would fail.
    if (process.getuid?.() !== 0) {
      process.stderr.write('certsep-privd: must run as root (it installs files owned by other users)\n');
      process.exit(1);
    }
    mkdirSync(ctx.stateDir, { recursive: true, mode: 0o700 });
    const stores = {
      journal: new Journal(ctx.stateDir),
      lineage: new Lineage(ctx.config().paths.stateDir),
      backupRoot: join(ctx.stateDir, 'backups'),
    };
    await repairInterruptedRuns(ctx.config(), stores, ctx.audit, ctx.log);
    return {
      handlers: createHandlers(ctx, stores),
      // A run installed and not yet committed or rolled back is checked, reloaded and rolled back
      // with the targets and services of the config it was installed under: an edit waits for it.
      configBusy: () => {
        const run = stores.journal.allRuns()[0];
        return run ? `run ${run.runId} of ${run.cert} is ${run.state}, not yet committed or rolled back` : null;
      },
    };
  },
});
