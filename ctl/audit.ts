// certsepctl audit: read the merged audit trail, and verify each daemon's hash chain against its
// anchors. Records contain text chosen by peers (method names, error messages), so everything
// printed goes through terminal-text.ts: a record must not be able to rewrite the screen.
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { anchorsOf, journalAnchors } from '../audit/anchors.ts';
import { auditFilesIn, readAuditRecords } from '../audit/read.ts';
import { AUDIT_FILE_SUFFIX, type AuditRecord } from '../audit/record.ts';
import { verifyAuditFile } from '../audit/verify.ts';
import type { Config } from '../config/schema.ts';
import { uidsForRole } from '../config/users.ts';
import { print, printableLine, printError, printJson } from './terminal-text.ts';

interface AuditOptions {
  since?: Date;
  json?: boolean;
  daemon?: string;
  auditDir?: string;
}

const UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** --since: an ISO 8601 time, or a span back from now like 90m, 1h, 2d, 1w. */
export function parseSince(value: string, now = Date.now()): Date {
  const span = /^([0-9]{1,6})([smhdw])$/.exec(value);
  if (span) return new Date(now - Number(span[1]) * (UNITS_MS[span[2] as string] as number));
  const ms = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw new InvalidArgumentError('expected an ISO time (2025-01-31T12:00Z) or a span like 1h, 2d');
  return new Date(ms);
}

export function registerAuditCommands(program: Command, getConfig: () => Config): void {
  const auditDirOf = (options: { auditDir?: string }) => options.auditDir ?? getConfig().paths.auditDir;

  const audit = program
    .command('audit')
    .description('show the audit trail of all daemons, oldest first')
    .option('--since <when>', 'only records since an ISO time or a span back from now (1h, 2d)', (v) => parseSince(v))
    .option('--daemon <name>', 'only this daemon\'s records')
    .option('--json', 'print the records as a JSON array')
    .option('--audit-dir <dir>', 'read this directory instead of the configured paths.auditDir')
    .action((options: AuditOptions) => {
      const records = readAuditRecords(auditDirOf(options), {
        ...(options.since ? { since: options.since } : {}),
        ...(options.daemon ? { daemon: options.daemon } : {}),
      });
      if (options.json) printJson(records);
      else print(formatAuditTable(records));
    });

  audit
    .command('verify')
    .description('check the hash chain of every *.audit.jsonl against its anchors; exit 1 if any is broken')
    .option('--audit-dir <dir>', 'check this directory instead of the configured paths.auditDir')
    .action((options: { auditDir?: string }, command: Command) => {
      // The parent's --audit-dir too, so "audit --audit-dir D verify" works as well.
      const dir = auditDirOf({ ...command.optsWithGlobals(), ...options });
      const files = auditFilesIn(dir);
      if (files.length === 0) {
        // Missing logs prove nothing; a deleted trail must not look like a clean one.
        printError(`no *.audit.jsonl files in ${dir}\n`);
        process.exitCode = 1;
        return;
      }
      const sources = { auditDir: dir, journal: journalAnchors(remoteUidOf(getConfig)) };
      for (const file of files) {
        const result = verifyAuditFile(join(dir, file), anchorsOf(file.slice(0, -AUDIT_FILE_SUFFIX.length), sources));
        if (result.ok) {
          const anchored = result.anchored === 0 ? 'none anchored' : `${result.anchored} anchored`;
          print(`${file}: OK, ${countOf(result.records, 'record')} (${anchored})\n`);
        } else {
          const { line, reason } = result.broken ?? { line: 0, reason: 'unknown' };
          print(`${file}: BROKEN at line ${line}: ${printableLine(reason)} (${countOf(result.records, 'record')} verified before it)\n`);
          process.exitCode = 1;
        }
      }
    });
}

export function formatAuditTable(records: readonly AuditRecord[]): string {
  const header = ['TIME', 'DAEMON', 'PEER', 'METHOD', 'OUTCOME', 'CODE/MESSAGE'];
  const rows = records.map((r) => [
    r.time,
    r.daemon,
    r.peer === null ? '-' : `uid ${r.peer.uid} pid ${r.peer.pid}`,
    r.method,
    r.outcome,
    [r.code, r.message].filter((s) => s !== undefined && s !== '').join(' '),
  ].map(printableLine));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [header, ...rows].map(line).join('\n') + '\n';
}

/** users.remote's uid, whose journal anchors are remote-serve's; none without a config. */
function remoteUidOf(getConfig: () => Config): number | undefined {
  try {
    return uidsForRole(getConfig(), 'remote')[0];
  } catch {
    return undefined; // audit --audit-dir runs without a config; only units' anchors count then
  }
}

function countOf(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
