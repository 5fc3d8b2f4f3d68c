// Who is who. Node has no getpwnam(3), so names are looked up in /etc/passwd and /etc/group
// directly: certsep's accounts are local system users, which is where package installs put them
// (names only known to NSS modules such as LDAP or systemd-homed are not found; use numeric ids).
import { readFileSync } from 'node:fs';
import { ConfigError } from './error.ts';
import type { Config } from './schema.ts';

export type Role = 'root' | 'keyd' | 'acmed' | 'netd' | 'deployd' | 'admin' | 'remote';

const MAX_ID = 0xfffffffe; // (uid_t)-1 means "no change" to chown(2), never a real id

export function resolveUid(nameOrUid: string | number, passwdFile = '/etc/passwd'): number {
  return resolveId(nameOrUid, passwdFile, 'user');
}

export function resolveGid(nameOrGid: string | number, groupFile = '/etc/group'): number {
  return resolveId(nameOrGid, groupFile, 'group');
}

function resolveId(nameOrId: string | number, databaseFile: string, kind: 'user' | 'group'): number {
  if (typeof nameOrId === 'number' || /^[0-9]+$/.test(nameOrId)) {
    const id = Number(nameOrId);
    if (Number.isSafeInteger(id) && id >= 0 && id <= MAX_ID) return id;
    throw configError(`${nameOrId} is not a valid ${kind} id`);
  }
  const id = lookUpName(nameOrId, databaseFile);
  if (id === undefined) throw configError(`unknown ${kind} ${JSON.stringify(nameOrId)} (not in ${databaseFile})`);
  return id;
}

/** The id field (third) of the line whose first field is name, in passwd(5)/group(5) format. */
function lookUpName(name: string, databaseFile: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(databaseFile, 'utf8');
  } catch (err) {
    throw configError(`cannot read ${databaseFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    // "+name" / "-name" lines are NIS compat entries, not accounts.
    if (fields[0] !== name || fields.length < 3 || name.startsWith('+') || name.startsWith('-')) continue;
    const id = Number(fields[2]);
    if (/^[0-9]+$/.test(fields[2] ?? '') && Number.isSafeInteger(id) && id <= MAX_ID) return id;
  }
  return undefined;
}

function configError(message: string): ConfigError {
  return new ConfigError('E_CONFIG', [{ file: 'users', message }]);
}

// The RPC server asks for a role's uids on every request; resolve each role once per config.
const resolvedRoles = new WeakMap<Config, Map<Role, readonly number[]>>();

/** The uids that hold a role: the daemon's configured user, root, or root plus the admins. */
export function uidsForRole(config: Config, role: Role): readonly number[] {
  let byRole = resolvedRoles.get(config);
  if (!byRole) resolvedRoles.set(config, (byRole = new Map()));
  const cached = byRole.get(role);
  if (cached) return cached;
  const uids = role === 'root' ? [0]
    : role === 'admin' ? [...new Set([0, ...config.users.admins.map((a) => resolveUid(a))])]
    // Only a host with the remote role (install --remote-only) names the ssh forced command's user.
    : role === 'remote' ? (config.users.remote === undefined ? [] : [resolveUid(config.users.remote)])
    : [resolveUid(config.users[role])];
  byRole.set(role, Object.freeze(uids));
  return uids;
}
