// ACME accounts against real Pebbles: External Account Binding when the CA requires it, reuse,
// key rollover (checked with the CA directly), an order under that account, and a separate account for staging dry runs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import acme from 'acme-client';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { assertChainsToRoot, startAcmed, type AcmedUnderTest } from './start-acmed.ts';

const KID = 'certsep-test-kid';
const HMAC_KEY = randomBytes(32).toString('base64url');

/** The account URL the CA has for this key, asked directly (onlyReturnExisting), or the CA's refusal. */
async function accountUrlAtCa(pebble: Pebble, keyPem: string): Promise<string> {
  acme.axios.defaults.httpsAgent = new Agent({ ca: readFileSync(pebble.caBundlePath) });
  const client = new acme.Client({ directoryUrl: pebble.directoryUrl, accountKey: keyPem });
  await client.createAccount({ onlyReturnExisting: true });
  return client.getAccountUrl();
}

function accountKeys(stateDir: string): string[] {
  const accounts = join(stateDir, 'accounts');
  return readdirSync(accounts).map((d) => join(accounts, d, 'account-key.pem'));
}

/** The account dir acmed keeps for a directory URL (found by its account.json). */
function accountDirOf(stateDir: string, directoryUrl: string): string {
  const accounts = join(stateDir, 'accounts');
  const dir = readdirSync(accounts).map((d) => join(accounts, d)).find((d) =>
    existsSync(join(d, 'account.json')) && JSON.parse(readFileSync(join(d, 'account.json'), 'utf8')).directoryUrl === directoryUrl);
  assert.ok(dir, `no account for ${directoryUrl}`);
  return dir;
}

describe('acmed accounts', () => {
  let pebble: Pebble;
  let staging: Pebble;
  let acmed: AcmedUnderTest;

  before(async () => {
    const eab = { eabRequired: true, eabKeys: { [KID]: HMAC_KEY } };
    [pebble, staging] = await Promise.all([startPebble(eab), startPebble(eab)]);
    acmed = await startAcmed((dir) => {
      const hmacKeyFile = join(dir, 'eab.key');
      // Each Pebble has its own HTTPS CA; one bundle holds both, as an operator's CA bundle would.
      const bundle = join(dir, 'pebble-bundle.pem');
      // Pebble's certificate names localhost too: a second directory URL, hence a second account.
      const withoutEab = pebble.directoryUrl.replace('127.0.0.1', 'localhost');
      return {
        config: {
          cas: {
            eab: { directory: pebble.directoryUrl, staging: staging.directoryUrl, trustBundle: bundle, email: 'ops@example.com', eab: { kid: KID, hmacKeyFile } },
            'no-eab': { directory: withoutEab, trustBundle: pebble.caBundlePath },
          },
          certificates: [{ name: 'eab-cert', domains: ['eab.example.com'], ca: 'eab', challenge: { type: 'http-01-listener', port: pebble.httpPort } }],
        },
        prepare: () => {
          writeFileSync(bundle, [pebble, staging].map((p) => readFileSync(p.caBundlePath, 'utf8')).join(''));
          writeFileSync(hmacKeyFile, `${HMAC_KEY}\n`, { mode: 0o400 });
          chownSync(hmacKeyFile, TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);
        },
      };
    });
  });
  after(async () => {
    await acmed?.stop();
    await Promise.all([pebble?.stop(), staging?.stop()]);
  });

  test('without EAB a CA that requires it is refused with E_ACCOUNT', async () => {
    await assert.rejects(acmed.client.call('account.ensure', { ca: 'no-eab' }),
      (e: Error & { code?: string }) => e.code === 'E_ACCOUNT' && /externalAccountRequired/.test(e.message));
  });

  test('with EAB the account is created once, then reused; its key is 0600 and acmed\'s', async () => {
    const first = await acmed.client.call('account.ensure', { ca: 'eab' });
    assert.equal(first.created, true);
    assert.equal(first.directoryUrl, pebble.directoryUrl);
    const again = await acmed.client.call('account.ensure', { ca: 'eab' });
    assert.deepEqual(again, first, 'the same registration is answered again');
    const st = statSync(join(accountDirOf(acmed.stateDir, pebble.directoryUrl), 'account-key.pem'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, TEST_IDS.acmed.uid);
  });

  test('rollover replaces the key at the CA: the new key finds the account, the old one does not', async () => {
    const account = await acmed.client.call('account.ensure', { ca: 'eab' });
    const accountDir = accountDirOf(acmed.stateDir, pebble.directoryUrl);
    const oldKey = readFileSync(join(accountDir, 'account-key.pem'), 'utf8');
    const rolled = await acmed.client.call('account.rollover', { ca: 'eab' });
    assert.equal(rolled.accountUrl, account.accountUrl);
    const newKey = readFileSync(join(accountDir, 'account-key.pem'), 'utf8');
    assert.notEqual(newKey, oldKey);
    assert.equal(statSync(join(accountDir, 'account-key.pem')).mode & 0o777, 0o600);
    assert.equal(await accountUrlAtCa(pebble, newKey), account.accountUrl);
    await assert.rejects(accountUrlAtCa(pebble, oldKey), /account|key/i);
  });

  test('an order under the EAB-bound (and rolled over) account is issued', async () => {
    const result = await acmed.orderKeydCsr('eab-cert');
    assertChainsToRoot(result.chainPem, await pebble.fetchRoot());
  });

  test('a staging dry run uses the staging directory with an account of its own', async () => {
    const real = await acmed.client.call('account.ensure', { ca: 'eab' });
    const dry = await acmed.client.call('account.ensure', { ca: 'eab', staging: true });
    assert.equal(dry.directoryUrl, staging.directoryUrl);
    assert.notEqual(dry.accountUrl, real.accountUrl);
    const keys = accountKeys(acmed.stateDir).map((p) => readFileSync(p, 'utf8'));
    assert.equal(new Set(keys).size, keys.length, 'every directory has its own key');
  });

  test('a CA with no staging directory refuses a dry run with E_NO_STAGING', async () => {
    await assert.rejects(acmed.client.call('account.ensure', { ca: 'no-eab', staging: true }),
      (e: Error & { code?: string }) => e.code === 'E_NO_STAGING');
  });
});
