// deployd's delivery queue and per-host record: one JSON file (<stateDir>/deliveries.json),
// rewritten atomically like the journal. For each certificate on each of its hosts:
//  - pending: a chain issued for that host's key that the host has not confirmed installing yet.
//    It is written BEFORE the first delivery attempt, so a host that is down, a crash or a
//    failed check never costs a new order: the chain is offered again (retries with backoff,
//    certsepctl push, the next run) until it is delivered, its life is half gone, or the host
//    refuses the chain itself.
//  - delivered: what the host last confirmed (installed, checked, reloaded), with the chain, so
//    `certsepctl push` can deliver it again without ordering.
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { KeyId, KeyType } from '../keyd/api.ts';
import { describeZodError } from '../proto/envelope.ts';
import { writeFileAtomically } from '../runtime/write-file-atomically.ts';
import { Step, WireError } from './api.ts';
import type { AriCache } from './installed-state.ts';
import { Ari } from './journal.ts';

const IsoTime = z.iso.datetime({ offset: true });

const Chain = z.strictObject({ keyId: KeyId, chainPem: z.string(), serial: z.string(), notAfter: IsoTime });
export type Chain = z.infer<typeof Chain>;
export type Chains = Partial<Record<KeyType, Chain>>;

const HostRecord = z.strictObject({
  pending: z
    .strictObject({
      chains: z.partialRecord(KeyType, Chain),
      issuedAt: IsoTime,
      attempts: z.number().int().min(0),
      nextAttempt: IsoTime,
      /** Retries are used up: only a run or `certsepctl push` offers it again. */
      gaveUp: z.boolean(),
    })
    .optional(),
  delivered: z.strictObject({ at: IsoTime, chains: z.partialRecord(KeyType, Chain) }).optional(),
  lastError: z.strictObject({ at: IsoTime, step: Step, error: WireError }).optional(),
  lastContact: IsoTime.optional(),
  /** The CA's renewal window (ARI) for the leaf this host serves, as the journal keeps it for local certificates. */
  ari: Ari.optional(),
});
export type HostRecord = z.infer<typeof HostRecord>;

const StoreFile = z.strictObject({ version: z.literal(1), hosts: z.record(z.string(), HostRecord) });

const key = (cert: string, host: string) => `${cert}@${host}`;

export class DeliveryStore {
  private constructor(private readonly path: string, private readonly records: Map<string, HostRecord>) {}

  /** An unreadable file is moved aside: the cost is one order per host, never a wrong install. */
  static open(stateDir: string, onCorrupt: (message: string) => void = () => undefined): DeliveryStore {
    const path = join(stateDir, 'deliveries.json');
    const records = new Map<string, HostRecord>();
    if (existsSync(path)) {
      try {
        for (const [k, record] of Object.entries(StoreFile.parse(JSON.parse(readFileSync(path, 'utf8'))).hosts)) records.set(k, record);
      } catch (e) {
        const aside = `${path}.corrupt-${Date.now()}`;
        renameSync(path, aside);
        const why = e instanceof z.ZodError ? describeZodError(e) : (e as Error).message;
        onCorrupt(`delivery queue ${path} was unreadable (${why}); moved to ${aside}`);
      }
    }
    return new DeliveryStore(path, records);
  }

  get(cert: string, host: string): HostRecord {
    return structuredClone(this.records.get(key(cert, host)) ?? {});
  }

  /** Applies `change` to a copy of the record and makes it durable before returning. */
  update(cert: string, host: string, change: (record: HostRecord) => void): HostRecord {
    const record = this.get(cert, host);
    change(record);
    this.records.set(key(cert, host), record);
    this.persist();
    return structuredClone(record);
  }

  private persist(): void {
    writeFileAtomically(dirname(this.path), basename(this.path), `${JSON.stringify({ version: 1, hosts: Object.fromEntries(this.records) })}\n`, 0o600);
  }

  /** The host's renewal window, kept in its record. */
  ariCache(cert: string, host: string): AriCache {
    return { get: () => this.get(cert, host).ari, set: (ari) => void this.update(cert, host, (r) => { r.ari = ari; }) };
  }

  /**
   * Forgets certificate/host pairs the config no longer has (a host or certificate removed):
   * nothing would ever deliver their chains, and their retries must not keep deployd busy.
   */
  prune(configured: (cert: string, host: string) => boolean): string[] {
    const gone = [...this.records.keys()].filter((k) => !configured(...splitKey(k)));
    if (gone.length === 0) return [];
    for (const k of gone) this.records.delete(k);
    this.persist();
    return gone;
  }

  /** Pending deliveries whose next attempt is due, as [cert, host] pairs. */
  due(now: Date): [string, string][] {
    return [...this.records.entries()]
      .filter(([, r]) => r.pending && !r.pending.gaveUp && new Date(r.pending.nextAttempt) <= now)
      .map(([k]) => splitKey(k));
  }

  /** The earliest next attempt of a pending delivery that still has retries. */
  nextAttempt(): Date | undefined {
    const times = [...this.records.values()].flatMap((r) => (r.pending && !r.pending.gaveUp ? [Date.parse(r.pending.nextAttempt)] : []));
    return times.length > 0 ? new Date(Math.min(...times)) : undefined;
  }
}

function splitKey(k: string): [string, string] {
  const at = k.lastIndexOf('@');
  return [k.slice(0, at), k.slice(at + 1)];
}
