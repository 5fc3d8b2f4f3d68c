// The Prometheus textfile (node_exporter's textfile collector reads *.prom): per certificate its
// earliest expiry, last success and failure, renewal count and whether it is failing. Written
// atomically, so the collector never reads half a file.
import { basename, dirname } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { Journal } from './journal.ts';
import { readLeaf } from './leaf.ts';
import { writeFileAtomically } from '../runtime/write-file-atomically.ts';

const seconds = (iso: string | undefined): string => (iso ? String(Math.floor(Date.parse(iso) / 1000)) : '0');

// Label values escape backslash, quote and newline (Prometheus exposition format).
const label = (value: string): string => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderMetrics(config: Config, journal: Journal, expiries: ReadonlyMap<string, string | undefined>): string {
  const families: [string, string, string, (name: string) => string][] = [
    ['certsep_certificate_expiry_timestamp_seconds', 'gauge', 'notAfter of the earliest-expiring installed key type', (n) => seconds(expiries.get(n) ?? firstLeafExpiry(journal, n))],
    ['certsep_certificate_last_success_timestamp_seconds', 'gauge', 'end of the last successful renewal (0: none yet)', (n) => seconds(journal.get(n).lastSuccess)],
    ['certsep_certificate_last_failure_timestamp_seconds', 'gauge', 'time of the last failed renewal (0: none)', (n) => seconds(journal.get(n).lastFailure?.at)],
    ['certsep_certificate_renewals_total', 'counter', 'renewals installed by certsep', (n) => String(journal.get(n).renewals)],
    ['certsep_certificate_failing', 'gauge', '1 while the last attempt failed', (n) => (journal.get(n).consecutiveFailures > 0 ? '1' : '0')],
  ];
  const lines: string[] = [];
  for (const [name, type, help, value] of families) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const cert of config.certificates) lines.push(`${name}{cert="${label(cert.name)}"} ${value(cert.name)}`);
  }
  return `${lines.join('\n')}\n`;
}

function firstLeafExpiry(journal: Journal, cert: string): string | undefined {
  const dates = Object.values(journal.get(cert).issued).map((i) => readLeaf(i.leafPem).notAfter.toISOString());
  return dates.sort()[0];
}

export function writeMetrics(config: Config, journal: Journal, expiries: ReadonlyMap<string, string | undefined>): void {
  if (!config.renewal.metricsFile) return;
  const file = config.renewal.metricsFile;
  writeFileAtomically(dirname(file), basename(file), renderMetrics(config, journal, expiries), 0o644);
}
