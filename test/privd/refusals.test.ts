// What privd refuses, and that a refusal changes nothing and is in the audit log: chains that do
// not fit the key, the names or the clock, requests that name more than a certificate, callers
// that are not deployd or an admin, and a config someone other than root could have written.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../harness/proc.ts';
import { assertBuilt } from '../harness/suite.ts';
import { TEST_IDS } from '../harness/uids.ts';
import {
  assertInstallRefused, snapshot, startPrivdSuite, targetDir, type Issued, type PrivdSuite,
} from './privd-suite.ts';
import { foreignPublicKey } from './test-ca.ts';

const NAMES = ['site.certsep.test', 'www.site.certsep.test', '*.apps.site.certsep.test'];
const DAY = 86_400_000;

describe('privd refusals', () => {
  let suite: PrivdSuite;
  let dirs: string[];
  let good: Issued;

  before(async () => {
    suite = await startPrivdSuite((dir) => {
      dirs = [targetDir(dir, 'one'), targetDir(dir, 'two')];
      return {
        certificates: [{
          name: 'site',
          domains: NAMES,
          challenge: { type: 'dns-01-hook', command: ['/bin/true'] },
          targets: dirs.map((d) => ({ dir: d, files: ['fullchain', 'privkey', 'combined'] })),
        }],
      };
    });
    // A committed version first, so "nothing written" is checked against real files.
    good = await suite.issue('site', 'ec-p256', { names: NAMES });
    await suite.install('site', 'ec-p256', good);
    assert.ok((await suite.call('deploy.reload', { certs: ['site'] })).ok);
  });

  after(async () => {
    await suite?.stop();
  });

  const everything = () => snapshot(...dirs, ...['live', 'archive', 'privd'].map((d) => join(suite.dir, 'state', d)));
  const assertRefusedInstall = (issued: Issued, code: string, message: RegExp) =>
    assertInstallRefused(suite, 'site', issued, code, message, dirs);

  it('privd refuses a chain whose key does not match', async () => {
    const issued = await suite.issue('site', 'ec-p256', { names: NAMES, publicKey: await foreignPublicKey() });
    await assertRefusedInstall(issued, 'E_KEY_MISMATCH', /not for the certificate's current key/);
  });

  it('privd refuses a chain whose names differ from the configured domains, one name more or one less', async () => {
    await assertRefusedInstall(await suite.issue('site', 'ec-p256', { names: [...NAMES, 'evil.certsep.test'] }), 'E_NAMES', /not configured evil\.certsep\.test/);
    await assertRefusedInstall(await suite.issue('site', 'ec-p256', { names: NAMES.slice(0, 2) }), 'E_NAMES', /missing \*\.apps\.site\.certsep\.test/);
    // A wildcard is a literal name: it does not stand for www.
    await assertRefusedInstall(await suite.issue('site', 'ec-p256', { names: ['site.certsep.test', '*.site.certsep.test', '*.apps.site.certsep.test'] }), 'E_NAMES', /missing www\.site/);
  });

  it('privd refuses an expired chain and one not valid yet', async () => {
    const expired = await suite.issue('site', 'ec-p256', { names: NAMES, notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    await assertRefusedInstall(expired, 'E_EXPIRED', /expired at/);
    const future = await suite.issue('site', 'ec-p256', { names: NAMES, notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) });
    await assertRefusedInstall(future, 'E_EXPIRED', /not valid before/);
  });

  it('privd refuses a chain not in issuer order, and one that is not PEM certificates', async () => {
    const misordered = await suite.issue('site', 'ec-p256', {
      names: NAMES,
      chain: (leaf) => leaf + suite.ca.rootPem + `${suite.ca.intermediate.cert.toString('pem')}\n`,
    });
    await assertRefusedInstall(misordered, 'E_CHAIN', /not in issuer order: certificate 1 is not signed by certificate 2/);
    const fresh = await suite.issue('site', 'ec-p256', { names: NAMES });
    const withKey = { ...fresh, chainPem: fresh.chainPem + fresh.keyPem };
    await assertRefusedInstall(withKey, 'E_CHAIN', /something other than PEM certificates/);
  });

  it('privd refuses a certificate that is not in its config, and audits it', async () => {
    const before = everything();
    for (const [method, params] of [
      ['deploy.install', { cert: 'not-configured', keyType: 'ec-p256', chainPem: good.chainPem, keyId: good.keyId }],
      ['deploy.check', { certs: ['site', 'not-configured'] }],
      ['deploy.reload', { certs: ['not-configured'] }],
    ] as const) {
      const mark = suite.auditMark();
      const answer = await suite.call(method, params);
      assert.equal(answer.ok, false);
      assert.equal(answer.error.code, 'E_UNKNOWN_CERT', `${method}: ${answer.error.message}`);
      const record = await suite.awaitAudit(mark, (r) => r.method === method);
      assert.equal(record.code, 'E_UNKNOWN_CERT');
      assert.equal(record.peer?.uid, 0);
    }
    assert.deepEqual(everything(), before);
  });

  it('privd refuses a request carrying a path, command, unit, owner or mode, and audits it', async () => {
    const before = everything();
    const install = { cert: 'site', keyType: 'ec-p256', chainPem: good.chainPem, keyId: good.keyId };
    const hostile: [string, Record<string, unknown>][] = [
      ['deploy.install', { ...install, path: '/etc/shadow' }],
      ['deploy.install', { ...install, mode: '0777' }],
      ['deploy.install', { ...install, owner: 'nobody' }],
      ['deploy.check', { certs: ['site'], command: ['/bin/sh', '-c', 'id'] }],
      ['deploy.reload', { certs: ['site'], unit: 'ssh.service' }],
      ['deploy.install', { ...install, cert: '../../etc' }],
      ['status', { certs: ['/etc/passwd'] }],
    ];
    for (const [method, params] of hostile) {
      const mark = suite.auditMark();
      const answer = await suite.call(method, params);
      assert.equal(answer.ok, false);
      assert.equal(answer.error.code, 'E_SCHEMA', `${method} ${JSON.stringify(Object.keys(params))}`);
      const record = await suite.awaitAudit(mark, (r) => r.method === method);
      assert.equal(record.outcome, 'refused');
      assert.equal(record.code, 'E_SCHEMA');
    }
    assert.deepEqual(everything(), before);
  });

  it('privd refuses callers other than deployd and admins (an unknown uid, acmed) and audits their uid and pid', async () => {
    const before = everything();
    for (const id of [TEST_IDS.other, TEST_IDS.acmed]) {
      for (const [method, params] of [
        ['deploy.install', { cert: 'site', keyType: 'ec-p256', chainPem: good.chainPem, keyId: good.keyId }],
        ['deploy.reload', { certs: ['site'] }],
        ['status', {}],
      ] as const) {
        const mark = suite.auditMark();
        const { pid, answer } = await suite.callAs(id, method, params);
        assert.equal(answer.ok, false);
        assert.equal(answer.error.code, 'E_PEER', `uid ${id.uid} ${method}`);
        const record = await suite.awaitAudit(mark, (r) => r.method === method);
        assert.equal(record.outcome, 'refused');
        assert.deepEqual(record.peer, { uid: id.uid, gid: id.gid, pid });
      }
    }
    assert.deepEqual(everything(), before);
  });

  it('privd refuses to start with a group-writable config (exit 78, says why)', async () => {
    const config = join(suite.dir, 'group-writable.yaml');
    copyFileSync(suite.configPath, config);
    chmodSync(config, 0o664);
    const run = await runCommand(process.execPath, [assertBuilt('privd'), '--config', config, '--socket', join(suite.dir, 'run', 'never.sock')], { timeoutMs: 20_000 });
    assert.equal(run.code, 78, run.stderr);
    assert.match(run.stderr, /refusing to trust .*group-writable\.yaml: .* is writable by its group \(mode 0664\)/);
  });
});
