// keyd's socket group, held to keyd's api.ts: its members are exactly the accounts of the roles
// keyd's methods allow (root and the admins get no group), so the file system already turns netd and everyone
// else away from the socket of the daemon that holds the keys.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigSchema } from '../../config/schema.ts';
import { keydApi } from '../../keyd/api.ts';
import { REPO } from '../harness/suite.ts';

const SYSTEMD = join(REPO, 'systemd');
const REMOTE_USER = 'certsep-remote';

function membersOf(group: string): string[] {
  return ['certsep.conf', 'certsep-remote.conf']
    .flatMap((f) => readFileSync(join(SYSTEMD, 'sysusers.d', f), 'utf8').split('\n'))
    .map((line) => line.trim().split(/\s+/))
    .filter(([type, , g]) => type === 'm' && g === group)
    .map(([, user]) => user!)
    .sort();
}

test("keyd.sock's group holds exactly the accounts keyd's api.ts lets call it: deployd, acmed, remote-serve", () => {
  const unit = readFileSync(join(SYSTEMD, 'certsep-keyd.socket'), 'utf8');
  assert.match(unit, /^SocketMode=0660$/m);
  const group = /^SocketGroup=(\S+)$/m.exec(unit)?.[1];
  assert.ok(group, 'certsep-keyd.socket names a SocketGroup');
  const users = ConfigSchema.parse({ users: { remote: REMOTE_USER } }).users;
  // root needs no group; `admin` (config.status, which every daemon answers) is root plus
  // users.admins, and keyd's socket gives the admins no group: for keyd that method is root's.
  const roles = new Set(Object.values(keydApi.methods).flatMap((m) => m.callers).filter((role) => role !== 'root' && role !== 'admin'));
  const allowed = [...roles].map((role) => String(users[role as 'deployd' | 'acmed' | 'remote'])).sort();
  assert.deepEqual(membersOf(group), allowed);
  assert.ok(!membersOf(group).includes(String(users.netd)), 'netd cannot connect to keyd');
});
