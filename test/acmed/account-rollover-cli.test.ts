// `certsepctl account rollover` end to end: the built CLI, run as root (an admin), asks the built
// acmed (under its test uid) to roll its account key over at a real Pebble. The CA itself is then
// asked which account each key belongs to, and an order under the rolled-over account is issued.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import acme from 'acme-client';
import { keyThumbprint } from '../../acmed/accounts.ts';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { runCommand, type CommandResult } from '../harness/proc.ts';
import { assertBuilt } from '../harness/suite.ts';
import { assertChainsToRoot, dnsNames, startAcmed, type AcmedUnderTest } from './start-acmed.ts';

/** The account URL the CA has for this key, asked directly (onlyReturnExisting), or the CA's refusal. */
async function accountUrlAtCa(pebble: Pebble, keyPem: string): Promise<string> {
  acme.axios.defaults.httpsAgent = new Agent({ ca: readFileSync(pebble.caBundlePath) });
  const client = new acme.Client({ directoryUrl: pebble.directoryUrl, accountKey: keyPem });
  await client.createAccount({ onlyReturnExisting: true });
  return client.getAccountUrl();
}

/** acmed keeps one account dir per directory URL; this test configures a single CA. */
function accountKeyPath(stateDir: string): string {
  const dirs = readdirSync(join(stateDir, 'accounts'));
  assert.equal(dirs.length, 1, `one account dir, found ${dirs.join(', ')}`);
  return join(stateDir, 'accounts', dirs[0]!, 'account-key.pem');
}

describe('certsepctl account rollover', () => {
  let ctl: string;
  let pebble: Pebble;
  let acmed: AcmedUnderTest;
  const runCtl = (...args: string[]): Promise<CommandResult> =>
    runCommand(process.execPath, [ctl, '--config', join(acmed.dir, 'certsep.yaml'), ...args], { timeoutMs: 120_000 });

  before(async () => {
    ctl = assertBuilt('ctl');
    pebble = await startPebble();
    acmed = await startAcmed({
      config: {
        cas: { pebble: { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath } },
        certificates: [{
          name: 'after-rollover', domains: ['after-rollover.example.com'], ca: 'pebble',
          challenge: { type: 'http-01-listener', address: '127.0.0.1', port: pebble.httpPort },
        }],
      },
    });
  });
  after(async () => {
    await acmed?.stop();
    await pebble?.stop();
  });

  test('run as root it replaces the key at the CA: the new key finds the account, the old one does not', async () => {
    const account = await acmed.client.call('account.ensure', { ca: 'pebble' });
    const keyPath = accountKeyPath(acmed.stateDir);
    const oldKey = readFileSync(keyPath, 'utf8');

    const run = await runCtl('account', 'rollover', '--ca', 'pebble');
    assert.equal(run.code, 0, `certsepctl failed: ${run.stderr}`);
    process.stdout.write(`# certsepctl account rollover printed:\n${run.stdout.trimEnd().replace(/^/gm, '#   ')}\n`);

    const newKey = readFileSync(keyPath, 'utf8');
    assert.notEqual(newKey, oldKey);
    assert.match(run.stdout, new RegExp(`new key: +${keyThumbprint(newKey)}$`, 'm'), 'it prints the thumbprint of the key acmed now holds');
    assert.match(run.stdout, new RegExp(`account: +${account.accountUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    assert.equal(await accountUrlAtCa(pebble, newKey), account.accountUrl);
    await assert.rejects(accountUrlAtCa(pebble, oldKey), /account|key/i);
  });

  test('with a single CA configured, --ca may be left out', async () => {
    const keyPath = accountKeyPath(acmed.stateDir);
    const keyBefore = readFileSync(keyPath, 'utf8');
    const run = await runCtl('account', 'rollover');
    assert.equal(run.code, 0, `certsepctl failed: ${run.stderr}`);
    assert.notEqual(readFileSync(keyPath, 'utf8'), keyBefore);
  });

  test('an order under the rolled-over account is issued and chains to Pebble\'s root', async () => {
    const result = await acmed.orderKeydCsr('after-rollover');
    assert.deepEqual(dnsNames(assertChainsToRoot(result.chainPem, await pebble.fetchRoot())), ['after-rollover.example.com']);
  });

  test('an unknown CA exits 1 with acmed\'s error code and message, and the key stays', async () => {
    const keyPath = accountKeyPath(acmed.stateDir);
    const keyBefore = readFileSync(keyPath, 'utf8');
    const run = await runCtl('account', 'rollover', '--ca', 'no-such-ca');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^certsepctl account rollover: E_UNKNOWN_CA: .*no-such-ca/m);
    assert.equal(run.stdout, '');
    assert.equal(readFileSync(keyPath, 'utf8'), keyBefore);
  });
});
