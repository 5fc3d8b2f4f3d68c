// certsep-supervisor for tests: the built bundle as root, started on a test config, with the
// daemons it starts found by their pid files in runDir.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonName } from '../../proto/api.ts';
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

export async function startSupervisor(dir: string, configPath: string, env: NodeJS.ProcessEnv = process.env): Promise<Supervisor> {
  const bundle = assertBuilt('ctl').replace('certsepctl.mjs', 'certsep-supervisor.mjs');
  const runDir = join(dir, 'run');
  const logPath = join(dir, 'supervisor.log');
  const log = openSync(logPath, 'a');
  const child = trackDaemon(spawn('setpriv', ['--pdeathsig', 'TERM', '--', process.execPath, bundle, '--config', configPath, '--no-schedule'], {
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
  await waitFor(async () => {
    if (exited) throw new Error(`certsep-supervisor exited during start-up (see ${logPath})`);
    const answers = await Promise.all(SUPERVISED.map((d) => rawCall(join(runDir, `${d}.sock`), 'test.areYouThere', {}, 30_000)));
    return answers.every((a) => !a.ok && a.error.code === 'E_UNKNOWN_METHOD');
  }, 60_000, 'every supervised daemon answering');
  return supervisor;
}
