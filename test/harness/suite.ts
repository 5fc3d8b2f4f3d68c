// Runs certsep's own daemons for tests: the built bundles (dist/, as installed), each under the
// uid it would have in production (TEST_IDS) via setpriv, privd as root; a config written as YAML
// into a root-owned directory (privd refuses anything else).
import { type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { DaemonName } from '../../proto/api.ts';
import { startDaemon, waitFor, waitForExit } from './proc.ts';
import { spawnAs, TEST_IDS, type Identity } from './uids.ts';

export const REPO = resolve(import.meta.dirname, '..', '..');
const SOURCE_DIRS = ['proto', 'runtime', 'config', 'audit', 'privd', 'keyd', 'acmed', 'netd', 'deployd', 'ctl', 'supervisor', 'remote'];

/** The daemons' uids in tests, in the config's users: form. */
export function testUsers(): Record<string, unknown> {
  return {
    keyd: TEST_IDS.keyd.uid,
    acmed: TEST_IDS.acmed.uid,
    netd: TEST_IDS.netd.uid,
    deployd: TEST_IDS.deployd.uid,
  };
}

/**
 * Writes <dir>/certsep.yaml (root:root 0644) with test paths under dir and the test uids; `extra`
 * is merged over the top level. Creates runDir, stateDir and auditDir.
 */
export function writeTestConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const paths = { runDir: join(dir, 'run'), stateDir: join(dir, 'state'), auditDir: join(dir, 'audit') };
  for (const p of Object.values(paths)) {
    mkdirSync(p, { recursive: true });
    chmodSync(p, 0o755);
  }
  const config = { users: testUsers(), paths, ...extra };
  const path = join(dir, 'certsep.yaml');
  writeFileSync(path, stringify(config), { mode: 0o644 });
  chmodSync(path, 0o644);
  return path;
}

/** Per-daemon dirs a daemon under its own uid must own (state and its audit file), like tmpfiles.d would make them. */
export function prepareDaemonDirs(dir: string, name: DaemonName, id: Identity | null): void {
  const state = join(dir, 'state', name);
  mkdirSync(state, { recursive: true, mode: 0o700 });
  chmodSync(state, 0o700);
  const auditFile = join(dir, 'audit', `${name}.audit.jsonl`);
  if (!existsSync(auditFile)) writeFileSync(auditFile, '', { mode: 0o640 });
  // Only what this daemon owns in production is chowned to it.
  if (id) for (const p of [state, auditFile]) chownSync(p, id.uid, id.gid);
}

export function canConnectUnix(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface RunningDaemon {
  name: DaemonName;
  child: ChildProcess;
  socketPath: string;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

const ROOT: Identity | null = null;

export const DAEMON_IDS: Record<DaemonName, Identity | null> = {
  privd: ROOT,
  keyd: TEST_IDS.keyd,
  acmed: TEST_IDS.acmed,
  netd: TEST_IDS.netd,
  deployd: TEST_IDS.deployd,
};

/** Fails fast when dist/ is older than the sources: tests must exercise the code as built. */
export function assertBuilt(name: DaemonName | 'ctl'): string {
  const bundle = join(REPO, 'dist', name === 'ctl' ? 'certsepctl.mjs' : `certsep-${name}.mjs`);
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run node build.mjs (npm test does)`);
  const built = statSync(bundle).mtimeMs;
  const newest = Math.max(...SOURCE_DIRS.flatMap((d) => newestTs(join(REPO, d))));
  if (newest > built) throw new Error(`${bundle} is older than the sources: run node build.mjs (npm test does)`);
  return bundle;
}

function newestTs(dir: string): number[] {
  if (!existsSync(dir)) return [0];
  const out: number[] = [0];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...newestTs(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push(statSync(p).mtimeMs);
  }
  return out;
}

export interface StartOptions {
  configPath: string;
  /** Default <runDir>/<name>.sock as the config says; given here for tests that move it. */
  socketPath: string;
  identity?: Identity | null;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  logFile: string;
}

/** Starts dist/certsep-<name>.mjs under its test uid and waits until its socket accepts. */
export async function startCertsepDaemon(name: DaemonName, opts: StartOptions): Promise<RunningDaemon> {
  const bundle = assertBuilt(name);
  const identity = opts.identity === undefined ? DAEMON_IDS[name] : opts.identity;
  const args = [bundle, '--config', opts.configPath, '--socket', opts.socketPath, '--socket-mode', '0666', ...(opts.args ?? [])];
  const env = { ...process.env, ...opts.env };
  let child: ChildProcess;
  if (identity) {
    const log = openSync(opts.logFile, 'a');
    child = spawnAs(identity, process.execPath, args, { env, stdio: ['ignore', log, log] });
    closeSync(log);
  } else {
    child = startDaemon(process.execPath, args, { env, logPath: opts.logFile });
  }
  let exited = false;
  child.once('exit', () => (exited = true));
  await waitFor(async () => {
    if (exited) throw new Error(`certsep-${name} exited during start-up (see ${opts.logFile})`);
    return canConnectUnix(opts.socketPath);
  }, 15_000, `certsep-${name} listening on ${opts.socketPath}`);
  return {
    name,
    child,
    socketPath: opts.socketPath,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      await waitForExit(child, 10_000);
    },
    async kill9() {
      if (exited) return;
      child.kill('SIGKILL');
      await waitForExit(child, 10_000);
    },
  };
}
