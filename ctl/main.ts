// certsepctl: the admin's command line. Only wiring lives here: global options, the lazily
// loaded config, and each command group's register function.
import { Command } from 'commander';
import { defaultConfigPath, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { registerAccountCommands } from './account.ts';
import { registerAuditCommands } from './audit.ts';
import { registerDoctorCommand } from './doctor.ts';
import { registerImportCertbotCommand } from './import-certbot.ts';
import { registerLeasesCommand } from './leases.ts';
import { registerPushCommand } from './push.ts';
import { registerRemoteServeCommand } from './remote-serve.ts';
import { registerRenewCommand } from './renew.ts';
import { registerStatusCommand } from './status.ts';
import { printError } from './terminal-text.ts';

const program = new Command('certsepctl')
  .description('control and inspect the certsep daemons')
  .option('--config <file>', 'config file (default $CERTSEP_CONFIG or /etc/certsep/certsep.yaml)');

// Loaded on first use, so commands given explicit paths (audit --audit-dir) work without one.
let config: Config | undefined;
const getConfig = (): Config => (config ??= loadConfig(program.opts<{ config?: string }>().config ?? defaultConfigPath()));

registerStatusCommand(program, getConfig);
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
  process.exitCode = 1;
}
