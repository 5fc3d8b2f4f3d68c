// certsepctl account rollover: asks acmed to replace an ACME account key (RFC 8555 section 7.3.5),
// e.g. after the key may have leaked. Only acmed holds account keys, so the CLI never sees one;
// acmed lets only root or a configured admin call this.
import type { Command } from 'commander';
import { acmedApi } from '../acmed/api.ts';
import type { Config } from '../config/schema.ts';
import { isRpcError } from '../proto/errors.ts';
import { callDaemon } from './deployd-call.ts';
import { print, printableLine, printError } from './terminal-text.ts';

interface RolloverOptions {
  ca?: string;
  staging?: boolean;
}

export function registerAccountCommands(program: Command, getConfig: () => Config): void {
  const account = program.command('account').description('manage the ACME accounts acmed holds');
  account
    .command('rollover')
    .description('replace the account key of a CA with a new one (the account itself stays)')
    .option('--ca <name>', 'the CA (as named under cas: in the config); needed when there are several')
    .option('--staging', 'the CA\'s staging account instead')
    .action(async (options: RolloverOptions) => {
      const config = getConfig();
      const ca = options.ca ?? soleCaName(config);
      if (ca === undefined) {
        printError(`certsepctl account rollover: several CAs are configured (${Object.keys(config.cas).join(', ')}); name one with --ca\n`);
        process.exitCode = 64;
        return;
      }
      try {
        const rolled = await callDaemon(config, acmedApi, 'account.rollover', { ca, staging: options.staging ?? false });
        print(`${[
          `ca:        ${rolled.ca}`,
          `directory: ${rolled.directoryUrl}`,
          `account:   ${rolled.accountUrl}`,
          // RFC 7638 JWK thumbprint: compare with what the CA or acmed's log shows for the key.
          `new key:   ${rolled.keyThumbprint}`,
        ].join('\n')}\n`);
      } catch (e) {
        // acmed's codes (E_UNKNOWN_CA, E_ACCOUNT, E_PEER, E_UNAVAILABLE, ...) are what scripts match on.
        if (!isRpcError(e)) throw e;
        printError(`certsepctl account rollover: ${e.code}: ${printableLine(e.message)}\n`);
        process.exitCode = 1;
      }
    });
}

function soleCaName(config: Config): string | undefined {
  const names = Object.keys(config.cas);
  return names.length === 1 ? names[0] : undefined;
}
