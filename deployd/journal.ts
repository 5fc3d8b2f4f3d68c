// deployd's memory: one JSON file in its state dir, rewritten atomically (runtime/write-file-atomically.ts)
// before every step that has an effect elsewhere, so a kill -9 at any instant leaves a record of
// exactly what was under way: an open lease to close, an issued chain to install instead of
// ordering again, an install to roll back.
//
// Why a JSON file and not SQLite: the state is a few KB per certificate and written by one
// process; a synchronous atomic rename gives the same crash guarantee with no native module
// (better-sqlite3 would be one more addon to build and audit for every install).
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { KeyType } from '../keyd/api.ts';
import { Step, WireError } from './api.ts';
import { writeFileAtomically } from '../runtime/write-file-atomically.ts';
import { readLeaf } from './leaf.ts';

const IsoTime = z.iso.datetime({ offset: true });

/** One key type of a certificate in a run that has not finished. */
const KeyTypeProgress = z.strictObject({
  step: Step,
  keyId: z.string().optional(),
  /** The chain acmed returned: kept until committed so a resumed run installs it instead of ordering again. */
  chainPem: z.string().optional(),
  serial: z.string().optional(),
  notAfter: IsoTime.optional(),
});
export type KeyTypeProgress = z.infer<typeof KeyTypeProgress>;

const InFlight = z.strictObject({
  runId: z.string(),
  startedAt: IsoTime,
  /** A netd lease this certificate holds; closed in the run's finally, or on the next start. */
  leaseId: z.string().optional(),
  /** privd may hold a pending install for this certificate (deploy.install was sent). */
  installSent: z.boolean().default(false),
  keyTypes: z.partialRecord(KeyType, KeyTypeProgress).default({}),
});
export type InFlight = z.infer<typeof InFlight>;

export const Ari = z.strictObject({
  serial: z.string(),
  supported: z.boolean(),
  start: IsoTime.optional(),
  end: IsoTime.optional(),
  /** The random instant inside the window, chosen once per window (RFC 9773 section 4.2). */
  chosen: IsoTime.optional(),
  recheckAt: IsoTime,
});
export type Ari = z.infer<typeof Ari>;

const CertRecord = z.strictObject({
  /** The leaf deployd last saw committed, per key type: for ARI, `replaces` and the names check. */
  issued: z.partialRecord(KeyType, z.strictObject({ leafPem: z.string() })).default({}),
  renewals: z.number().int().min(0).default(0),
  lastSuccess: IsoTime.optional(),
  lastFailure: z.strictObject({ at: IsoTime, step: Step, error: WireError }).optional(),
  consecutiveFailures: z.number().int().min(0).default(0),
  nextAttempt: IsoTime.optional(),
  /** The CA's Retry-After: not even an admin's renew goes before it, unless forced. */
  rateLimitedUntil: IsoTime.optional(),
  ari: Ari.optional(),
  inFlight: InFlight.optional(),
});
export type CertRecord = z.infer<typeof CertRecord>;

const JournalFile = z.strictObject({
  version: z.literal(1),
  certs: z.record(z.string(), CertRecord),
});

const EMPTY_RECORD: CertRecord = { issued: {}, renewals: 0, consecutiveFailures: 0 };

/**
 * A renewal that completed: the installed leaves become the ones issued, and every trace of
 * failure, backoff and the old ARI answer goes (the live and the crash-recovery paths share this).
 */
export function markRenewed(record: CertRecord, chains: Partial<Record<string, string>>): void {
  for (const [keyType, chainPem] of Object.entries(chains)) {
    if (chainPem) record.issued[keyType as keyof CertRecord['issued']] = { leafPem: readLeaf(chainPem).leafPem };
  }
  record.renewals += 1;
  record.lastSuccess = new Date().toISOString();
  record.consecutiveFailures = 0;
  delete record.nextAttempt;
  delete record.rateLimitedUntil;
  delete record.ari;
}

export class Journal {
  private constructor(
    private readonly path: string,
    private readonly certs: Map<string, CertRecord>,
  ) {}

  /**
   * Reads <stateDir>/journal.json. An unreadable journal is moved aside (and reported through
   * `onCorrupt`), not fatal: the cost is at most one duplicate order, never a wrong install.
   */
  static open(stateDir: string, onCorrupt: (message: string) => void = () => undefined): Journal {
    const path = join(stateDir, 'journal.json');
    const certs = new Map<string, CertRecord>();
    if (existsSync(path)) {
      try {
        const parsed = JournalFile.parse(JSON.parse(readFileSync(path, 'utf8')));
        for (const [name, record] of Object.entries(parsed.certs)) certs.set(name, record);
      } catch (e) {
        const aside = `${path}.corrupt-${Date.now()}`;
        renameSync(path, aside);
        onCorrupt(`journal ${path} was unreadable (${(e as Error).message}); moved to ${aside}, starting afresh`);
      }
    }
    return new Journal(path, certs);
  }

  get(cert: string): CertRecord {
    return structuredClone(this.certs.get(cert) ?? EMPTY_RECORD);
  }

  names(): string[] {
    return [...this.certs.keys()];
  }

  /** Applies `change` to a copy of the record and makes it durable before returning. */
  update(cert: string, change: (record: CertRecord) => void): CertRecord {
    const record = this.get(cert);
    change(record);
    this.certs.set(cert, record);
    this.persist();
    return structuredClone(record);
  }

  /** Records the step of one key type of a certificate's current run. */
  recordStep(cert: string, keyType: KeyType, progress: Partial<KeyTypeProgress> & { step: KeyTypeProgress['step'] }): void {
    this.update(cert, (record) => {
      if (!record.inFlight) throw new Error(`journal: ${cert} has no run in flight`);
      record.inFlight.keyTypes[keyType] = { ...record.inFlight.keyTypes[keyType], ...progress };
    });
  }

  private persist(): void {
    const file = { version: 1 as const, certs: Object.fromEntries(this.certs) };
    writeFileAtomically(dirname(this.path), basename(this.path), `${JSON.stringify(file)}\n`, 0o600);
  }
}
