// certsepctl renew: asks deployd for a run now, follows its steps while it runs, prints a summary.
// Exit status as OpenBSD acme-client: 0 something renewed, 2 nothing was due, 1 a failure.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { Config } from '../config/schema.ts';
import type { ProgressEvent, RunResult } from '../deployd/api.ts';
import { callDeployd } from './deployd-call.ts';
import { LiveProgress } from './renew-progress.ts';
import { renderTable } from './table.ts';
import { print, printableLine, printError } from './terminal-text.ts';

interface RenewOptions {
  all?: boolean;
  force?: boolean;
  dryRun?: boolean;
  staging?: boolean;
  quiet?: boolean;
}

const POLL_MS = 200;

export function registerRenewCommand(program: Command, getConfig: () => Config): void {
  program
    .command('renew')
    .description('renew what is due now (exit 0: renewed, 2: nothing due, 1: failure)')
    .argument('[names...]', 'only these certificates')
    .option('--all', 'every configured certificate')
    .option('--force', 'renew even if not due; ignore backoff and the CA\'s Retry-After')
    .option('--dry-run', 'only show what is due; change nothing')
    .option('--staging', 'order from the CA\'s staging directory; install nothing')
    .option('-q, --quiet', 'print only the summary')
    .action(async (names: string[], options: RenewOptions) => {
      if (names.length === 0 && !options.all) {
        printError('certsepctl renew: name certificates, or use --all\n');
        process.exitCode = 64;
        return;
      }
      if (names.length > 0 && options.all) {
        printError('certsepctl renew: give names or --all, not both\n');
        process.exitCode = 64;
        return;
      }
      const result = await renewWithProgress(getConfig(), names, options);
      print(`${renderSummary(result)}\n`);
      process.exitCode = result.exitCode;
    });
}

async function renewWithProgress(config: Config, names: string[], options: RenewOptions): Promise<RunResult> {
  const runId = randomBytes(8).toString('hex');
  let finished = false;
  const run = callDeployd(config, 'renew.run', {
    runId,
    ...(names.length > 0 ? { certs: names } : { all: true }),
    force: options.force ?? false,
    dryRun: options.dryRun ?? false,
    staging: options.staging ?? false,
  }).finally(() => { finished = true; });
  if (options.quiet) return run;
  // A terminal gets a table redrawn in place; a pipe or file gets the plain lines scripts parse.
  const live = process.stdout.isTTY ? new LiveProgress(process.stdout) : undefined;
  const show = live
    ? (events: ProgressEvent[]) => live.add(events)
    : (events: ProgressEvent[]) => { for (const event of events) print(`${formatEvent(event)}\n`); };
  const follow = followProgress(config, runId, () => finished, show);
  const result = await run;
  await follow;
  live?.draw(result.results);
  return result;
}

/** Shows each step as deployd reports it; stops once the run is over and every step is shown. */
async function followProgress(config: Config, runId: string, runReturned: () => boolean, show: (events: ProgressEvent[]) => void): Promise<void> {
  let afterSeq = 0;
  for (;;) {
    const returned = runReturned();
    try {
      const answer = await callDeployd(config, 'renew.progress', { runId, afterSeq });
      // Called even without new events, so a live display's elapsed times keep moving.
      show(answer.events);
      afterSeq += answer.events.length;
      if (answer.finished) return;
    } catch {
      // The run may not have begun yet (E_NO_RUN), or deployd went away; renew.run's answer says which.
      if (returned) return;
    }
    if (returned) return;
    await sleep(POLL_MS);
  }
}

export function formatEvent(e: ProgressEvent): string {
  const what = e.keyType ? `${e.cert} [${e.keyType}]` : e.cert;
  const state = e.state === 'start' ? '...' : e.state === 'ok' ? 'ok' : 'FAILED';
  return printableLine(`${e.at.slice(11, 19)} ${what}: ${e.step} ${state}${e.detail ? ` ${e.detail}` : ''}`);
}

export function renderSummary(result: RunResult): string {
  const issued = (list: RunResult['results'][number]['issued']) => list.map((i) => `${i.keyType}:${i.serial.slice(0, 12)}${i.reusedOrder ? ' (resumed)' : ''}`).join(' ') || '-';
  // A certificate of remote hosts gets one line per host under its own.
  const rows = result.results.flatMap((r) => [
    [r.cert, r.outcome, r.hosts ? '' : issued(r.issued), r.hosts ? `${r.hosts.length} host(s)` : r.error ? `${r.failedStep}: ${r.error.code} ${r.error.message}` : r.detail],
    ...(r.hosts ?? []).map((h) => [`  @${h.host}`, h.outcome, issued(h.issued), h.error ? `${h.failedStep}: ${h.error.code} ${h.detail}` : h.detail]),
  ]);
  const counts = new Map<string, number>();
  for (const r of result.results) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
  const tally = [...counts].map(([outcome, n]) => `${n} ${outcome}`).join(', ') || 'no certificates';
  const reloaded = result.reloaded.length > 0 ? `; reloaded ${result.reloaded.join(', ')}` : '';
  return `${renderTable(['NAME', 'RESULT', 'ISSUED', 'DETAIL'], rows)}\nrun ${result.runId}: ${tally}${reloaded}; exit ${result.exitCode}`;
}
