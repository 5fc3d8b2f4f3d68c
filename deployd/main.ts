// certsep-deployd: the one scheduler. Runs as certsep-deploy with no capabilities.
// May touch: its state dir (<stateDir>/deployd: journal.json, deliveries.json, ssh/ with the
// known_hosts it writes from the config), the metrics file the config names, hooks the config
// names (run as itself), and the sockets of keyd, netd, acmed and privd.
// Holds no private key: every local effect goes through another daemon's pledge (see */api.ts).
// With hosts: configured it also runs `ssh` (ssh-session.ts) to those hosts' forced command,
// whose pledge is remote/api.ts; that needs network (systemd/certsep-deployd-fleet.conf).
import { randomBytes } from 'node:crypto';
import { netdApi } from '../netd/api.ts';
import { RpcError } from '../proto/errors.ts';
import { runDaemon } from '../runtime/daemon.ts';
import { DeploydErrorCode, deploydApi } from './api.ts';
import { certificateStatus } from './certificate-status.ts';
import { armCrashHook } from './crash-hook.ts';
import { pushToHosts } from './deliveries.ts';
import { DeliveryRetries } from './delivery-retries.ts';
import { DeliveryStore } from './delivery-store.ts';
import { Journal } from './journal.ts';
import { callerFor, toWireError } from './peers.ts';
import { ProgressLog } from './progress-log.ts';
import { RenewalRunner } from './renewal-run.ts';
import { writeKnownHosts } from './ssh-session.ts';
import { writeMetrics } from './write-metrics.ts';

await runDaemon({
  name: 'deployd',
  api: deploydApi,
  async start({ config, log, stateDir, audit }) {
    armCrashHook(stateDir);
    const journal = Journal.open(stateDir, (message) => log.error(message));
    const store = DeliveryStore.open(stateDir, (message) => log.error(message));
    const pruned = store.prune((cert, host) => config.certificates.some((c) => c.name === cert && c.hosts.includes(host)));
    if (pruned.length > 0) log.warn({ pruned }, 'dropped delivery records of hosts or certificates no longer configured');
    if (Object.keys(config.hosts).length > 0) writeKnownHosts(config, stateDir);
    const call = callerFor(config);
    const progress = new ProgressLog();
    const fleet = { config, call, store, audit, progress, log, stateDir };
    const runner = new RenewalRunner({ config, journal, call, progress, log, fleet });
    // After a push or a delivery retry (a run writes them itself): the hosts' state changed.
    const refreshMetrics = () => {
      try {
        writeMetrics(config, journal, new Map(), store);
      } catch (e) {
        log.error({ error: toWireError(e), file: config.renewal.metricsFile }, 'cannot write the metrics file');
      }
    };
    const retries = new DeliveryRetries(store, runner, fleet, log, refreshMetrics);
    runner.recoverAtStart();
    retries.arm();
    const thenRearm = async <T>(work: Promise<T>): Promise<T> => {
      try {
        return await work;
      } finally {
        retries.arm();
      }
    };
    return {
      handlers: {
        'renew.run': (params) => thenRearm(runner.run(params)),
        'renew.progress': async ({ runId, afterSeq }) => {
          const answer = progress.since(runId, afterSeq);
          if (!answer) throw new RpcError(DeploydErrorCode.NO_RUN, `no renewal run ${runId} is known to this deployd`);
          return { runId, ...answer };
        },
        status: async ({ certs }) => ({ certs: await certificateStatus({ config, journal, call, store }, certs) }),
        push: ({ hosts, certs }) => {
          const runId = randomBytes(8).toString('hex');
          return thenRearm(runner.exclusive(runId, async () => {
            const results = await pushToHosts(fleet, runId, hosts, certs);
            const exitCode = results.some((r) => r.outcome === 'failed') ? 1 : results.some((r) => r.outcome === 'delivered') ? 0 : 2;
            refreshMetrics();
            return { results, exitCode };
          }));
        },
        leases: () => call(netdApi, 'lease.list', {}),
      },
      busy: () => retries.busy(),
      stop: async () => retries.stop(),
    };
  },
});
