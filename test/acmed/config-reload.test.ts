// acmed and an edited config, with the real certsep-acmed: a CA's new profile reaches the next
// newOrder without a restart (seen in the newOrder body by the fake CA of fake-ca.ts, since
// Debian's Pebble 2.4 has no profiles), and an edit naming a trust bundle acmed cannot read is
// refused while the CA keeps being reached with the trust and profile it had.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ConfigStatus } from '../../runtime/config-status.ts';
import { writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { startFakeCa, type FakeCa } from './fake-ca.ts';
import { startAcmed, type AcmedUnderTest } from './start-acmed.ts';

describe('acmed and an edited config', () => {
  let scratch: string;
  let fake: FakeCa;
  let acmed: AcmedUnderTest;
  const config = (ca: Record<string, unknown>) => ({
    cas: { default: { directory: fake.directoryUrl, trustBundle: fake.caBundlePath, ...ca } },
    certificates: [{ name: 'site', domains: ['site.example.com'], challenge: { type: 'http-01-listener', port: 1 } }],
  });
  // The fake CA answers every newOrder with a rate limit: the order fails, its body is kept.
  const order = async () => {
    const csrPem = await acmed.keydCsr('site');
    await assert.rejects(acmed.client.call('order.issue', { cert: 'site', csrPem, keyType: 'ec-p256' }),
      (e: Error & { code?: string }) => e.code === 'E_RATE_LIMITED');
    return fake.newOrders.at(-1);
  };
  const configStatus = () => acmed.client.call('config.status', {}) as Promise<ConfigStatus>;

  before(async () => {
    scratch = makeTempDir('acmed-reload');
    fake = await startFakeCa(scratch);
    acmed = await startAcmed({ config: config({ profile: 'classic' }) });
  });
  after(async () => {
    await acmed?.stop();
    await fake?.stop();
    if (scratch) removeTempDir(scratch);
  });

  test('a changed CA profile is in the next newOrder, from the same acmed process', async () => {
    assert.equal((await order())?.['profile'], 'classic');
    const pid = acmed.pid();
    writeTestConfig(acmed.dir, config({ profile: 'shortlived' }));
    assert.equal((await order())?.['profile'], 'shortlived');
    assert.equal(acmed.pid(), pid, 'no restart');
    assert.match(acmed.log(), /"msg":"config reloaded"/);
  });

  test('an edit whose trust bundle acmed cannot read is refused; the CA is reached as before', async () => {
    writeTestConfig(acmed.dir, config({ profile: 'other', trustBundle: '/nonexistent/ca.pem' }));
    assert.equal((await order())?.['profile'], 'shortlived', 'the config in force, trust bundle and all, still orders');
    const { refused } = await configStatus();
    assert.equal(refused?.code, 'E_CONFIG');
    assert.deepEqual(refused?.issues, [
      'certsep-acmed cannot use it: cas.default.trustBundle: cannot read /nonexistent/ca.pem: ENOENT',
    ]);
  });
});
