// certsep-supervisor for tests: the built bundle as root, started on a test config in a mount
// namespace whose /etc/passwd and /etc/group have certsep's accounts and socket groups with the
// test uids (test/harness/accounts.ts), with the daemons it starts found by their pid files.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonName } from '../../proto/api.ts';
import { writeTestAccounts } from './accounts.ts';
import { trackDaemon, waitFor, waitForExit } from './proc.ts';
import { rawCall } from './raw-call.ts';
import { assertBuilt } from './suite.ts';

export const SUPERVISED: readonly DaemonName[] = ['privd', 'keyd', 'acmed', 'netd', 'deployd'];

export interface Supervisor {
  child: ChildProcess;
  runDir: string;
  logPath: string;
  pidOf(daemon: DaemonName): number;
  stop(): Promise<void>;
}

/** Starts the supervisor; waits until every daemon answers. */
export async function startSupervisor(dir: string, configPath: string, env: NodeJS.ProcessEnv = process.env): Promise<Supervisor> {
  const supervisor = spawnSupervisor(dir, configPath, env);
  await supervisor.ready;
  return supervisor;
}

/** Starts the supervisor; `ready` resolves once every daemon answers. */
export function spawnSupervisor(dir: string, configPath: string, env: NodeJS.ProcessEnv = process.env): Supervisor & { ready: Promise<void> } {
  const bundle = assertBuilt('ctl').replace('certsepctl.mjs', 'certsep-supervisor.mjs');
  const runDir = join(dir, 'run');
  const logPath = join(dir, 'supervisor.log');
  const accounts = writeTestAccounts(dir);
  const log = openSync(logPath, 'a');
  // unshare and sh exec into setpriv and node: the pid stays the supervisor's.
  const child = trackDaemon(spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-ec',
    'mount --bind "$1" /etc/passwd; mount --bind "$2" /etc/group; shift 2; exec "$@"', 'sh', accounts.passwd, accounts.group,
    'setpriv', '--pdeathsig', 'TERM', '--', process.execPath, bundle, '--config', configPath, '--no-schedule'], {
    stdio: ['ignore', log, log],
    env,
  }));
  closeSync(log);
  let exited = false;
  child.once('exit', () => (exited = true));
  const supervisor: Supervisor = {
    child,
    runDir,
    logPath,
    pidOf: (daemon) => Number(readFileSync(join(runDir, `${daemon}.pid`), 'utf8')),
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      await waitForExit(child, 30_000);
    },
  };
  // The supervisor binds the sockets itself, so a connection is accepted before the daemon runs:
  // only an answer (to a method no daemon has) shows that the daemon serves.
  const ready = waitFor(async () => {
    if (exited) throw new Error(`certsep-supervisor exited during start-up (see ${logPath})`);
    const answers = await Promise.all(SUPERVISED.map((d) => rawCall(join(runDir, `${d}.sock`), 'test.areYouThere', {}, 30_000)));
    return answers.every((a) => !a.ok && a.error.code === 'E_UNKNOWN_METHOD');
  }, 60_000, 'every supervised daemon answering').then(() => undefined);
  return { ...supervisor, ready };
}
