// acmed restarted against a real Pebble, for a CA configured without an email: the account key it
// already has must find its account again. Before the fix, acmed sent a newAccount for the known
// key, acme-client followed Pebble's 200 with an empty account update, Pebble refused it, and every
// order after a restart failed with E_CA.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { assertChainsToRoot, startAcmed, type AcmedUnderTest } from './start-acmed.ts';

function accountKeyOf(stateDir: string): string {
  const accounts = join(stateDir, 'accounts');
  const dirs = readdirSync(accounts);
  assert.equal(dirs.length, 1, 'one CA directory, one account');
  return readFileSync(join(accounts, dirs[0]!, 'account-key.pem'), 'utf8');
}

describe('acmed after a restart, CA without email', () => {
  let pebble: Pebble;
  let acmed: AcmedUnderTest;

  before(async () => {
    pebble = await startPebble();
    acmed = await startAcmed({
      config: {
        cas: { plain: { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath } },
        certificates: [{ name: 'restart-cert', domains: ['restart.example.com'], ca: 'plain', challenge: { type: 'http-01-listener', port: pebble.httpPort } }],
      },
    });
  });
  after(async () => {
    await acmed?.stop();
    await pebble?.stop();
  });

  test('a second order after acmed restarted is issued under the same account', async () => {
    const root = await pebble.fetchRoot();
    const first = await acmed.client.call('account.ensure', { ca: 'plain' });
    assert.equal(first.created, true);
    const issued = await acmed.orderKeydCsr('restart-cert');
    assertChainsToRoot(issued.chainPem, root);
    const keyBefore = accountKeyOf(acmed.stateDir);

    await acmed.restart();

    const again = await acmed.orderKeydCsr('restart-cert');
    assertChainsToRoot(again.chainPem, root);
    const second = await acmed.client.call('account.ensure', { ca: 'plain' });
    assert.equal(second.accountUrl, first.accountUrl, 'the account found again is the one registered before the restart');
    assert.equal(second.created, false);
    assert.equal(accountKeyOf(acmed.stateDir), keyBefore, 'the account key is kept');
    assert.doesNotMatch(acmed.log(), /registering the key again/);
  });
});
