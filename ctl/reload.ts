// certsepctl reload: every running daemon looks at the config file now (even if its identity did
// not change, as on SIGHUP) and says what it runs. Not needed for an edit to take effect (each
// daemon notices a changed file before its next request), but it shows at once whether each
// daemon took the edit or refused it and why. Exit 0 when every running daemon runs the file.
import type { Command } from 'commander';
import type { ConfigFile } from '../config/load.ts';
import { compareDaemonConfigs, describeEveryDaemon } from './config-state.ts';
import { print, printableLine } from './terminal-text.ts';

export function registerReloadCommand(program: Command, getConfigFile: () => ConfigFile): void {
  program
    .command('reload')
    .description('make every running daemon re-read the config now and show what each runs (exit 1 if one does not)')
    .action(async () => {
      const agreement = await compareDaemonConfigs(getConfigFile(), true);
      print(`${describeEveryDaemon(agreement).map(printableLine).join('\n')}\n`);
      if (agreement.daemons.some((d) => d.state !== 'current' && d.state !== 'not-running')) process.exitCode = 1;
    });
}
