// Fixed numeric identities for the daemons under test (no /etc/passwd entries needed) and helpers
// that run a command as one of them through setpriv, with no capabilities unless asked.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { collectResult, trackDaemon, type CommandResult, type RunOptions } from './proc.ts';

export interface Identity {
  uid: number;
  gid: number;
  // Supplementary groups; none when absent.
  groups?: readonly number[];
  // Keep CAP_NET_ADMIN as an ambient capability (netd edits nftables), nothing else.
  netAdmin?: boolean;
}

export const TEST_IDS = {
  keyd: { uid: 61001, gid: 61001 },
  acmed: { uid: 61002, gid: 61002 },
  netd: { uid: 61003, gid: 61003, netAdmin: true },
  deployd: { uid: 61004, gid: 61004 },
  /** A remote host's ssh forced command user (remote-serve); test/fleet gives it a passwd entry. */
  remote: { uid: 61005, gid: 61005 },
  other: { uid: 61009, gid: 61009 },
} as const satisfies Record<string, Identity>;

export function setprivArgs(id: Identity, cmd: string, args: readonly string[]): string[] {
  const groups = id.groups && id.groups.length > 0 ? ['--groups', id.groups.join(',')] : ['--clear-groups'];
  const caps = id.netAdmin
    ? ['--inh-caps', '-all,+net_admin', '--ambient-caps', '+net_admin']
    : ['--inh-caps', '-all'];
  // --pdeathsig: the process must not outlive a test process that was killed outright.
  return [`--reuid=${id.uid}`, `--regid=${id.gid}`, ...groups, ...caps, '--pdeathsig', 'TERM', '--', cmd, ...args];
}

// A long-lived process as id (a daemon under test); terminated when the test process exits.
export function spawnAs(id: Identity, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  return trackDaemon(spawn('setpriv', setprivArgs(id, cmd, args), opts));
}

// A command as id, run to completion.
export function execAs(id: Identity, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const child = spawn('setpriv', setprivArgs(id, cmd, args), {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return collectResult(child, `${cmd} ${args.join(' ')} as uid ${id.uid}`, opts);
}
