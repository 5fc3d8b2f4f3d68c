// Settings a running daemon cannot take over: it listens, writes and is called by uid according
// to them from its start (the socket and its directories, the audit file, the RPC limits, the
// accounts the units or the supervisor start the daemons as). An edit of one of them is refused
// as a whole rather than half applied: a daemon runs one version of the file or keeps the old one.
import { basename } from 'node:path';
import type { ConfigIssue } from '../config/error.ts';
import type { Config } from '../config/schema.ts';
import type { ServiceName } from '../proto/api.ts';

const READ_AT_START = [
  ['paths', 'runDir'], ['paths', 'stateDir'], ['paths', 'auditDir'],
  ['rpc', 'maxFrameBytes'], ['rpc', 'requestTimeoutSeconds'], ['rpc', 'idleExitSeconds'],
  ['users', 'keyd'], ['users', 'acmed'], ['users', 'netd'], ['users', 'deployd'], ['users', 'remote'],
] as const;

/** One issue per start-only setting that differs between the config in force and the edited one. */
export function startOnlyChanges(inForce: Config, edited: Config, path: string, daemon: ServiceName): ConfigIssue[] {
  return READ_AT_START.flatMap(([section, key]) => {
    const before = (inForce[section] as Record<string, unknown>)[key];
    const after = (edited[section] as Record<string, unknown>)[key];
    if (before === after) return [];
    return [{
      file: basename(path),
      path: `${section}.${key}`,
      message: `changed from ${JSON.stringify(before) ?? 'unset'} to ${JSON.stringify(after) ?? 'unset'}, `
        + `but certsep-${daemon} reads it only at start: restart the daemons `
        + '(systemctl restart \'certsep-*.service\', or restart certsep-supervisor), or undo the change',
    }];
  });
}
