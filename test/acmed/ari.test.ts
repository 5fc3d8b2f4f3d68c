// Renewal information (RFC 9773) and what acmed sends in newOrder, against a small test server
// that follows RFC 9773 (see fake-ca.ts: Debian's Pebble 2.4 has no ARI and no profiles), and
// the fallback against the real Pebble, which has no renewalInfo resource.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { runCommand } from '../harness/proc.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { EXPLANATION_URL, startFakeCa, SUGGESTED_WINDOW, type FakeCa } from './fake-ca.ts';
import { startAcmed, type AcmedUnderTest } from './start-acmed.ts';

const ISSUER_KEY_ID = '0102030405060708090a0b0c0d0e0f1011121314';
// High bit set: its DER INTEGER contents carry a leading 00.
const SERIAL = '8001020304050607';
const EXPECTED_CERT_ID = `${Buffer.from(ISSUER_KEY_ID, 'hex').toString('base64url')}.${Buffer.from(`00${SERIAL}`, 'hex').toString('base64url')}`;

async function openssl(dir: string, args: string[]): Promise<void> {
  const run = await runCommand('openssl', args, { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
}

/** A leaf whose issuer has a known key identifier and whose serial has its high bit set. */
async function makeLeaf(dir: string): Promise<string> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(dir, ['req', '-x509', ...ec, '-keyout', 'issuer.key', '-out', 'issuer.pem', '-subj', '/CN=ARI test issuer',
    '-addext', `subjectKeyIdentifier=${ISSUER_KEY_ID}`, '-addext', 'basicConstraints=critical,CA:TRUE']);
  await openssl(dir, ['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=ari.example.com']);
  writeFileSync(join(dir, 'leaf.ext'), 'authorityKeyIdentifier=keyid\nsubjectAltName=DNS:ari.example.com\n');
  await openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'issuer.pem', '-CAkey', 'issuer.key', '-set_serial', `0x${SERIAL}`,
    '-extfile', 'leaf.ext', '-out', 'leaf.pem', '-days', '30']);
  return readFileSync(join(dir, 'leaf.pem'), 'utf8');
}

describe('acmed and ACME Renewal Information', () => {
  let scratch: string;
  let fake: FakeCa;
  let pebble: Pebble;
  let acmed: AcmedUnderTest;
  let leafPem: string;

  before(async () => {
    scratch = makeTempDir('acmed-ari');
    [fake, pebble, leafPem] = await Promise.all([startFakeCa(scratch), startPebble(), makeLeaf(scratch)]);
    const challenge = { type: 'http-01-listener', port: pebble.httpPort };
    acmed = await startAcmed({
      config: {
        cas: {
          ari: { directory: fake.directoryUrl, trustBundle: fake.caBundlePath, profile: 'shortlived' },
          pebble: { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath },
        },
        certificates: [
          { name: 'ari-cert', domains: ['ari.example.com'], ca: 'ari', challenge },
          { name: 'pebble-cert', domains: ['ari.example.com'], ca: 'pebble', challenge },
        ],
      },
    });
  });
  after(async () => {
    await acmed?.stop();
    await Promise.all([fake?.stop(), pebble?.stop()]);
    if (scratch) removeTempDir(scratch);
  });

  test("acmed returns the CA's suggested window, asking for the RFC 9773 certID and retrying a 503 after its Retry-After", async () => {
    const info = await acmed.client.call('renewal.info', { cert: 'ari-cert', certPem: leafPem });
    assert.deepEqual(info, {
      supported: true,
      start: new Date(SUGGESTED_WINDOW.start).toISOString(),
      end: new Date(SUGGESTED_WINDOW.end).toISOString(),
      retryAfterSeconds: 120,
      explanationUrl: EXPLANATION_URL,
    });
    assert.deepEqual(fake.renewalInfoRequests, [EXPECTED_CERT_ID, EXPECTED_CERT_ID]);
  });

  test('a CA without renewalInfo (Pebble 2.4) answers supported: false', async () => {
    assert.deepEqual(await acmed.client.call('renewal.info', { cert: 'pebble-cert', certPem: leafPem }), { supported: false });
  });

  test('a renewal sends the profile and replaces=<certID> in newOrder; a 429 becomes E_RATE_LIMITED with its Retry-After', async () => {
    await assert.rejects(
      acmed.client.call('order.issue', { cert: 'ari-cert', csrPem: await acmed.keydCsr('ari-cert'), keyType: 'ec-p256', replaces: leafPem }),
      (e: Error & { code?: string }) => e.code === 'E_RATE_LIMITED' && /retry after 3600 seconds/.test(e.message),
    );
    assert.equal(fake.newOrders.length, 1, 'a rate limit is not retried');
    assert.deepEqual(fake.newOrders[0], {
      identifiers: [{ type: 'dns', value: 'ari.example.com' }],
      profile: 'shortlived',
      replaces: EXPECTED_CERT_ID,
    });
  });
});
