// Reconcile: make what is open match the live leases, on start, periodically and when the config
// changed. A netd that crashed, was killed or was restarted with another config (or without its
// lease store) may have left set
// elements, router mappings or a raised route_localnet behind; the kernel and the router end them
// at their deadlines anyway, but a stale one (e.g. an element added by hand with a long timeout)
// ends here. After an edit, leases of exposures no longer configured are forgotten, the table is
// rebuilt from the new exposures and the mappings the old ones made are deleted. Only certsep's
// own things are looked at: its nft table, and router mappings to this host described "certsep:…".
import type { Config } from '../config/schema.ts';
import type { Lease } from './api.ts';
import type { LeaseKeeper } from './lease-keeper.ts';
import { readExposedElements, readRaisedLocalnet, type ExposedElement } from './nft-table.ts';
import { isCertsepMapping } from './upnp-mapping.ts';
import { deleteMapping, listMappings } from './upnpc.ts';

export const RECONCILE_INTERVAL_MS = 30_000;

export type ReconcileReason = 'start' | 'periodic' | 'reload';

interface Findings {
  expired: string[];
  dropped: string[];
  nftStale: string[];
  nftMissing: string[];
  routeLocalnet: string[];
  upnpStale: string[];
  upnpMissing: string[];
  errors: string[];
}

/**
 * One reconcile pass, queued behind any lease change in progress; audited (periodic ones only when
 * they found something). `previous`: the config before a reload, whose UPnP mappings may be left.
 */
export function reconcile(keeper: LeaseKeeper, reason: ReconcileReason, previous?: Config): Promise<void> {
  return keeper.serialized(async () => {
    const started = performance.now();
    const f: Findings = { expired: [], dropped: [], nftStale: [], nftMissing: [], routeLocalnet: [], upnpStale: [], upnpMissing: [], errors: [] };
    // Read before the expiries: expiring a lease rebuilds the table, which would drop a stale
    // element without this pass ever seeing, reporting or auditing it.
    const nftBefore = await readExposedElements().catch((e: unknown) => {
      f.errors.push(`nft: ${(e as Error).message}`);
      return undefined;
    });
    const expired = await keeper.expireDue();
    f.expired = expired.map(describe);
    f.dropped = keeper.dropUnconfigured().map(describe);
    if (nftBefore !== undefined) await reconcileNft(keeper, reason, f, nftBefore, expired).catch((e: unknown) => f.errors.push(`nft: ${(e as Error).message}`));
    await reconcileUpnp(keeper, f, previous);
    const changed = Object.entries(f).some(([k, v]) => k !== 'expired' && v.length > 0);
    if (reason === 'periodic' && !changed) return;
    keeper.ctx.log.info({ reason, ...f }, 'reconciled');
    keeper.ctx.audit.record({
      peer: null,
      method: 'reconcile',
      params: { reason },
      outcome: f.errors.length > 0 ? 'error' : 'ok',
      ...(f.errors.length > 0 ? { code: 'E_RECONCILE', message: f.errors.join('; ').slice(0, 1000) } : {}),
      durationMs: Math.round(performance.now() - started),
      detail: { ...f, liveLeases: keeper.liveLeases().length },
    });
  });
}

/**
 * Compares the set as it was before this pass's expiries (`current`) with the live leases. The
 * element of a lease that expired in this pass is not stale: its end is that expiry, audited on
 * its own.
 */
async function reconcileNft(keeper: LeaseKeeper, reason: ReconcileReason, f: Findings, current: ExposedElement[] | null, expired: Lease[]): Promise<void> {
  const exposures = Object.entries(keeper.ctx.config.exposures).filter(([, x]) => x.method === 'nft');
  if (current === null && exposures.length === 0) return;
  const key = (iface: string, port: number) => `${iface} . ${port}`;
  const keysOf = (leases: Lease[]) => new Set(leases.filter((l) => l.method === 'nft' && Object.hasOwn(keeper.ctx.config.exposures, l.exposure)).map((l) => {
    const x = keeper.ctx.config.exposures[l.exposure]!;
    return key(x.interface, x.externalPort);
  }));
  const wanted = keysOf(keeper.liveLeases());
  const justExpired = keysOf(expired);
  const present = new Set((current ?? []).map((e) => key(e.interface, e.externalPort)));
  f.nftStale = [...present].filter((k) => !wanted.has(k) && !justExpired.has(k));
  f.nftMissing = [...wanted].filter((k) => !present.has(k));
  // On start and reload the table is always rebuilt: the config (and so the rules) may have changed.
  // And on start what the old table says netd raised is put back too, even if leases.json forgot it.
  if (reason === 'start') keeper.rememberRaisedLocalnet(await readRaisedLocalnet());
  if (reason !== 'periodic' || current === null || f.nftStale.length > 0 || f.nftMissing.length > 0) {
    f.routeLocalnet = await keeper.rebuildNftTable();
  }
}

async function reconcileUpnp(keeper: LeaseKeeper, f: Findings, previous: Config | undefined): Promise<void> {
  const byInterface = new Map<string, string[]>();
  for (const [name, x] of Object.entries(keeper.ctx.config.exposures)) {
    if (x.method === 'upnp') byInterface.set(x.interface, [...(byInterface.get(x.interface) ?? []), name]);
  }
  // Interfaces and addresses the previous config mapped: what it left there is stale now.
  const formerClients = new Map<string, string[]>();
  for (const x of Object.values(previous?.exposures ?? {})) {
    if (x.method !== 'upnp') continue;
    if (!byInterface.has(x.interface)) byInterface.set(x.interface, []);
    const clients = formerClients.get(x.interface) ?? [];
    formerClients.set(x.interface, x.internalAddress ? [...clients, x.internalAddress] : clients);
  }
  for (const [iface, names] of byInterface) {
    try {
      await keeper.gateways.use(iface, async (gateway) => {
        const exposures = names.map((name) => ({ name, x: keeper.ctx.config.exposures[name]! }));
        const clients = new Set([
          gateway.lanAddress,
          ...exposures.flatMap(({ x }) => (x.internalAddress ? [x.internalAddress] : [])),
          ...(formerClients.get(iface) ?? []),
        ]);
        const openNames = new Set(keeper.liveLeases().map((l) => l.exposure));
        const livePorts = new Set(exposures.filter(({ name }) => openNames.has(name)).map(({ x }) => x.externalPort));
        const mappings = (await listMappings(gateway.igd)).filter((m) => isCertsepMapping(m, clients));
        for (const m of mappings) {
          if (livePorts.has(m.externalPort)) continue;
          await deleteMapping(gateway.igd, m.externalPort);
          f.upnpStale.push(`${iface} ${m.externalPort}/tcp -> ${m.internalClient}:${m.internalPort} "${m.description}" (${m.leaseSeconds} s left)`);
        }
        for (const { name, x } of exposures) {
          if (!openNames.has(name) || mappings.some((m) => m.externalPort === x.externalPort)) continue;
          await keeper.applyExposure(name);
          f.upnpMissing.push(`${name}: ${iface} ${x.externalPort}/tcp mapped again`);
        }
      });
    } catch (e) {
      f.errors.push(`upnp on ${iface}: ${(e as Error).message}`);
    }
  }
}

function describe(l: Lease): string {
  return `${l.id} ${l.cert} on ${l.exposure} (deadline ${l.deadline})`;
}
