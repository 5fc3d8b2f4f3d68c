// certsepctl leases: the ports netd holds open right now, and until when.
import type { Command } from 'commander';
import type { Config } from '../config/schema.ts';
import { callDeployd } from './deployd-call.ts';
import { renderTable } from './table.ts';
import { print, printJson } from './terminal-text.ts';

export function registerLeasesCommand(program: Command, getConfig: () => Config): void {
  program
    .command('leases')
    .description('list the exposures netd has open (through deployd), with their deadlines')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const { leases } = await callDeployd(getConfig(), 'leases', {});
      if (options.json) {
        printJson({ leases });
        return;
      }
      if (leases.length === 0) {
        print('no open leases\n');
        return;
      }
      print(`${renderTable(['ID', 'CERT', 'EXPOSURE', 'METHOD', 'EXTERNAL', 'INTERNAL', 'DEADLINE'], leases.map((l) => [
        l.id, l.cert, l.exposure, l.method, `${l.externalAddress ?? '*'}:${l.externalPort}`, `${l.internalAddress}:${l.internalPort}`, l.deadline,
      ]))}\n`);
    });
}
