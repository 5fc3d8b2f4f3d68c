// certsepctl remote-serve: registered here, implemented in remote/ (the remote role's whole
// authority lives in that folder).
import type { Command } from 'commander';
import { defaultConfigPath } from '../config/load.ts';
import { serveRemote } from '../remote/serve.ts';

export function registerRemoteServeCommand(program: Command): void {
  program
    .command('remote-serve')
    .description('the ssh forced command of a host with the remote role: serves the central deployd on stdin/stdout')
    .action(async () => {
      process.exitCode = await serveRemote(program.opts<{ config?: string }>().config ?? defaultConfigPath());
    });
}
