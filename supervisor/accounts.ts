// The uid and gid each daemon runs as, from the config's users: section. The gid is the user's
// primary group in /etc/passwd (adduser --system --group makes it); a bare numeric uid without a
// passwd entry runs with the same number as its gid.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import { resolveUid } from '../config/users.ts';
import type { DaemonName } from '../proto/api.ts';

export interface Account {
  uid: number;
  gid: number;
}

export function accountsOf(config: Config, passwdFile = '/etc/passwd'): Record<DaemonName, Account> {
  const primaryGid = primaryGroups(passwdFile);
  const account = (ref: string | number): Account => {
    const uid = resolveUid(ref, passwdFile);
    return { uid, gid: primaryGid.get(uid) ?? uid };
  };
  return {
    privd: { uid: 0, gid: 0 },
    keyd: account(config.users.keyd),
    acmed: account(config.users.acmed),
    netd: account(config.users.netd),
    deployd: account(config.users.deployd),
  };
}

function primaryGroups(passwdFile: string): Map<number, number> {
  const groups = new Map<number, number>();
  let text = '';
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return groups;
  }
  for (const line of text.split('\n')) {
    const [, , uid, gid] = line.split(':');
    if (uid && gid && /^\d+$/.test(uid) && /^\d+$/.test(gid) && !groups.has(Number(uid))) groups.set(Number(uid), Number(gid));
  }
  return groups;
}
