// certsepctl push [HOST...]: deliver again, without a new order, what remote hosts should have —
// the chain waiting in the delivery queue, else the one the host last confirmed (a rebuilt or
// restored host). Exit 0 if something was delivered, 2 if there was nothing to deliver, 1 if a
// delivery failed (the chain stays queued and is retried).
import type { Command } from 'commander';
import type { Config } from '../config/schema.ts';
import { callDeployd } from './deployd-call.ts';
import { renderTable } from './table.ts';
import { print, printJson } from './terminal-text.ts';

export function registerPushCommand(program: Command, getConfig: () => Config): void {
  program
    .command('push')
    .description('re-deliver the current certificates to remote hosts without re-issuing (exit 0 delivered, 2 nothing, 1 failed)')
    .argument('[hosts...]', 'only these hosts (default: every host)')
    .option('--cert <name...>', 'only these certificates')
    .option('--json', 'print JSON')
    .action(async (hosts: string[], options: { cert?: string[]; json?: boolean }) => {
      const answer = await callDeployd(getConfig(), 'push', {
        ...(hosts.length > 0 ? { hosts } : {}),
        ...(options.cert?.length ? { certs: options.cert } : {}),
      });
      if (options.json) printJson(answer);
      else if (answer.results.length === 0) print('no certificate is delivered to those hosts\n');
      else print(`${renderTable(['CERT', 'HOST', 'RESULT', 'DETAIL'], answer.results.map((r) => [r.cert, r.host, r.outcome, r.error ? `${r.error.code}: ${r.detail}` : r.detail]))}\n`);
      process.exitCode = answer.exitCode;
    });
}
