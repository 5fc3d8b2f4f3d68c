// certsep-deployd: the one scheduler. Runs as certsep-deploy with no capabilities.
// May touch: its state dir (<stateDir>/deployd: journal.json, deliveries.json, ssh/ with the
// known_hosts it writes from the config), the metrics file the config names, hooks the config
// names (run as itself), and the sockets of keyd, netd, acmed and privd.
// Holds no private key: every local effect goes through another daemon's pledge (see */api.ts).
// With hosts: configured it also runs `ssh` (ssh-session.ts) to those hosts' forced command,
// whose pledge is remote/api.ts; that needs network (systemd/certsep-deployd-fleet.conf).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
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
import { sshDir, writeKnownHosts } from './ssh-session.ts';
import { writeMetrics } from './write-metrics.ts';

await runDaemon({
  name: 'deployd',
  api: deploydApi,
  async start({ config, refreshConfig, log, stateDir, audit }) {
    armCrashHook(stateDir);
    const journal = Journal.open(stateDir, (message) => log.error(message));
    const store = DeliveryStore.open(stateDir, (message) => log.error(message));
    // Delivery records and known_hosts follow the config: at start, and whenever it changes.
    const followHosts = (now: Config) => {
      const configured = (cert: string, host: string) =>
        now.certificates.some((c) => c.name === cert && c.hosts.includes(host));
      const pruned = store.prune(configured);
      if (pruned.length === 0) return;
      log.warn({ pruned }, 'dropped delivery records of hosts or certificates no longer configured');
    };
    followHosts(config());
    if (Object.keys(config().hosts).length > 0) writeKnownHosts(config(), stateDir);
    const call = callerFor(config());
    const progress = new ProgressLog();
    // `config` here is the one in force when read: deployd switches only between runs (configBusy),
    // so every read within a run, a push or a delivery retry gives the same object.
    const fleet = { get config() { return config(); }, call, store, audit, progress, log, stateDir };
    const runner = new RenewalRunner({ get config() { return config(); }, journal, call, progress, log, fleet });
    // After a push or a delivery retry (a run writes them itself): the hosts' state changed.
    const refreshMetrics = () => {
      try {
        writeMetrics(config(), journal, new Map(), store);
      } catch (e) {
        log.error({ error: toWireError(e), file: config().renewal.metricsFile }, 'cannot write the metrics file');
      }
    };
    const retries = new DeliveryRetries(store, runner, fleet, log, refreshMetrics, refreshConfig);
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
        status: async ({ certs }) => ({
          certs: await certificateStatus({ config: config(), journal, call, store }, certs),
        }),
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
      configBusy: () => runner.activity(),
      // known_hosts is written before the new config takes over: if it cannot be, the edit is
      // refused and the hosts keep the keys they had.
      prepareConfig: (next) => {
        const pinned = existsSync(join(sshDir(stateDir), 'known_hosts'));
        if (Object.keys(next.hosts).length > 0 || pinned) writeKnownHosts(next, stateDir);
        return () => {
          followHosts(next);
          refreshMetrics();
          retries.arm();
        };
      },
      stop: async () => retries.stop(),
    };
  },
});
