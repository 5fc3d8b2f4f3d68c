// A certificate with two key types (EC and RSA) in one target: the first key type gets the plain
// names, the second its type before ".pem", in the target and in the lineage; one run commits both.
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readTarget, startPrivdSuite, targetDir, type PrivdSuite } from './privd-suite.ts';

const NAMES = ['dual.certsep.test'];

describe('privd with two key types', () => {
  let suite: PrivdSuite;
  let dir: string;

  before(async () => {
    suite = await startPrivdSuite((root) => {
      dir = targetDir(root, 'dual');
      return {
        certificates: [{
          name: 'dual',
          domains: NAMES,
          keyTypes: ['ec-p256', 'rsa-2048'],
          challenge: { type: 'dns-01-hook', command: ['/bin/true'] },
          targets: [{ dir, files: ['fullchain', 'privkey'] }],
        }],
      };
    });
  });

  after(async () => {
    await suite?.stop();
  });

  it('privd installs both key types side by side and commits them in one run', async () => {
    const ec = await suite.issue('dual', 'ec-p256', { names: NAMES });
    const rsa = await suite.issue('dual', 'rsa-2048', { names: NAMES });
    const first = await suite.install('dual', 'ec-p256', ec);
    const second = await suite.install('dual', 'rsa-2048', rsa);
    assert.equal(second['runId'], first['runId'], 'the second key type joins the pending run');

    const reloaded = await suite.call('deploy.reload', { certs: ['dual'] });
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
    assert.deepEqual(reloaded.result['committed'], [{ cert: 'dual', runId: first['runId'], versions: { 'ec-p256': 1, 'rsa-2048': 1 } }]);
    assert.deepEqual(readTarget(dir), {
      'fullchain.pem': ec.chainPem,
      'fullchain.rsa-2048.pem': rsa.chainPem,
      'privkey.pem': ec.keyPem,
      'privkey.rsa-2048.pem': rsa.keyPem,
    });
    const live = join(suite.dir, 'state', 'live', 'dual');
    assert.equal(readlinkSync(join(live, 'privkey.pem')), '../../archive/dual/privkey1.pem');
    assert.equal(readlinkSync(join(live, 'privkey.rsa-2048.pem')), '../../archive/dual/privkey1.rsa-2048.pem');
  });

  it('privd refuses a key type the certificate is not configured for', async () => {
    const answer = await suite.call('deploy.install', { cert: 'dual', keyType: 'ec-p384', chainPem: 'x', keyId: '0'.repeat(64) });
    assert.equal(answer.ok, false);
    assert.equal(answer.error.code, 'E_KEY_TYPE');
    assert.match(answer.error.message, /configured for ec-p256 and rsa-2048, not ec-p384/);
  });
});
