// Every refused request is audited, but a peer that may connect must not be able to fill the disk
// with refusals (thousands of fsync'd records a second). Per peer uid and interval the first few
// refusals are recorded one by one, with everything a record says; the rest are counted, and one
// record per peer at the interval's end (or when the daemon stops) says how many there were, when,
// and for which codes and methods. Disk use is so bounded by the number of uids that can connect.
import { AuditError } from './error.ts';
import type { AuditEntry } from './log.ts';

export const REFUSALS_COUNTED = 'E_REFUSALS_COUNTED';

export interface RefusalTallyOptions {
  /** Refusals recorded one by one per peer uid and interval. */
  oneByOne?: number;
  intervalMs?: number;
}

interface Bucket {
  peer: AuditEntry['peer'];
  recorded: number;
  counted: number;
  firstAt: string;
  lastAt: string;
  codes: Map<string, number>;
  methods: Map<string, number>;
}

const MAX_PEERS = 1024; // uids tallied apart; refusals of further uids are tallied together
const OTHER_PEERS = -1;
const MAX_METHODS = 16; // method names kept per count; others are summed up as "other"

export class RefusalTally {
  private buckets = new Map<number, Bucket>();
  private readonly oneByOne: number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly audit: { record(entry: AuditEntry): void }, options: RefusalTallyOptions = {}) {
    this.oneByOne = options.oneByOne ?? 10;
    this.timer = setInterval(() => this.flush(), options.intervalMs ?? 60_000).unref();
  }

  refused(entry: AuditEntry): void {
    const now = new Date().toISOString();
    const uid = entry.peer?.uid ?? OTHER_PEERS;
    const key = this.buckets.has(uid) || this.buckets.size < MAX_PEERS - 1 ? uid : OTHER_PEERS;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { peer: entry.peer, recorded: 0, counted: 0, firstAt: now, lastAt: now, 
        codes: new Map(), methods: new Map() };
      this.buckets.set(key, bucket);
    }
    if (bucket.recorded < this.oneByOne) {
      bucket.recorded += 1;
      recordKeepingOnFailure(this.audit, entry);
      return;
    }
    if (bucket.counted === 0) bucket.firstAt = now;
    bucket.counted += 1;
    bucket.lastAt = now;
    bucket.peer = entry.peer;
    increment(bucket.codes, entry.code ?? '-');
    const kept = bucket.methods.has(entry.method) || bucket.methods.size < MAX_METHODS;
    increment(bucket.methods, kept ? entry.method : 'other');
  }

  /** Writes one record per peer with refusals counted in this interval, and starts the next. */
  flush(): void {
    const buckets = this.buckets;
    this.buckets = new Map();
    for (const [uid, b] of buckets) {
      if (b.counted === 0) continue;
      recordKeepingOnFailure(this.audit, {
        peer: uid === OTHER_PEERS ? null : b.peer,
        method: 'refusals.counted',
        outcome: 'refused',
        code: REFUSALS_COUNTED,
        message: `${b.counted} more requests from ${uid === OTHER_PEERS ? 'further uids' : `uid ${uid}`} refused ` +
          `between ${b.firstAt} and ${b.lastAt}, counted, not recorded one by one`,
        detail: {
          count: b.counted, from: b.firstAt, to: b.lastAt,
          codes: Object.fromEntries(b.codes), methods: Object.fromEntries(b.methods),
        },
      });
    }
  }

  /** At shutdown: the last counts, and no more timer. */
  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

/** A refusal changed nothing, so it is answered even when its record must wait: the log keeps it. */
function recordKeepingOnFailure(audit: { record(entry: AuditEntry): void }, entry: AuditEntry): void {
  try {
    audit.record(entry);
  } catch (err) {
    if (!(err instanceof AuditError && err.code === 'E_AUDIT_WRITE')) throw err;
  }
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}
