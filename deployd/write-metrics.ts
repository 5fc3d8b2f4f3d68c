// The Prometheus textfile (node_exporter's textfile collector reads *.prom): per certificate its
// earliest expiry, last success and failure, renewal count and whether it is failing; per remote
// host of a certificate, what it last confirmed and whether a chain waits for it. Written
// atomically, so the collector never reads half a file.
import { basename, dirname } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { DeliveryStore, HostRecord } from './delivery-store.ts';
import type { Journal } from './journal.ts';
import { readLeaf } from './leaf.ts';
import { writeFileAtomically } from '../runtime/write-file-atomically.ts';

const seconds = (iso: string | undefined): string => (iso ? String(Math.floor(Date.parse(iso) / 1000)) : '0');

// Label values escape backslash, quote and newline (Prometheus exposition format).
const label = (value: string): string => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderMetrics(config: Config, journal: Journal, expiries: ReadonlyMap<string, string | undefined>, store: DeliveryStore): string {
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
  const hostFamilies: [string, string, string, (r: HostRecord) => string][] = [
    ['certsep_host_certificate_expiry_timestamp_seconds', 'gauge', 'notAfter of the earliest key type the host last confirmed (0: none)', (r) => seconds(Object.values(r.delivered?.chains ?? {}).map((c) => c!.notAfter).sort()[0])],
    ['certsep_host_last_delivery_timestamp_seconds', 'gauge', 'when the host last confirmed a delivery (0: never)', (r) => seconds(r.delivered?.at)],
    ['certsep_host_delivery_pending', 'gauge', '1 while a chain waits in the delivery queue for the host', (r) => (r.pending ? '1' : '0')],
    ['certsep_host_delivery_attempts', 'gauge', 'failed attempts to deliver the waiting chain', (r) => String(r.pending?.attempts ?? 0)],
  ];
  const pairs = config.certificates.flatMap((cert) => cert.hosts.map((host) => ({ cert: cert.name, host, record: store.get(cert.name, host) })));
  if (pairs.length > 0) {
    for (const [name, type, help, value] of hostFamilies) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const p of pairs) lines.push(`${name}{cert="${label(p.cert)}",host="${label(p.host)}"} ${value(p.record)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function firstLeafExpiry(journal: Journal, cert: string): string | undefined {
  const dates = Object.values(journal.get(cert).issued).map((i) => readLeaf(i.leafPem).notAfter.toISOString());
  return dates.sort()[0];
}

export function writeMetrics(config: Config, journal: Journal, expiries: ReadonlyMap<string, string | undefined>, store: DeliveryStore): void {
  if (!config.renewal.metricsFile) return;
  const file = config.renewal.metricsFile;
  writeFileAtomically(dirname(file), basename(file), renderMetrics(config, journal, expiries, store), 0o644);
}
