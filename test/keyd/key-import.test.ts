// keyd's key.import, from outside: root hands in an existing key (as certsepctl import-certbot does
// with a certbot lineage's privkey.pem); keyd keeps it like one it generated, and refuses anyone
// else, keys of another type or size, and anything that is not a private key.
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TEST_IDS } from '../harness/uids.ts';
import { startKeyd, type KeydUnderTest } from './start-keyd.ts';

const ecKey = (curve: string) => generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
const rsaKey = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
const keyIdOf = (key: KeyObject) => createHash('sha256').update(createPublicKey(key).export({ type: 'spki', format: 'der' })).digest('hex');

function errorCode(answer: { ok: boolean; error?: { code: string } }): string | undefined {
  return answer.ok ? undefined : answer.error?.code;
}

describe('keyd key.import', () => {
  let keyd: KeydUnderTest;
  before(async () => {
    keyd = await startKeyd([
      { name: 'web', domains: ['web.example.com'], keyTypes: ['ec-p256', 'rsa-2048'] },
    ]);
  });
  after(async () => keyd?.stop());

  it('root imports a SEC1 EC key; keyd stores it 0600 as the current key and key.export returns it', async () => {
    const key = ecKey('prime256v1');
    const answer = await keyd.callAsRoot('key.import', { cert: 'web', keyType: 'ec-p256', keyPem: key.export({ type: 'sec1', format: 'pem' }) });
    assert.ok(answer.ok, JSON.stringify(answer));
    const keyId = String(answer.result['keyId']);
    assert.equal(keyId, keyIdOf(key));
    const dir = join(keyd.stateDir, 'web', 'ec-p256');
    const st = statSync(join(dir, `${keyId}.pem`));
    assert.deepEqual([st.mode & 0o7777, st.uid], [0o600, TEST_IDS.keyd.uid]);
    assert.equal(readFileSync(join(dir, 'current'), 'utf8').trim(), keyId);
    const exported = await keyd.exportKey('web', 'ec-p256', keyId);
    assert.equal(exported, key.export({ type: 'pkcs8', format: 'pem' }), 'exported as PKCS#8, the same key');
  });

  it('root imports a PKCS#1 RSA-2048 key', async () => {
    const key = rsaKey(2048);
    const answer = await keyd.callAsRoot('key.import', { cert: 'web', keyType: 'rsa-2048', keyPem: key.export({ type: 'pkcs1', format: 'pem' }) });
    assert.ok(answer.ok, JSON.stringify(answer));
    assert.equal(answer.result['keyId'], keyIdOf(key));
  });

  it('key.import is audited with root as the peer and without the key in the record', async () => {
    const key = ecKey('prime256v1');
    const keyPem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
    const answer = await keyd.callAsRoot('key.import', { cert: 'web', keyType: 'ec-p256', keyPem });
    assert.ok(answer.ok);
    const record = keyd.auditRecords().findLast((r) => r.method === 'key.import');
    assert.deepEqual([record?.peer?.uid, record?.outcome], [0, 'ok']);
    assert.ok(!readFileSync(keyd.auditFile, 'utf8').includes('PRIVATE KEY'), 'no key material in the audit log');
  });

  for (const [who, id] of [['deployd', TEST_IDS.deployd], ['acmed', TEST_IDS.acmed], ['another uid', TEST_IDS.other]] as const) {
    it(`key.import from ${who} (uid ${id.uid}) is refused with E_PEER, audited, and stores nothing`, async () => {
      const key = ecKey('prime256v1');
      const { pid, answer } = await keyd.callAs(id, 'key.import', { cert: 'web', keyType: 'ec-p256', keyPem: key.export({ type: 'pkcs8', format: 'pem' }) });
      assert.equal(errorCode(answer), 'E_PEER');
      const record = keyd.auditRecords().find((r) => r.method === 'key.import' && r.peer?.pid === pid);
      assert.deepEqual([record?.peer?.uid, record?.outcome, record?.code], [id.uid, 'refused', 'E_PEER']);
      assert.throws(() => statSync(join(keyd.stateDir, 'web', 'ec-p256', `${keyIdOf(key)}.pem`)), /ENOENT/);
    });
  }

  const wrongKeys: [string, string, () => string, RegExp][] = [
    ['a P-384 key named ec-p256', 'ec-p256', () => ecKey('secp384r1').export({ type: 'pkcs8', format: 'pem' }) as string, /the key is ec-p384, not ec-p256/],
    ['an RSA-3072 key named rsa-2048', 'rsa-2048', () => rsaKey(3072).export({ type: 'pkcs8', format: 'pem' }) as string, /the key is rsa-3072, not rsa-2048/],
    ['an Ed25519 key', 'ec-p256', () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, /an ed25519 key, which certsep does not use/],
    ['an encrypted key', 'ec-p256', () => ecKey('prime256v1').export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string, /not an unencrypted PEM private key/],
    ['garbage under a key header', 'ec-p256', () => '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', /not an unencrypted PEM private key/],
  ];
  for (const [what, keyType, makePem, message] of wrongKeys) {
    it(`key.import refuses ${what} with E_BAD_KEY and the current key stays`, async () => {
      const dir = join(keyd.stateDir, 'web', keyType);
      const before = readFileSync(join(dir, 'current'), 'utf8');
      const answer = await keyd.callAsRoot('key.import', { cert: 'web', keyType, keyPem: makePem() });
      assert.equal(errorCode(answer), 'E_BAD_KEY');
      assert.match(answer.ok ? '' : answer.error.message, message);
      assert.equal(readFileSync(join(dir, 'current'), 'utf8'), before);
      const record = keyd.auditRecords().findLast((r) => r.method === 'key.import');
      assert.deepEqual([record?.peer?.uid, record?.outcome, record?.code], [0, 'error', 'E_BAD_KEY']);
    });
  }

  it('key.import for a certificate keyd does not know is refused with E_UNKNOWN_CERT', async () => {
    const answer = await keyd.callAsRoot('key.import', { cert: 'nope', keyType: 'ec-p256', keyPem: ecKey('prime256v1').export({ type: 'pkcs8', format: 'pem' }) });
    assert.equal(errorCode(answer), 'E_UNKNOWN_CERT');
  });
});
