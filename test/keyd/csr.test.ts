// keyd's CSRs, checked from outside: by x509 parsing, by openssl (an independent implementation),
// and against the private key privd would receive from key.export.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../harness/proc.ts';
import { startKeyd, type KeydUnderTest } from './start-keyd.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const FIVE = ['www.example.com', 'example.com', 'mail.example.com', 'api.example.com', 'static.example.com'];
const HUNDRED = Array.from({ length: 100 }, (_, i) => `host-${i}.many.example.net`);
const IDN = ['bücher.example', 'www.münchen.example'];
const IDN_ASCII = ['xn--bcher-kva.example', 'www.xn--mnchen-3ya.example'];
const WILDCARD = ['*.example.org', 'example.org'];
// 65 characters: too long for a CN (RFC 5280 ub-common-name 64), fine as a SAN.
const LONG_FIRST = [`${'a'.repeat(53)}.example.com`, 'short.example.com'];

const SIGNATURES: Record<string, string> = {
  'ec-p256': 'ecdsa-with-SHA256',
  'ec-p384': 'ecdsa-with-SHA384',
  'rsa-2048': 'sha256WithRSAEncryption',
  'rsa-3072': 'sha256WithRSAEncryption',
  'rsa-4096': 'sha256WithRSAEncryption',
};

const KEY_DETAILS: Record<string, { type: string; curve?: string; bits?: number }> = {
  'ec-p256': { type: 'ec', curve: 'prime256v1' },
  'ec-p384': { type: 'ec', curve: 'secp384r1' },
  'rsa-2048': { type: 'rsa', bits: 2048 },
  'rsa-3072': { type: 'rsa', bits: 3072 },
  'rsa-4096': { type: 'rsa', bits: 4096 },
};

const CASES = [
  { cert: 'five-names', domains: FIVE, expected: FIVE, keyTypes: ['ec-p384', 'rsa-4096'], what: 'a 5-name certificate' },
  { cert: 'hundred-names', domains: HUNDRED, expected: HUNDRED, keyTypes: ['ec-p256', 'rsa-3072'], what: 'a 100-name certificate' },
  { cert: 'idn', domains: IDN, expected: IDN_ASCII, keyTypes: ['rsa-2048'], what: 'an IDN certificate (punycode)' },
  { cert: 'wildcard', domains: WILDCARD, expected: WILDCARD, keyTypes: ['ec-p256'], what: 'a wildcard certificate' },
];

interface CsrFacts {
  spki: Buffer;
  names: string[];
  subject: string;
  sanCritical: boolean;
}

async function checkedCsr(csrPem: string, keyType: string): Promise<CsrFacts> {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  assert.equal(await csr.verify(), true, 'x509 verifies the CSR signature');
  const openssl = await runCommand('openssl', ['req', '-noout', '-verify', '-text'], { input: csrPem });
  assert.equal(openssl.code, 0, `openssl req -verify: ${openssl.stderr}`);
  assert.match(openssl.stdout + openssl.stderr, /verify OK/);
  assert.match(openssl.stdout, new RegExp(`Signature Algorithm: ${SIGNATURES[keyType]}`));
  const san = csr.getExtension('2.5.29.17');
  assert.ok(san instanceof x509.SubjectAlternativeNameExtension, 'the CSR has a subjectAltName extension');
  assert.ok(san.names.items.every((n) => n.type === 'dns'), 'every SAN is a dNSName');
  return { spki: Buffer.from(csr.publicKey.rawData), names: san.names.items.map((n) => n.value), subject: csr.subject, sanCritical: san.critical };
}

function assertKeyMatches(keyPem: string, keyType: string, csrSpki: Buffer, keyId: string): void {
  assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'the key is PKCS#8 PEM');
  const key = createPrivateKey(keyPem);
  const expected = KEY_DETAILS[keyType]!;
  assert.equal(key.asymmetricKeyType, expected.type);
  if (expected.curve) assert.equal(key.asymmetricKeyDetails?.namedCurve, expected.curve);
  if (expected.bits) assert.equal(key.asymmetricKeyDetails?.modulusLength, expected.bits);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  assert.ok(spki.equals(csrSpki), 'the CSR carries the public half of the exported key');
  assert.equal(keyId, createHash('sha256').update(spki).digest('hex'), 'the key id is sha256 of the SPKI');
}

describe('keyd CSRs', () => {
  let keyd: KeydUnderTest;
  before(async () => {
    keyd = await startKeyd([
      ...CASES.map(({ cert, domains, keyTypes }) => ({ name: cert, domains, keyTypes })),
      { name: 'long-first', domains: LONG_FIRST, keyTypes: ['ec-p256'] },
      { name: 'dual', domains: ['dual.example.com', 'www.dual.example.com'], keyTypes: ['ec-p256', 'rsa-2048'] },
    ]);
  });
  after(async () => {
    await keyd?.stop();
  });

  for (const { cert, expected, keyTypes, what } of CASES) {
    for (const keyType of keyTypes) {
      it(`an ${keyType} CSR for ${what} names exactly the configured names, verifies, and carries the exported key`, async () => {
        const { csrPem, keyId, newKey } = await keyd.createCsr(cert, keyType);
        assert.equal(newKey, true);
        const facts = await checkedCsr(csrPem, keyType);
        assert.deepEqual(facts.names, expected);
        assert.equal(facts.subject, `CN=${expected[0]}`);
        assertKeyMatches(await keyd.exportKey(cert, keyType, keyId), keyType, facts.spki, keyId);
      });
    }
  }

  it('a first name longer than 64 characters stays out of the subject and the SAN becomes critical', async () => {
    const { csrPem } = await keyd.createCsr('long-first', 'ec-p256');
    const facts = await checkedCsr(csrPem, 'ec-p256');
    assert.equal(facts.subject, '');
    assert.equal(facts.sanCritical, true);
    assert.deepEqual(facts.names, LONG_FIRST);
  });

  it('a certificate with two key types gets two independent keys and CSRs for the same names', async () => {
    const ec = await keyd.createCsr('dual', 'ec-p256');
    const rsa = await keyd.createCsr('dual', 'rsa-2048');
    assert.notEqual(ec.keyId, rsa.keyId);
    const ecFacts = await checkedCsr(ec.csrPem, 'ec-p256');
    const rsaFacts = await checkedCsr(rsa.csrPem, 'rsa-2048');
    assert.deepEqual(ecFacts.names, rsaFacts.names);
    assertKeyMatches(await keyd.exportKey('dual', 'ec-p256', ec.keyId), 'ec-p256', ecFacts.spki, ec.keyId);
    assertKeyMatches(await keyd.exportKey('dual', 'rsa-2048', rsa.keyId), 'rsa-2048', rsaFacts.spki, rsa.keyId);
    const wrongType = await keyd.callAsRoot('key.export', { cert: 'dual', keyType: 'rsa-2048', keyId: ec.keyId });
    assert.equal(wrongType.ok, false);
    assert.equal(!wrongType.ok && wrongType.error.code, 'E_NO_KEY', 'one key type never hands out the other type\'s key');
  });
});
