// The uid, gid and supplementary groups each daemon runs as, from the config's users: section, and
// the owner and group of each daemon's socket. The gid is the user's primary group in /etc/passwd
// (adduser --system --group makes it); a bare numeric uid without a passwd entry runs with the
// same number as its gid. Supplementary groups are those of /etc/group that list the user, as
// systemd's User= (initgroups) gives them: they are how deployd reaches the sockets it calls.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import { resolveUid } from '../config/users.ts';
import type { DaemonName } from '../proto/api.ts';
import { SOCKET_GROUPS } from './socket-access.ts';

export interface Account {
  uid: number;
  gid: number;
  /** Supplementary group ids; none for root, which needs none to reach any socket. */
  groups: number[];
}

export interface SocketOwner {
  uid: number;
  gid: number;
}

interface AccountDatabase {
  users: { name: string; uid: number; gid: number }[];
  groups: { name: string; gid: number; members: string[] }[];
}

export function accountsOf(
  config: Config, passwdFile = '/etc/passwd', groupFile = '/etc/group',
): Record<DaemonName, Account> {
  const db = readAccounts(passwdFile, groupFile);
  const account = (ref: string | number): Account => {
    const uid = resolveUid(ref, passwdFile);
    const user = db.users.find((u) => u.uid === uid);
    const groups = user ? db.groups.filter((g) => g.members.includes(user.name)).map((g) => g.gid) : [];
    return { uid, gid: user?.gid ?? uid, groups: [...new Set(groups)] };
  };
  return {
    privd: { uid: 0, gid: 0, groups: [] },
    keyd: account(config.users.keyd),
    acmed: account(config.users.acmed),
    netd: account(config.users.netd),
    deployd: account(config.users.deployd),
  };
}

/** Each socket's owner (its daemon) and group (SOCKET_GROUPS); throws if a group is missing. */
export function socketOwnersOf(
  accounts: Record<DaemonName, Account>, groupFile = '/etc/group',
): Record<DaemonName, SocketOwner> {
  const { groups } = readAccounts(null, groupFile);
  const owner = (daemon: DaemonName): SocketOwner => {
    const group = groups.find((g) => g.name === SOCKET_GROUPS[daemon]);
    // Without its group a socket could only be left open to everyone or closed to its callers.
    if (!group) {
      const name = SOCKET_GROUPS[daemon];
      throw new Error(`group ${name} (who may connect to ${daemon}.sock) is not in ${groupFile}; install makes it`);
    }
    return { uid: accounts[daemon].uid, gid: group.gid };
  };
  return {
    privd: owner('privd'), keyd: owner('keyd'), acmed: owner('acmed'), netd: owner('netd'), deployd: owner('deployd'),
  };
}

function readAccounts(passwdFile: string | null, groupFile: string): AccountDatabase {
  const users = lines(passwdFile).flatMap(([name, , uid, gid]) =>
    (name && isId(uid) && isId(gid) ? [{ name, uid: Number(uid), gid: Number(gid) }] : []));
  const groups = lines(groupFile).flatMap(([name, , gid, members]) =>
    (name && isId(gid) ? [{ name, gid: Number(gid), members: (members ?? '').split(',').filter(Boolean) }] : []));
  return { users, groups };
}

function lines(file: string | null): string[][] {
  if (file === null) return [];
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').map((line) => line.split(':'));
}

function isId(field: string | undefined): field is string {
  return field !== undefined && /^[0-9]{1,10}$/.test(field);
}
