// certsep-supervisor: the root launcher for machines without systemd (containers, this kind of
// VM). Runs as root because it must: it creates the daemons' directories with their owners and
// starts each daemon under its own uid/gid; it holds no key, opens no network connection (it holds
// acmed's http-01 listener ports, never accepting on them) and speaks only to deployd's socket (to
// start the scheduled renewal runs).
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultConfigPath, loadConfig } from '../config/load.ts';
import type { DaemonName } from '../proto/api.ts';
import { createLogger } from '../proto/log.ts';
import { socketPathOf } from '../runtime/daemon.ts';
import { accountsOf, socketOwnersOf } from './accounts.ts';
import { AnchorFile } from './audit-anchors.ts';
import { DaemonProcess } from './daemon-process.ts';
import { holdListenerPorts } from './held-ports.ts';
import { prepareDirectories } from './prepare-dirs.ts';
import { scheduleRenewals } from './schedule.ts';

const USAGE = `usage: certsep-supervisor [--config FILE] [--no-schedule] [--renew-every HOURS] [--jitter SECONDS]

  --config FILE        config file (default $CERTSEP_CONFIG or /etc/certsep/certsep.yaml)
  --no-schedule        start the daemons only; renewals run when certsepctl renew asks
  --renew-every HOURS  how often deployd is asked for a renewal run (default 12)
  --jitter SECONDS     random extra delay before each run (default 3600)`;

// privd first: the others call it, but each call connects afresh, so the order only saves retries.
const DAEMONS: DaemonName[] = ['privd', 'keyd', 'acmed', 'netd', 'deployd'];

const log = createLogger('supervisor');
let args;
try {
  args = parseArgs({
    strict: true,
    options: {
      config: { type: 'string' },
      'no-schedule': { type: 'boolean' },
      'renew-every': { type: 'string' },
      jitter: { type: 'string' },
      help: { type: 'boolean' },
    },
  }).values;
} catch (e) {
  process.stderr.write(`certsep-supervisor: ${(e as Error).message}\n${USAGE}\n`);
  process.exit(64);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('certsep-supervisor: must run as root (it starts each daemon under its own uid)\n');
  process.exit(77);
}
const everyHours = Number(args['renew-every'] ?? 12);
const jitterSeconds = Number(args.jitter ?? 3600);
if (!(everyHours > 0) || !(jitterSeconds >= 0)) {
  process.stderr.write(`certsep-supervisor: --renew-every must be positive hours, --jitter non-negative seconds\n${USAGE}\n`);
  process.exit(64);
}

const configPath = args.config ?? defaultConfigPath();
let config;
let accounts;
let socketOwners;
try {
  config = loadConfig(configPath);
  accounts = accountsOf(config);
  socketOwners = socketOwnersOf(accounts);
} catch (e) {
  process.stderr.write(`certsep-supervisor: ${(e as Error).message}\n`);
  process.exit(78);
}
prepareDirectories(config, accounts);

const distDir = dirname(process.argv[1]!);
const daemonArgs = ['--config', configPath];
const acmedPorts = holdListenerPorts(config, log);
const daemons = DAEMONS.map((name) => new DaemonProcess({
  name,
  account: accounts[name],
  socketOwner: socketOwners[name],
  bundle: join(distDir, `certsep-${name}.mjs`),
  args: daemonArgs,
  runDir: config.paths.runDir,
  ...(name === 'acmed' ? { heldListeners: acmedPorts } : {}),
  anchors: new AnchorFile(config.paths.auditDir, name, log),
}, log));
for (const daemon of daemons) daemon.start();

const cancelSchedule = args['no-schedule']
  ? () => undefined
  : scheduleRenewals(socketPathOf(config, 'deployd'), everyHours * 3_600_000, jitterSeconds * 1000, log);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'stopping the daemons');
  cancelSchedule();
  // deployd first: it must not start a step whose peer is already gone.
  await daemons.find((d) => d.daemonName === 'deployd')?.stop();
  await Promise.all(daemons.map((d) => d.stop()));
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
// SIGHUP is "re-read the config", as for any daemon: each daemon does (and refuses a broken edit,
// keeping its config). The supervisor's own settings (accounts, paths) are read only at its start.
process.on('SIGHUP', () => {
  log.info('SIGHUP: passing it on to every daemon');
  for (const daemon of daemons) daemon.signal('SIGHUP');
});
