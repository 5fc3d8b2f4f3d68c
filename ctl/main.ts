// certsepctl: the admin's command line. Only wiring lives here: global options, the lazily
// loaded config, and each command group's register function.
import { Command } from 'commander';
import { ConfigError } from '../config/error.ts';
import { defaultConfigPath, loadConfigFile, type ConfigFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { registerAccountCommands } from './account.ts';
import { registerAuditCommands } from './audit.ts';
import { registerDoctorCommand } from './doctor.ts';
import { registerImportCertbotCommand } from './import-certbot.ts';
import { registerLeasesCommand } from './leases.ts';
import { registerPushCommand } from './push.ts';
import { registerRemoteServeCommand } from './remote-serve.ts';
import { registerReloadCommand } from './reload.ts';
import { registerRenewCommand } from './renew.ts';
import { registerStatusCommand } from './status.ts';
import { printError } from './terminal-text.ts';

const program = new Command('certsepctl')
  .description('control and inspect the certsep daemons')
  .option('--config <file>', 'config file (default $CERTSEP_CONFIG or /etc/certsep/certsep.yaml)');

// Loaded on first use, so commands given explicit paths (audit --audit-dir) work without one.
let configFile: ConfigFile | undefined;
const getConfigFile = (): ConfigFile =>
  (configFile ??= loadConfigFile(program.opts<{ config?: string }>().config ?? defaultConfigPath()));
const getConfig = (): Config => getConfigFile().config;

registerStatusCommand(program, getConfigFile);
registerReloadCommand(program, getConfigFile);
registerRenewCommand(program, getConfig);
registerLeasesCommand(program, getConfig);
registerPushCommand(program, getConfig);
registerDoctorCommand(program);
registerImportCertbotCommand(program, getConfig);
registerAuditCommands(program, getConfig);
registerAccountCommands(program, getConfig);
registerRemoteServeCommand(program);

try {
  await program.parseAsync();
} catch (err) {
  // Errors with a stable code (ConfigError, AuditError, ...) carry a message meant for people.
  const code = (err as { code?: unknown }).code;
  const message = typeof code === 'string' ? (err as Error).message : String((err as Error).stack ?? err);
  printError(`certsepctl: ${message}\n`);
  // An error in the file's content: the daemons refuse it the same way and keep what they had.
  if (err instanceof ConfigError && err.issues.some((i) => i.line !== undefined)) {
    printError('certsepctl: the running daemons keep the config they loaded until the file is correct\n');
  }
  process.exitCode = 1;
}
