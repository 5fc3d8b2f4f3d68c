// certsep-netd: opens a configured port from outside to the local http-01 listener for a while
// (a lease), and closes it. See api.ts for what it does and for whom.
//
// Authority (what netd may touch, and why):
//  - uid certsep-net with CAP_NET_ADMIN as its only capability (ambient, from its unit); never
//    root (checked at start). CAP_NET_ADMIN is for nft and for net.ipv4.conf.<if>.route_localnet.
//  - nftables: its own table `inet certsep` only, replaced whole through `nft -f -` (nft-ruleset.ts).
//  - UPnP: port mappings on the LAN's IGD described "certsep:<exposure>", to this host only.
//  - files: its state dir (<stateDir>/netd/leases.json) and its audit log; nothing else.
//  - programs: /usr/sbin/nft, /usr/bin/upnpc, /usr/sbin/ip, by execFile with argument arrays.
//
// UPnP client: Debian's upnpc (miniupnpc), run per operation. It is the IGD client consumer
// routers are tested against (SSDP quirks, IGDv1/v2 service selection, SOAP encoding), it ships
// with the distribution and gets its security fixes there, and it keeps an XML/SOAP parser out of
// netd's own code. The cost is parsing its text output (upnpc.ts), pinned by the tests against a
// real miniupnpd.
import { basename } from 'node:path';
import { ConfigError } from '../config/error.ts';
import type { Config } from '../config/schema.ts';
import { EXIT_CONFIG, runDaemon, type DaemonContext } from '../runtime/daemon.ts';
import { NetdError, netdApi } from './api.ts';
import { exposureConfigProblems } from './exposures.ts';
import { LeaseKeeper } from './lease-keeper.ts';
import { emptyState, LeaseStore, type State } from './lease-store.ts';
import { privilegeProblem } from './privileges.ts';
import { reconcile, RECONCILE_INTERVAL_MS } from './reconcile.ts';

/** Why netd cannot run with a config as it stands (at start, and for an edited one). */
function netdProblems(config: Config): string[] {
  return [privilegeProblem(config), ...exposureConfigProblems(config)].filter((p) => p !== null);
}

await runDaemon({
  name: 'netd',
  api: netdApi,
  async start(ctx) {
    const problems = netdProblems(ctx.config());
    if (problems.length > 0) {
      for (const p of problems) ctx.log.fatal(p);
      process.exit(EXIT_CONFIG);
    }
    const store = new LeaseStore(ctx.stateDir);
    // The keeper reads the config in force at each use; it changes only while the keeper is idle.
    const keeperContext = { get config() { return ctx.config(); }, log: ctx.log, audit: ctx.audit };
    const keeper = new LeaseKeeper(keeperContext, store, loadOrStartEmpty(ctx, store));
    keeper.armAllExpiries();
    await reconcile(keeper, 'start');
    const reconcileLogged = (reason: 'periodic' | 'reload', previous?: Config) => {
      reconcile(keeper, reason, previous).catch((err: unknown) => ctx.log.error({ err, reason }, 'reconcile failed'));
    };
    const timer = setInterval(() => {
      ctx.refreshConfig();
      reconcileLogged('periodic');
    }, RECONCILE_INTERVAL_MS);
    return {
      // The timers that end leases (and restore route_localnet) live in this process.
      busy: () => keeper.holdsLeases(),
      handlers: {
        'lease.open': (p) => keeper.open(p.cert, p.exposure, p.ttlSeconds),
        'lease.close': async (p) => {
          await keeper.close(p.id);
          return { id: p.id, closed: true as const };
        },
        'lease.list': async () => ({ leases: keeper.liveLeases() }),
      },
      configBusy: () => (keeper.busy ? 'a lease change or reconcile is in progress' : null),
      prepareConfig: (next, previous) => {
        const refused = netdProblems(next);
        const file = basename(ctx.configPath);
        if (refused.length > 0) throw new ConfigError('E_CONFIG', refused.map((message) => ({ file, message })));
        // Leases of exposures no longer configured end, the table follows the new exposures.
        return () => reconcileLogged('reload', previous);
      },
      async stop() {
        clearInterval(timer);
        keeper.stopTimers();
        // An expiry or close in progress finishes (and puts route_localnet back) before exit.
        await keeper.serialized(async () => undefined);
      },
    };
  },
});

/**
 * Starting empty is the safe direction: reconcile then closes everything certsep has open. The
 * unreadable store is moved aside, so the next start does not trip over it and an admin can look.
 */
function loadOrStartEmpty(ctx: DaemonContext, store: LeaseStore): State {
  try {
    return store.load();
  } catch (err) {
    let where: string;
    try {
      where = `moved to ${store.moveAside()}`;
    } catch (e) {
      where = `could not be moved aside (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
    }
    const message = `${(err as Error).message}; ${where}; starting with no leases`;
    ctx.log.error({ err }, message);
    ctx.audit.record({ peer: null, method: 'state.load', outcome: 'error', code: NetdError.STATE, message });
    return emptyState();
  }
}
