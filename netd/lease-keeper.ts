// The leases and what they open. One lease = one certificate's use of one configured exposure
// until a deadline. An exposure is open while any lease on it lives, until the latest of their
// deadlines; that deadline is handed to the router (UPnP lease duration) or the kernel (set
// element timeout), which close the port by themselves. Every change goes through one queue, so
// an open, a close, an expiry and a reconcile never interleave.
import { randomBytes } from 'node:crypto';
import type { Config, ExposureConfig } from '../config/schema.ts';
import type { AuditLog } from '../audit/log.ts';
import type { Logger } from '../proto/log.ts';
import { RpcError } from '../proto/errors.ts';
import { MAX_LEASES, MAX_LEASES_PER_EXPOSURE, NetdError, type Lease } from './api.ts';
import { exposureForLease } from './exposures.ts';
import type { LeaseStore, State } from './lease-store.ts';
import { replaceCertsepTable } from './nft-table.ts';
import type { NftExposure } from './nft-ruleset.ts';
import { isLoopbackTarget, readRouteLocalnet, writeRouteLocalnet } from './route-localnet.ts';
import { closeUpnpMapping, Gateways, openUpnpMapping, type Gateway, type UpnpExposure } from './upnp-mapping.ts';

export interface KeeperContext {
  /** The config in force; netd switches to an edited one only while the queue is idle (busy). */
  readonly config: Config;
  log: Logger;
  audit: AuditLog;
}

/** What applying an exposure changed, for the audit record. */
export type Applied = Record<string, unknown>;

export class LeaseKeeper {
  readonly gateways = new Gateways();
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(readonly ctx: KeeperContext, private readonly store: LeaseStore, private state: State) {}

  /** Runs fn after every change queued before it. */
  serialized<T>(fn: () => Promise<T>): Promise<T> {
    this.queued += 1;
    const run = this.queue.then(fn, fn).finally(() => { this.queued -= 1; });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** A change, an expiry or a reconcile is queued or running. */
  get busy(): boolean {
    return this.queued > 0;
  }

  liveLeases(): Lease[] {
    const now = Date.now();
    return this.state.leases.filter((l) => Date.parse(l.deadline) > now);
  }

  open(cert: string, exposure: string, ttlSeconds: number): Promise<Lease> {
    const x = exposureForLease(this.ctx.config, cert, exposure, ttlSeconds);
    return this.serialized(async () => {
      this.assertRoomForLease(exposure);
      const now = Date.now();
      const lease: Lease = {
        id: randomBytes(16).toString('hex'),
        cert,
        exposure,
        method: x.method,
        externalPort: x.externalPort,
        internalAddress: x.method === 'nft' ? x.internalAddress : (x.internalAddress ?? (await this.gateways.on(x.interface)).lanAddress),
        internalPort: x.internalPort,
        openedAt: new Date(now).toISOString(),
        deadline: new Date(now + ttlSeconds * 1000).toISOString(),
      };
      // Saved before the port opens: if netd dies in between, the next start knows the lease.
      this.state.leases.push(lease);
      this.save();
      let applied: Applied;
      try {
        applied = await this.applyExposure(exposure);
      } catch (e) {
        this.forget(lease.id);
        await this.applyExposure(exposure).catch((again: unknown) => this.ctx.log.error({ err: again, exposure }, 'could not put the exposure back as it was'));
        throw e;
      }
      if (typeof applied.externalAddress === 'string') lease.externalAddress = applied.externalAddress;
      this.save();
      this.armExpiry(lease);
      this.ctx.log.info({ lease, ...applied }, 'lease opened');
      return lease;
    });
  }

  close(id: string): Promise<void> {
    return this.serialized(async () => {
      const lease = this.state.leases.find((l) => l.id === id);
      if (!lease) throw new RpcError(NetdError.NO_LEASE, `no live lease ${id} (it was closed, it expired, or it never existed)`);
      this.forget(id);
      const applied = await this.applyExposure(lease.exposure);
      this.ctx.log.info({ lease, ...applied }, 'lease closed');
    });
  }

  /** Ends the leases whose deadline passed (each one audited); the caller holds the queue. */
  async expireDue(): Promise<Lease[]> {
    const now = Date.now();
    const due = this.state.leases.filter((l) => Date.parse(l.deadline) <= now);
    for (const lease of due) {
      this.forget(lease.id);
      const started = performance.now();
      try {
        const applied = Object.hasOwn(this.ctx.config.exposures, lease.exposure) ? await this.applyExposure(lease.exposure) : {};
        this.auditExpiry(lease, 'ok', started, applied);
      } catch (e) {
        this.auditExpiry(lease, 'error', started, {}, e);
      }
    }
    return due;
  }

  /** Forgets leases the config no longer allows (exposure gone or changed, certificate moved). */
  dropUnconfigured(): Lease[] {
    const dropped = this.state.leases.filter((l) => {
      const x = Object.hasOwn(this.ctx.config.exposures, l.exposure) ? this.ctx.config.exposures[l.exposure] : undefined;
      const cert = this.ctx.config.certificates.find((c) => c.name === l.cert);
      return !x || x.method !== l.method || x.externalPort !== l.externalPort || cert?.exposure !== l.exposure;
    });
    for (const lease of dropped) this.forget(lease.id);
    return dropped;
  }

  /** Brings one exposure's router mapping or set element in line with its live leases. */
  async applyExposure(name: string): Promise<Applied> {
    const x = this.ctx.config.exposures[name]!;
    if (x.method === 'nft') return { routeLocalnet: await this.rebuildNftTable() };
    const deadline = this.deadlineOf(name);
    return this.gateways.use(x.interface, async (gateway) => {
      const exposure = upnpExposure(name, x, gateway);
      const seconds = deadline === null ? 0 : Math.ceil((deadline - Date.now()) / 1000);
      if (seconds < 1) return { mappingDeleted: await closeUpnpMapping(gateway, exposure) };
      const opened = await openUpnpMapping(gateway, exposure, seconds);
      if (opened.routerLeaseSeconds > seconds + 5) {
        this.ctx.log.warn({ exposure: name, asked: seconds, granted: opened.routerLeaseSeconds }, 'the router lengthened the mapping (its min_lifetime); netd deletes it at the deadline, but if netd dies the router keeps it that long');
      }
      return { externalAddress: opened.externalAddress, routerLeaseSeconds: opened.routerLeaseSeconds };
    });
  }

  /**
   * Replaces netd's nftables table with the config's nft exposures and one element per open
   * exposure; raises route_localnet where a lease needs it and restores it where none does.
   * Each raise is recorded (leases.json and the table) before the sysctl changes, each restore
   * forgotten only after: a crash in between leaves a record of a value to put back, never an
   * interface at 1 that nothing remembers. Returns the route_localnet changes.
   */
  async rebuildNftTable(): Promise<string[]> {
    const exposures: NftExposure[] = [];
    const open = [];
    const needsLocalnet = new Set<string>();
    for (const [name, x] of Object.entries(this.ctx.config.exposures)) {
      if (x.method !== 'nft') continue;
      exposures.push({ name, interface: x.interface, externalPort: x.externalPort, internalAddress: x.internalAddress, internalPort: x.internalPort });
      const deadline = this.deadlineOf(name);
      if (deadline === null) continue;
      open.push({ interface: x.interface, externalPort: x.externalPort, timeoutMs: deadline - Date.now() });
      if (isLoopbackTarget(x.internalAddress)) needsLocalnet.add(x.interface);
    }
    const changes: string[] = [];
    for (const [iface, was] of Object.entries(this.state.routeLocalnet)) {
      if (needsLocalnet.has(iface)) continue;
      changes.push(restoreRouteLocalnet(iface, was));
      delete this.state.routeLocalnet[iface];
      this.save();
    }
    // A value of 1 that netd did not set is the admin's: left alone, and never "restored".
    const raising = [...needsLocalnet].filter((iface) => readRouteLocalnet(iface) !== '1');
    for (const iface of raising) this.state.routeLocalnet[iface] ??= '0';
    if (raising.length > 0) this.save();
    await replaceCertsepTable(exposures, open, Object.keys(this.state.routeLocalnet));
    for (const iface of raising) {
      writeRouteLocalnet(iface, '1');
      changes.push(`${iface} route_localnet 0 -> 1`);
    }
    return changes;
  }

  /** Adds the raises the kernel's record knows of and leases.json does not (it was lost or unreadable). */
  rememberRaisedLocalnet(interfaces: readonly string[]): void {
    const unknown = interfaces.filter((iface) => !Object.hasOwn(this.state.routeLocalnet, iface));
    if (unknown.length === 0) return;
    for (const iface of unknown) this.state.routeLocalnet[iface] = '0';
    this.save();
  }

  /** True while any lease is held, expired ones not yet ended included: their timers must run here. */
  holdsLeases(): boolean {
    return this.state.leases.length > 0;
  }

  /** Stops the expiry timers; leases stay saved, and their deadlines are enforced by the router or the kernel. */
  stopTimers(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  armAllExpiries(): void {
    for (const lease of this.state.leases) this.armExpiry(lease);
  }

  private armExpiry(lease: Lease): void {
    clearTimeout(this.timers.get(lease.id));
    const ms = Math.max(0, Date.parse(lease.deadline) - Date.now()) + 50;
    this.timers.set(lease.id, setTimeout(() => void this.serialized(() => this.expireDue()), ms));
  }

  private assertRoomForLease(exposure: string): void {
    const onExposure = this.state.leases.filter((l) => l.exposure === exposure).length;
    if (onExposure >= MAX_LEASES_PER_EXPOSURE) {
      throw new RpcError(
        NetdError.TOO_MANY_LEASES,
        `exposure "${exposure}" already holds ${onExposure} leases, the most one exposure may hold ` +
          `(${MAX_LEASES_PER_EXPOSURE} leases); close some or let them expire`,
      );
    }
    if (this.state.leases.length >= MAX_LEASES) {
      const held = this.state.leases.length;
      throw new RpcError(NetdError.TOO_MANY_LEASES, `netd already holds ${held} leases, all it keeps (${MAX_LEASES})`);
    }
  }

  /** The latest deadline of the exposure's live leases, or null when none lives. */
  private deadlineOf(name: string): number | null {
    const deadlines = this.liveLeases().filter((l) => l.exposure === name).map((l) => Date.parse(l.deadline));
    return deadlines.length > 0 ? Math.max(...deadlines) : null;
  }

  private forget(id: string): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    this.state.leases = this.state.leases.filter((l) => l.id !== id);
    this.save();
  }

  private save(): void {
    this.store.save(this.state);
  }

  private auditExpiry(lease: Lease, outcome: 'ok' | 'error', started: number, applied: Applied, err?: unknown): void {
    const rpc = err instanceof RpcError ? err : undefined;
    this.ctx.audit.record({
      peer: null,
      method: 'lease.expire',
      params: { id: lease.id, cert: lease.cert, exposure: lease.exposure },
      outcome,
      ...(err ? { code: rpc?.code ?? 'E_INTERNAL', message: rpc?.message ?? String(err) } : {}),
      durationMs: Math.round(performance.now() - started),
      detail: { deadline: lease.deadline, method: lease.method, ...applied },
    });
  }
}

/** Puts an interface's route_localnet back; an interface that is gone has nothing to put back. */
function restoreRouteLocalnet(iface: string, was: string): string {
  try {
    writeRouteLocalnet(iface, was);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return `${iface} is gone; its route_localnet went with it`;
    throw e;
  }
  return `${iface} route_localnet restored to ${was}`;
}

function upnpExposure(name: string, x: Extract<ExposureConfig, { method: 'upnp' }>, gateway: Gateway): UpnpExposure {
  return { name, interface: x.interface, externalPort: x.externalPort, internalPort: x.internalPort, internalClient: x.internalAddress ?? gateway.lanAddress };
}
