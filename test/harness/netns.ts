// Network namespaces for netd's tests (UPnP router, nftables), so nothing touches the host's
// network. Every namespace is named certsep-t-<name>-<random> and deleted when the test process
// exits even if the test did not get to deleteNetns().
import { randomBytes } from 'node:crypto';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { runCommand, startDaemon, type CommandResult, type DaemonOptions, type RunOptions } from './proc.ts';
import { REPO } from './suite.ts';

export const NETNS_PREFIX = 'certsep-t-';

const createdNamespaces = new Set<string>();
process.on('exit', () => {
  for (const ns of createdNamespaces) spawnSync('ip', ['netns', 'delete', ns]);
});

async function ip(args: string[]): Promise<void> {
  const result = await runCommand('ip', args);
  if (result.code !== 0) throw new Error(`ip ${args.join(' ')} failed: ${result.stderr.trim()}`);
}

// Returns the namespace's full name; its loopback is up.
export async function createNetns(name: string): Promise<string> {
  const ns = `${NETNS_PREFIX}${name}-${randomBytes(3).toString('hex')}`;
  await ip(['netns', 'add', ns]);
  createdNamespaces.add(ns);
  await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

export async function deleteNetns(ns: string): Promise<void> {
  if (!ns.startsWith(NETNS_PREFIX)) throw new Error(`refusing to delete namespace ${ns}: not created by the harness`);
  await ip(['netns', 'delete', ns]);
  createdNamespaces.delete(ns);
}

export interface VethEnd {
  ns: string;
  // At most 15 characters (IFNAMSIZ).
  ifname: string;
  // CIDR, e.g. 10.77.0.1/24
  address?: string;
}

// Links two namespaces with a veth pair and brings both ends up.
export async function createVethPair(a: VethEnd, b: VethEnd): Promise<void> {
  await ip(['-n', a.ns, 'link', 'add', a.ifname, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.ns]);
  for (const end of [a, b]) {
    if (end.address) await ip(['-n', end.ns, 'addr', 'add', end.address, 'dev', end.ifname]);
    await ip(['-n', end.ns, 'link', 'set', end.ifname, 'up']);
  }
}

export function execInNetns(ns: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  return runCommand('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

// A long-lived process inside ns (e.g. miniupnpd); `ip netns exec` execs it, so the pid is its own.
export function startDaemonInNetns(ns: string, cmd: string, args: readonly string[], opts: DaemonOptions): ChildProcess {
  return startDaemon('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/**
 * Runs a test file again inside ns (a process cannot move itself into a namespace) with env added,
 * and without NODE_TEST_CONTEXT, which node's runner sets for the files it runs: the inner node
 * would otherwise report to a parent runner that is not listening, run nothing and exit 0.
 */
export function runTestFileInNetns(ns: string, file: string, env: Record<string, string>, timeoutMs: number): Promise<CommandResult> {
  const innerEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete innerEnv['NODE_TEST_CONTEXT'];
  return execInNetns(ns, process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', file], { cwd: REPO, env: innerEnv, timeoutMs });
}
