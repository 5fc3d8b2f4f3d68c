// The audit trail one daemon appends to: <auditDir>/<daemon>.audit.jsonl. One file per daemon,
// so a compromised unprivileged daemon can only touch its own record. Every record is written
// with one O_APPEND write and fsync'd before record() returns: callers act only after their
// action is on disk, and fail closed when it cannot be (record() throws).
import { closeSync, constants, fstatSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { isSafeName } from '../config/schema.ts';
import { AuditError } from './error.ts';
import { auditFileName, GENESIS_HASH, hashLine } from './record.ts';
import { summarizeParams } from './summarize.ts';
import { readLogTail } from './tail.ts';

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

// O_NOFOLLOW: privd appends as root; a symlink planted in the audit dir must not redirect that
// write to /etc/shadow. O_APPEND: each record lands whole at the end, even after a torn write.
const OPEN_FLAGS = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

export class AuditLog {
  readonly path: string;
  private readonly daemon: string;
  private fd: number | null;
  private lastHash: string;
  private nextSeq: number;
  private failure: unknown = null;
  private readonly logger: Logger;

  private constructor(path: string, daemon: string, fd: number, lastHash: string, nextSeq: number) {
    this.path = path;
    this.daemon = daemon;
    this.fd = fd;
    this.lastHash = lastHash;
    this.nextSeq = nextSeq;
    this.logger = pino(
      {
        base: null,
        formatters: { level: () => ({}) },
        // pino puts the timestamp text first once the level is formatted away, so it must not
        // start with a comma; it carries seq as well so that every line begins with seq and time.
        timestamp: () => `"seq":${this.nextSeq},"time":"${new Date().toISOString()}"`,
      },
      { write: (line: string) => this.appendLine(line) },
    );
  }

  static open(dir: string, daemon: string): AuditLog {
    if (!isSafeName(daemon)) throw new AuditError('E_AUDIT_OPEN', `${JSON.stringify(daemon)} is not a valid daemon name`);
    const path = join(dir, auditFileName(daemon));
    let fd: number;
    try {
      fd = openSync(path, OPEN_FLAGS, 0o640);
    } catch (err) {
      throw new AuditError('E_AUDIT_OPEN', `cannot open audit log ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    try {
      const { lastHash, nextSeq } = continueChain(fd, path);
      return new AuditLog(path, daemon, fd, lastHash, nextSeq);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Appends one record and fsyncs it. Throws an AuditError if it could not be made durable. */
  record(entry: AuditEntry): void {
    if (this.fd === null) throw new AuditError('E_AUDIT_CLOSED', `audit log ${this.path} is closed`);
    if (this.failure !== null) {
      // A failed write may have left a partial line; only a reopen (which ends it) may continue.
      throw new AuditError('E_AUDIT_WRITE', `audit log ${this.path} failed earlier and must be reopened`, { cause: this.failure });
    }
    try {
      this.logger.info(this.toRecordFields(entry));
    } catch (err) {
      this.failure = err;
      throw new AuditError('E_AUDIT_WRITE', `cannot write audit log ${this.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    closeSync(fd);
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
    if (this.fd === null) throw new AuditError('E_AUDIT_CLOSED', `audit log ${this.path} is closed`);
    const bytes = Buffer.from(line, 'utf8');
    writeAll(this.fd, bytes);
    fsyncSync(this.fd);
    this.lastHash = hashLine(bytes.subarray(0, bytes.length - 1)); // pino ends every line with '\n'
    this.nextSeq += 1;
  }
}

/** Where the chain continues: hash and seq of the last record, after ending a torn line. */
function continueChain(fd: number, path: string): { lastHash: string; nextSeq: number } {
  const stats = fstatSync(fd);
  if (!stats.isFile()) throw new AuditError('E_AUDIT_OPEN', `audit log ${path} is not a regular file`);
  const { lastCompleteLine, tornLine } = readLogTail(fd, stats.size);
  let last = lastCompleteLine;
  if (tornLine.length > 0) {
    // A crash mid-write leaves a line without '\n'. End it so new records start on a line of
    // their own; the chain continues from it only if it is in fact a whole record, otherwise it
    // stays behind as a visible break that `certsepctl audit verify` reports.
    writeAll(fd, Buffer.from('\n'));
    fsyncSync(fd);
    if (seqOf(tornLine) !== null) last = tornLine;
  }
  if (last === null) return { lastHash: GENESIS_HASH, nextSeq: 1 };
  const seq = seqOf(last);
  if (seq === null) {
    throw new AuditError('E_AUDIT_CORRUPT', `the last record of ${path} is not a valid audit record; check it with "certsepctl audit verify" and move the file aside to start a new log`);
  }
  return { lastHash: hashLine(last), nextSeq: seq + 1 };
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

function writeAll(fd: number, bytes: Buffer): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
}

// method and message come from peers and handlers; keep them short and free of key material.
function boundedText(s: string, max: number): string {
  if (s.includes('-----BEGIN')) return `[${Buffer.byteLength(s)} bytes, sha256 ${hashLine(s)}]`;
  return s.length > max ? `${s.slice(0, max)}... [${s.length - max} more characters]` : s;
}
