// acmed against a real Pebble, answering http-01 through a real nginx that serves the webroot on
// the port Pebble validates; and what acmed, running as its own uid, can and cannot touch.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNginx, type Nginx } from '../harness/nginx.ts';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { execAs, TEST_IDS } from '../harness/uids.ts';
import { assertChainsToRoot, dnsNames, makeCsr, startAcmed, type AcmedUnderTest } from './start-acmed.ts';

const FIVE = ['five.example.com', 'www.five.example.com', 'api.five.example.com', 'mail.five.example.com', 'static.five.example.com'];

function challengeDir(webroot: string): string {
  return join(webroot, '.well-known', 'acme-challenge');
}

/** A webroot the web server reads (root's) whose challenge dir acmed may write (acmed's). */
function makeWebroot(path: string): void {
  mkdirSync(challengeDir(path), { recursive: true, mode: 0o755 });
  chownSync(challengeDir(path), TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);
}

describe('acmed with http-01 through a webroot served by nginx', () => {
  let pebble: Pebble;
  let nginx: Nginx;
  let acmed: AcmedUnderTest;
  let webroot: string;
  let unserved: string;

  before(async () => {
    pebble = await startPebble();
    acmed = await startAcmed((dir) => {
      webroot = join(dir, 'webroot');
      unserved = join(dir, 'unserved');
      const challenge = { type: 'http-01-webroot', webroot };
      return {
        config: {
          cas: { pebble: { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath, email: 'ops@example.com' } },
          certificates: [
            { name: 'web-ec', domains: ['ec.example.com'], keyTypes: ['ec-p256'], ca: 'pebble', challenge },
            { name: 'web-rsa', domains: ['rsa.example.com'], keyTypes: ['rsa-2048'], ca: 'pebble', challenge },
            { name: 'five', domains: FIVE, ca: 'pebble', challenge },
            { name: 'unserved', domains: ['unserved.example.com'], ca: 'pebble', challenge: { type: 'http-01-webroot', webroot: unserved } },
          ],
        },
        prepare: () => {
          makeWebroot(webroot);
          makeWebroot(unserved);
        },
      };
    });
    nginx = await startNginx({ servers: [{ listen: pebble.httpPort, webroot }] });
  });
  after(async () => {
    await acmed?.stop();
    await nginx?.stop();
    await pebble?.stop();
  });

  test('acmed issues an ECDSA certificate whose chain verifies to Pebble root and leaves no token file', async () => {
    const result = await acmed.orderKeydCsr('web-ec');
    const leaf = assertChainsToRoot(result.chainPem, await pebble.fetchRoot());
    assert.deepEqual(dnsNames(leaf), ['ec.example.com']);
    assert.equal(leaf.publicKey.asymmetricKeyType, 'ec');
    assert.equal(result.notAfter, new Date(leaf.validTo).toISOString());
    assert.match(result.certUrl, /^https:\/\/127\.0\.0\.1:\d+\//);
    assert.deepEqual(readdirSync(challengeDir(webroot)), []);
  });

  test('acmed issues an RSA certificate the same way', async () => {
    const result = await acmed.orderKeydCsr('web-rsa', 'rsa-2048');
    const leaf = assertChainsToRoot(result.chainPem, await pebble.fetchRoot());
    assert.equal(leaf.publicKey.asymmetricKeyType, 'rsa');
    assert.deepEqual(readdirSync(challengeDir(webroot)), []);
  });

  test('acmed issues one certificate for five names', async () => {
    const result = await acmed.orderKeydCsr('five');
    const leaf = assertChainsToRoot(result.chainPem, await pebble.fetchRoot());
    assert.deepEqual(dnsNames(leaf), [...FIVE].sort());
    assert.deepEqual(readdirSync(challengeDir(webroot)), []);
  });

  test('a failed validation (webroot not served) answers E_UNAUTHORIZED and still removes the token file', async () => {
    await assert.rejects(
      acmed.orderKeydCsr('unserved'),
      (e: Error & { code?: string }) => e.code === 'E_UNAUTHORIZED' && /unserved\.example\.com/.test(e.message),
    );
    assert.match(acmed.log(), /"cert":"unserved".*order created/, 'the order really reached Pebble');
    assert.deepEqual(readdirSync(challengeDir(unserved)), []);
  });

  test('a CSR whose names differ from the config is refused with E_CSR and nothing is ordered', async () => {
    await assert.rejects(
      acmed.client.call('order.issue', { cert: 'web-ec', csrPem: await makeCsr(['ec.example.com', 'evil.example.com']), keyType: 'ec-p256' }),
      (e: Error & { code?: string }) => e.code === 'E_CSR' && /evil\.example\.com/.test(e.message) && /nothing was ordered/.test(e.message),
    );
    await assert.rejects(
      acmed.client.call('order.issue', { cert: 'web-ec', csrPem: await makeCsr(['ec.example.com'], 'rsa-2048'), keyType: 'ec-p256' }),
      (e: Error & { code?: string }) => e.code === 'E_CSR' && /rsa-2048/.test(e.message),
    );
    const orders = acmed.log().split('\n').filter((line) => /"cert":"web-ec".*order created/.test(line));
    assert.equal(orders.length, 1, 'only the first test ordered web-ec');
  });

  test('deployd may call acmed; uid 61009 is refused with E_PEER', async () => {
    const asDeployd = await acmed.callAs(TEST_IDS.deployd, 'account.ensure', { ca: 'pebble' });
    assert.equal(asDeployd.ok, true, JSON.stringify(asDeployd));
    const asOther = await acmed.callAs(TEST_IDS.other, 'order.issue', { cert: 'web-ec', csrPem: await makeCsr(['ec.example.com']), keyType: 'ec-p256' });
    assert.equal(asOther.code, 'E_PEER', JSON.stringify(asOther));
  });

  test('the account key is 0600 and acmed\'s own, in its state dir', () => {
    const accounts = join(acmed.stateDir, 'accounts');
    const [account] = readdirSync(accounts);
    const key = statSync(join(accounts, account!, 'account-key.pem'));
    assert.equal(key.mode & 0o777, 0o600);
    assert.equal(key.uid, TEST_IDS.acmed.uid);
  });

  test("as its uid, acmed cannot read keyd's keys nor write outside its state dir and the webroot", async () => {
    const keydKey = join(acmed.dir, 'keyd-key.pem');
    writeFileSync(keydKey, 'not really a key\n', { mode: 0o600 });
    chownSync(keydKey, TEST_IDS.keyd.uid, TEST_IDS.keyd.gid);
    const read = await execAs(TEST_IDS.acmed, 'cat', [keydKey]);
    assert.notEqual(read.code, 0);
    assert.match(read.stderr, /Permission denied/);
    for (const target of ['/etc/certsep-acmed-probe', join(acmed.dir, 'certsep-acmed-probe'), join(acmed.dir, 'state', 'acmed-probe')]) {
      const write = await execAs(TEST_IDS.acmed, 'touch', [target]);
      assert.notEqual(write.code, 0, `acmed could create ${target}`);
      assert.equal(existsSync(target), false);
    }
    for (const allowed of [join(acmed.stateDir, 'probe'), join(challengeDir(webroot), 'probe')]) {
      const write = await execAs(TEST_IDS.acmed, 'touch', [allowed]);
      assert.equal(write.code, 0, `acmed cannot write ${allowed}: ${write.stderr}`);
      await execAs(TEST_IDS.acmed, 'rm', [allowed]);
    }
  });
});
