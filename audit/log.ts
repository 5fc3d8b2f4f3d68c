// The audit trail one daemon appends to: <auditDir>/<daemon>.audit.jsonl. One file per daemon,
// so a compromised unprivileged daemon can only touch its own record. Every record is written
// with one O_APPEND write and fsync'd before record() returns: callers act only after their
// action is on disk, and fail closed when it cannot be (record() throws). A record that cannot
// be written (a full disk) is kept in memory and written, in order, as soon as the log can be
// written again: writable() says whether that is now, so a daemon refuses what it would have to
// record until then instead of stopping. Each record written is also anchored (anchor.ts).
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { isSafeName } from '../config/schema.ts';
import type { AuditAnchor } from './anchor.ts';
import { AuditError } from './error.ts';
import { auditFileName, GENESIS_HASH, hashLine } from './record.ts';
import { summarizeParams } from './summarize.ts';
import { findLastLine, readTornLine } from './tail.ts';

export { summarizeParams } from './summarize.ts';

export interface AuditEntry {
  peer: { uid: number; gid: number; pid: number } | null;
  method: string;
  params?: unknown;
  outcome: 'ok' | 'refused' | 'error';
  code?: string;
  message?: string;
  durationMs?: number;
  detail?: Record<string, unknown>;
}

const MAX_METHOD_CHARS = 128;
const MAX_MESSAGE_CHARS = 1024;
/** Records kept in memory while the log cannot be written; past this they are only counted. */
const MAX_KEPT = 1000;

// O_NOFOLLOW: privd appends as root; a symlink planted in the audit dir must not redirect that
// write to /etc/shadow. O_APPEND: each record lands whole at the end, even after a torn write.
const OPEN_FLAGS = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

interface Kept {
  entry: AuditEntry;
  time: Date;
}

export class AuditLog {
  readonly path: string;
  private readonly daemon: string;
  private fd: number | null;
  private lastHash: string;
  private nextSeq: number;
  /** The file's size after our last whole record. */
  private goodEnd: number;
  /** Why the last write failed; null while records can be written. */
  private failure: unknown = null;
  /** How many bytes of the last failed write reached the file (a torn line of our own). */
  private partialBytes = 0;
  private readonly kept: Kept[] = [];
  private lost = 0;
  private writingTime = new Date();
  private readonly logger: Logger;

  private constructor(
    path: string, daemon: string, fd: number, chain: ChainEnd, private readonly anchor: AuditAnchor | null,
  ) {
    this.path = path;
    this.daemon = daemon;
    this.fd = fd;
    this.lastHash = chain.lastHash;
    this.nextSeq = chain.nextSeq;
    this.goodEnd = chain.end;
    this.logger = pino(
      {
        base: null,
        formatters: { level: () => ({}) },
        // pino puts the timestamp text first once the level is formatted away, so it must not
        // start with a comma; it carries seq as well so that every line begins with seq and time.
        timestamp: () => `"seq":${this.nextSeq},"time":"${this.writingTime.toISOString()}"`,
      },
      { write: (line: string) => this.appendLine(line) },
    );
  }

  static open(dir: string, daemon: string, options: { anchor?: AuditAnchor | null } = {}): AuditLog {
    if (!isSafeName(daemon)) {
      throw new AuditError('E_AUDIT_OPEN', `${JSON.stringify(daemon)} is not a valid daemon name`);
    }
    const path = join(dir, auditFileName(daemon));
    let fd: number;
    try {
      fd = openSync(path, OPEN_FLAGS, 0o640);
    } catch (err) {
      throw new AuditError('E_AUDIT_OPEN', `cannot open audit log ${path}: ${codeOf(err)}`, { cause: err });
    }
    try {
      if (!fstatSync(fd).isFile()) throw new AuditError('E_AUDIT_OPEN', `audit log ${path} is not a regular file`);
      return new AuditLog(path, daemon, fd, continueChain(fd), options.anchor ?? null);
    } catch (err) {
      closeSync(fd);
      if (err instanceof AuditError) throw err;
      throw new AuditError('E_AUDIT_OPEN', `cannot read audit log ${path}: ${codeOf(err)}`, { cause: err });
    }
  }

  /** Where this log's records are anchored, or null. */
  get anchoredIn(): string | null {
    return this.anchor?.where ?? null;
  }

  /** Why records cannot be written now ("ENOSPC"), or null when they can. */
  get unwritableBecause(): string | null {
    return this.failure === null ? null : codeOf(this.failure);
  }

  /** True when a record can be written now; after a failure, first writes what was kept. */
  writable(): boolean {
    return this.fd !== null && this.catchUp();
  }

  /**
   * Appends one record and fsyncs it. Throws an AuditError if it could not be made durable; the
   * record is then kept and written once the log can be written again.
   */
  record(entry: AuditEntry): void {
    if (this.fd === null) throw new AuditError('E_AUDIT_CLOSED', `audit log ${this.path} is closed`);
    const item = { entry, time: new Date() };
    if (this.catchUp()) {
      try {
        this.write(item);
        return;
      } catch (err) {
        this.failure = err;
      }
    }
    this.keep(item);
    const message = `cannot write audit log ${this.path}: ${this.unwritableBecause}`;
    throw new AuditError('E_AUDIT_WRITE', message, { cause: this.failure });
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    closeSync(fd);
  }

  private keep(item: Kept): void {
    if (this.kept.length < MAX_KEPT) this.kept.push(item);
    else this.lost += 1;
  }

  /** Writes what was kept since a failure; false (and still failed) if that cannot be done yet. */
  private catchUp(): boolean {
    if (this.failure === null) return true;
    try {
      this.repairTail();
      while (this.kept.length > 0) {
        this.write(this.kept[0]!);
        this.kept.shift();
      }
      if (this.lost > 0) {
        const message = `${this.lost} records could not be kept while the audit log could not be written`;
        const entry: AuditEntry = { peer: null, method: 'audit.lost', outcome: 'error', code: 'E_AUDIT_LOST', message };
        this.write({ time: new Date(), entry });
        this.lost = 0;
      }
      this.failure = null;
      return true;
    } catch (err) {
      this.failure = err;
      return false;
    }
  }

  /** After a failed write: our own half-written bytes go; anything else is treated as at open. */
  private repairTail(): void {
    const fd = this.fd!;
    const size = fstatSync(fd).size;
    if (size === this.goodEnd) return;
    if (size === this.goodEnd + this.partialBytes) {
      ftruncateSync(fd, this.goodEnd);
      fsyncSync(fd);
    } else {
      const chain = continueChain(fd);
      this.lastHash = chain.lastHash;
      this.nextSeq = chain.nextSeq;
      this.goodEnd = chain.end;
    }
    this.partialBytes = 0;
  }

  private write(item: Kept): void {
    this.writingTime = item.time;
    this.logger.info(this.toRecordFields(item.entry));
  }

  // Field order is the order in the line (after seq and time, which pino's timestamp writes).
  private toRecordFields(entry: AuditEntry): Record<string, unknown> {
    const { peer } = entry;
    return {
      daemon: this.daemon,
      peer: peer === null ? null : { uid: peer.uid, gid: peer.gid, pid: peer.pid },
      method: boundedText(entry.method, MAX_METHOD_CHARS),
      params: entry.params === undefined ? undefined : summarizeParams(entry.params),
      outcome: entry.outcome,
      code: entry.code,
      message: entry.message === undefined ? undefined : boundedText(entry.message, MAX_MESSAGE_CHARS),
      durationMs: entry.durationMs,
      detail: entry.detail === undefined ? undefined : summarizeParams(entry.detail),
      prev: this.lastHash,
    };
  }

  private appendLine(line: string): void {
    const fd = this.fd!;
    const bytes = Buffer.from(line, 'utf8');
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
      fsyncSync(fd);
    } catch (err) {
      this.partialBytes = done;
      throw err;
    }
    this.goodEnd = fstatSync(fd).size;
    this.lastHash = hashLine(bytes.subarray(0, bytes.length - 1)); // pino ends every line with '\n'
    this.anchor?.anchor(this.nextSeq, this.lastHash);
    this.nextSeq += 1;
  }
}

interface ChainEnd {
  lastHash: string;
  nextSeq: number;
  /** The file's size once a torn line is ended. */
  end: number;
}

/**
 * Where the chain continues: after the last record, whatever follows it. A crash mid-write
 * leaves a line without '\n'; it is ended so new records start on a line of their own, and
 * stays behind as a visible break that `certsepctl audit verify` reports. The chain continues
 * from it if it is in fact a whole record, otherwise from the last record before it, so a start
 * after any number of such lines (each start ends one) never refuses to go on.
 */
function continueChain(fd: number): ChainEnd {
  let end = fstatSync(fd).size;
  const { tornLine } = readTornLine(fd, end);
  if (tornLine.length > 0) {
    writeSync(fd, Buffer.from('\n'));
    fsyncSync(fd);
    end += 1;
    if (seqOf(tornLine) !== null) return { lastHash: hashLine(tornLine), nextSeq: seqOf(tornLine)! + 1, end };
  }
  const { found } = findLastLine(fd, end, (line) => seqOf(line) !== null);
  if (found === null) return { lastHash: GENESIS_HASH, nextSeq: 1, end };
  return { lastHash: hashLine(found), nextSeq: seqOf(found)! + 1, end };
}

function seqOf(line: Buffer): number | null {
  try {
    const record: unknown = JSON.parse(line.toString('utf8'));
    const seq = (record as { seq?: unknown } | null)?.seq;
    return typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0 ? seq : null;
  } catch {
    return null;
  }
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? String(err);
}

// method and message come from peers and handlers; keep them short and free of key material.
function boundedText(s: string, max: number): string {
  if (s.includes('-----BEGIN')) return `[${Buffer.byteLength(s)} bytes, sha256 ${hashLine(s)}]`;
  return s.length > max ? `${s.slice(0, max)}... [${s.length - max} more characters]` : s;
}
