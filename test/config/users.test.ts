import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../config/error.ts';
import { parseConfig } from '../../config/load.ts';
import { resolveGid, resolveUid, uidsForRole } from '../../config/users.ts';

describe('resolveUid and resolveGid', () => {
  const dir = mkdtempSync(join(tmpdir(), 'certsep-users-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const passwd = join(dir, 'passwd');
  const group = join(dir, 'group');
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\ncertsep-key:x:991:991::/var/lib/certsep:/usr/sbin/nologin\n+nis:x:5::::\nbroken:x:notanumber:1::/:\n');
  writeFileSync(group, 'root:x:0:\nssl-cert:x:112:postfix\n');

  it('finds a user name in the passwd file', () => {
    assert.equal(resolveUid('certsep-key', passwd), 991);
    assert.equal(resolveUid('root'), 0, 'root is uid 0 in the real /etc/passwd');
  });

  it('finds a group name in the group file', () => {
    assert.equal(resolveGid('ssl-cert', group), 112);
  });

  it('passes numeric ids through, as numbers or digit strings', () => {
    assert.equal(resolveUid(1234, passwd), 1234);
    assert.equal(resolveUid('1234', passwd), 1234);
    assert.equal(resolveGid(0, group), 0);
  });

  it('refuses an unknown name, a NIS compat line, a malformed id and (uid_t)-1', () => {
    for (const bad of ['nobody-here', '+nis', 'broken', 4294967295]) {
      assert.throws(() => resolveUid(bad, passwd), (err: unknown) => err instanceof ConfigError && err.code === 'E_CONFIG', String(bad));
    }
    assert.throws(() => resolveUid('nobody-here', passwd), /unknown user "nobody-here"/);
  });
});

describe('uidsForRole', () => {
  const config = parseConfig('users:\n  keyd: 991\n  acmed: "992"\n  admins: [1000, root, 1000]\n', 'c.yaml');

  it('root is uid 0 alone', () => {
    assert.deepEqual(uidsForRole(config, 'root'), [0]);
  });

  it('a daemon role is the configured user', () => {
    assert.deepEqual(uidsForRole(config, 'keyd'), [991]);
    assert.deepEqual(uidsForRole(config, 'acmed'), [992]);
  });

  it('admin is root plus the admins, each once', () => {
    assert.deepEqual(uidsForRole(config, 'admin'), [0, 1000]);
  });

  it('a role whose user does not exist is a config error', () => {
    const missing = parseConfig('users:\n  netd: certsep-no-such-user\n', 'c.yaml');
    assert.throws(() => uidsForRole(missing, 'netd'), (err: unknown) => err instanceof ConfigError && /certsep-no-such-user/.test(err.message));
  });
});
