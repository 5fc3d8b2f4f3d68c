// The accounts of sysusers.d/certsep.conf (names, socket groups, memberships) with the test uids,
// as passwd and group files for a mount namespace of their own: certsep-supervisor gives each
// daemon the groups /etc/group lists its user in, and each socket its callers' group, as an
// installed host has them. The machine's own entries stay, but for those names and ids.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './suite.ts';
import { TEST_IDS, type Identity } from './uids.ts';

/** The accounts' production names, with the test identity each stands for. */
const USERS: Record<string, Identity> = {
  'certsep-key': TEST_IDS.keyd,
  'certsep-acme': TEST_IDS.acmed,
  'certsep-net': TEST_IDS.netd,
  'certsep-deploy': TEST_IDS.deployd,
};
export const TEST_GROUP_IDS: Record<string, number> = { 'certsep-keyclients': 61021, 'certsep-clients': 61022 };

/** deployd's uid with the supplementary groups its account has, to call the sockets as it does. */
export function withSocketGroups(user: keyof typeof USERS): Identity {
  return { ...USERS[user]!, groups: memberships().filter(([member]) => member === user).map(([, group]) => gidOf(group)) };
}

function memberships(): [string, string][] {
  const spec = readFileSync(join(REPO, 'systemd', 'sysusers.d', 'certsep.conf'), 'utf8').split('\n');
  return spec.flatMap((line) => {
    const m = /^m\s+(\S+)\s+(\S+)/.exec(line);
    return m ? [[m[1]!, m[2]!] as [string, string]] : [];
  });
}

function gidOf(group: string): number {
  const gid = TEST_GROUP_IDS[group];
  if (gid === undefined) throw new Error(`sysusers.d/certsep.conf has group ${group}, which test/harness/accounts.ts gives no test id`);
  return gid;
}

/** Writes <dir>/passwd and <dir>/group for a namespace's /etc/passwd and /etc/group. */
export function writeTestAccounts(dir: string): { passwd: string; group: string } {
  const ours = new Set([...Object.keys(USERS), ...Object.keys(TEST_GROUP_IDS)]);
  const ids = new Set([...Object.values(USERS).map((u) => u.uid), ...Object.values(TEST_GROUP_IDS)]);
  const keep = (file: string) => readFileSync(file, 'utf8').split('\n').filter((line) => {
    const [name, , id] = line.split(':');
    return line !== '' && !ours.has(name!) && !ids.has(Number(id));
  });
  const members = new Map<string, string[]>();
  for (const [user, group] of memberships()) members.set(group, [...(members.get(group) ?? []), user]);
  const passwd = [...keep('/etc/passwd'), ...Object.entries(USERS).map(([name, id]) => `${name}:x:${id.uid}:${id.gid}:certsep test:/:/usr/sbin/nologin`)];
  const group = [
    ...keep('/etc/group'),
    ...Object.entries(USERS).map(([name, id]) => `${name}:x:${id.gid}:`),
    ...[...members.keys()].map((name) => `${name}:x:${gidOf(name)}:${members.get(name)!.join(',')}`),
  ];
  const paths = { passwd: join(dir, 'passwd'), group: join(dir, 'group') };
  writeFileSync(paths.passwd, `${passwd.join('\n')}\n`, { mode: 0o644 });
  writeFileSync(paths.group, `${group.join('\n')}\n`, { mode: 0o644 });
  return paths;
}
