// Reading the audit trail for people: all daemons' files merged into one timeline. This is for
// looking, not for proving: lines that are not records are skipped here and reported by verify.
// Which daemon a record is from is the file it is in, never its own "daemon" field: a compromised
// daemon can write any record into its own file, but only into its own file.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isSafeName } from '../config/schema.ts';
import { forEachLine } from './lines.ts';
import { AUDIT_FILE_SUFFIX, AuditRecord, auditFileName } from './record.ts';

export interface AuditReadOptions {
  /** Only records at or after this time. */
  since?: Date;
  /** Only this daemon's file. */
  daemon?: string;
}

export function readAuditRecords(dir: string, options: AuditReadOptions = {}): AuditRecord[] {
  const records: { record: AuditRecord; ms: number }[] = [];
  const sinceMs = options.since?.getTime() ?? -Infinity;
  for (const file of auditFilesIn(dir, options.daemon)) {
    const daemon = file.slice(0, -AUDIT_FILE_SUFFIX.length);
    forEachLine(join(dir, file), (line, info) => {
      if (!info.complete || info.overlong) return;
      const parsed = parseRecord(line);
      const record = parsed && { ...parsed, daemon };
      const ms = record ? Date.parse(record.time) : NaN;
      if (record && ms >= sinceMs) records.push({ record, ms });
    });
  }
  // Merged by time; within one millisecond keep each daemon's own order.
  records.sort((a, b) => a.ms - b.ms || a.record.daemon.localeCompare(b.record.daemon) || a.record.seq - b.record.seq);
  return records.map(({ record }) => record);
}

/** The *.audit.jsonl files in dir, sorted; just the one daemon's when given. */
export function auditFilesIn(dir: string, daemon?: string): string[] {
  if (daemon !== undefined) {
    if (!isSafeName(daemon)) throw new RangeError(`${JSON.stringify(daemon)} is not a daemon name`);
    return existsSync(join(dir, auditFileName(daemon))) ? [auditFileName(daemon)] : [];
  }
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(AUDIT_FILE_SUFFIX))
    .map((entry) => entry.name)
    .sort();
}

function parseRecord(line: Buffer): AuditRecord | null {
  try {
    const parsed = AuditRecord.safeParse(JSON.parse(line.toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
