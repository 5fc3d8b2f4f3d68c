// certsepctl status: per certificate, what is installed, when it renews next and why, and how the
// last attempt went; and any daemon that runs an older config than the file. Exit status 1 when
// any certificate has expired or is failing, or a daemon refused the file, so cron and monitoring
// can run it as a check.
import type { Command } from 'commander';
import type { ConfigFile } from '../config/load.ts';
import type { CertStatus } from '../deployd/api.ts';
import { compareDaemonConfigs, describeDisagreement, someDaemonRefused } from './config-state.ts';
import { callDeployd } from './deployd-call.ts';
import { STATUS_JSON_VERSION, type StatusJson } from './status-json.ts';
import { renderTable } from './table.ts';
import { print, printJson } from './terminal-text.ts';

export function registerStatusCommand(program: Command, getConfigFile: () => ConfigFile): void {
  program
    .command('status')
    .description('show each certificate: installed, next renewal and why, last result; daemons on an older config '
      + '(exit 1 if any expired or failing, or a daemon refused the file)')
    .argument('[names...]', 'only these certificates')
    .option('--json', 'print stable JSON (see ctl/status-json.ts)')
    .action(async (names: string[], options: { json?: boolean }) => {
      const file = getConfigFile();
      const { certs } = await callDeployd(file.config, 'status', names.length > 0 ? { certs: names } : {});
      const config = await compareDaemonConfigs(file, false);
      if (options.json) {
        const out: StatusJson = { version: STATUS_JSON_VERSION, generatedAt: new Date().toISOString(), certs, config };
        printJson(out);
      } else {
        print(`${renderStatusTable(certs)}\n`);
        if (certs.some((c) => c.hosts)) print(`\n${renderHostsTable(certs)}\n`);
        const disagreement = describeDisagreement(config);
        if (disagreement.length > 0) print(`\n${disagreement.join('\n')}\n`);
      }
      if (someDaemonRefused(config)) process.exitCode = 1;
      // A host still waiting for its chain, or whose last attempt failed, is as failing as a certificate.
      if (certs.some((c) => c.expired || c.failing || c.hosts?.some((h) => h.state === 'pending' || h.state === 'failed'))) process.exitCode = 1;
    });
}

export function renderStatusTable(certs: CertStatus[]): string {
  const rows = certs.map((c) => [
    c.cert,
    c.domains.length > 2 ? `${c.domains.slice(0, 2).join(',')},+${c.domains.length - 2}` : c.domains.join(','),
    c.keyTypes.map((k) => k.keyType).join(','),
    issuerOf(c),
    c.notAfter ? `${c.notAfter.slice(0, 16).replace('T', ' ')} (${c.daysLeft}d)` : 'not installed',
    c.next.due ? `now (${c.next.reason})` : `${c.next.at.slice(0, 16).replace('T', ' ')} (${c.next.reason})`,
    lastResult(c),
    filesState(c),
  ]);
  return renderTable(['NAME', 'DOMAINS', 'KEYS', 'ISSUER', 'NOT AFTER', 'NEXT RENEWAL', 'LAST RESULT', 'FILES'], rows);
}

/** Per remote host, from deployd's delivery queue: delivered, pending (with its retries) or failed. */
export function renderHostsTable(certs: CertStatus[]): string {
  const time = (iso: string | undefined) => (iso ? iso.slice(0, 16).replace('T', ' ') : '-');
  const rows = certs.flatMap((c) => (c.hosts ?? []).map((h) => [
    c.cert,
    h.host,
    h.address,
    h.state.toUpperCase(),
    h.delivered ? `${h.delivered.serials.map((s) => s.slice(0, 12)).join(',')} until ${time(h.delivered.notAfter)}` : '-',
    h.pending
      ? `${h.pending.serials.map((s) => s.slice(0, 12)).join(',')} queued ${time(h.pending.since)}, ${h.pending.attempts} attempt(s), ${h.pending.nextAttempt ? `next ${time(h.pending.nextAttempt)}` : 'retries used up'}`
      : '-',
    h.lastError ? `${h.lastError.step}: ${h.lastError.error.code} at ${time(h.lastError.at)}` : '-',
  ]));
  return renderTable(['CERT', 'HOST', 'ADDRESS', 'STATE', 'DELIVERED', 'QUEUED', 'LAST ERROR'], rows);
}

function issuerOf(c: CertStatus): string {
  const issuer = c.keyTypes.find((k) => k.installed)?.installed?.issuer ?? '-';
  return /CN=([^,/]+)/.exec(issuer)?.[1] ?? issuer;
}

function lastResult(c: CertStatus): string {
  if (c.failing && c.lastFailure) {
    const retry = c.nextAttempt ? `, retry ${c.nextAttempt.slice(0, 16).replace('T', ' ')}` : '';
    return `FAILED at ${c.lastFailure.step}: ${c.lastFailure.error.code}${retry}`;
  }
  if (c.lastSuccess) return `ok ${c.lastSuccess.slice(0, 16).replace('T', ' ')}`;
  return '-';
}

function filesState(c: CertStatus): string {
  const targets = c.keyTypes.flatMap((k) => k.targets);
  if (c.pending) return 'install pending';
  if (targets.length === 0) return '-';
  const differing = targets.filter((t) => !t.matches);
  return differing.length === 0 ? `${targets.length} match` : `${differing.length} DIFFER: ${differing.map((t) => t.dir).join(' ')}`;
}
