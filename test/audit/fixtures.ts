// Shared setup for the audit tests: a scratch audit directory and a log with a few records.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, type AuditEntry } from '../../audit/log.ts';

export function makeAuditDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'certsep-audit-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function entry(method: string, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return { peer: { uid: 991, gid: 991, pid: 4242 }, method, outcome: 'ok', durationMs: 1.25, ...overrides };
}

/** Writes n records to <dir>/<daemon>.audit.jsonl and returns the file's path. */
export function writeRecords(dir: string, daemon: string, n: number): string {
  const log = AuditLog.open(dir, daemon);
  try {
    for (let i = 1; i <= n; i++) log.record(entry(`method.${i}`, { params: { i } }));
    return log.path;
  } finally {
    log.close();
  }
}

export function readLines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').slice(0, -1);
}

export function writeLines(path: string, lines: string[]): void {
  writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
}
