// certsep-deployd: the one scheduler. Runs as certsep-deploy with no capabilities.
// May touch: its state dir (<stateDir>/deployd: journal.json), the metrics file the config names,
// hooks the config names (run as itself), and the sockets of keyd, netd, acmed and privd.
// Holds no private key and no network access of its own: every effect goes through another
// daemon's pledge (see */api.ts).
import { netdApi } from '../netd/api.ts';
import { RpcError } from '../proto/errors.ts';
import { runDaemon } from '../runtime/daemon.ts';
import { DeploydErrorCode, deploydApi } from './api.ts';
import { certificateStatus } from './certificate-status.ts';
import { armCrashHook } from './crash-hook.ts';
import { Journal } from './journal.ts';
import { callerFor } from './peers.ts';
import { ProgressLog } from './progress-log.ts';
import { RenewalRunner } from './renewal-run.ts';

await runDaemon({
  name: 'deployd',
  api: deploydApi,
  async start({ config, log, stateDir }) {
    armCrashHook(stateDir);
    const journal = Journal.open(stateDir, (message) => log.error(message));
    const call = callerFor(config);
    const progress = new ProgressLog();
    const runner = new RenewalRunner({ config, journal, call, progress, log });
    runner.recoverAtStart();
    return {
      handlers: {
        'renew.run': (params) => runner.run(params),
        'renew.progress': async ({ runId, afterSeq }) => {
          const answer = progress.since(runId, afterSeq);
          if (!answer) throw new RpcError(DeploydErrorCode.NO_RUN, `no renewal run ${runId} is known to this deployd`);
          return { runId, ...answer };
        },
        status: async ({ certs }) => ({ certs: await certificateStatus({ config, journal, call }, certs) }),
        leases: () => call(netdApi, 'lease.list', {}),
      },
    };
  },
});
