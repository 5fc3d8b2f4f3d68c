// Renewal information (RFC 9773) and what acmed sends in newOrder, against a small test server
// that follows RFC 9773 (see fake-ca.ts: Debian's Pebble 2.4 has no ARI and no profiles), and
// the fallback against the real Pebble, which has no renewalInfo resource.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { EXPECTED_CERT_ID, makeLeaf } from './ari-leaf.ts';
import { EXPLANATION_URL, startFakeCa, SUGGESTED_WINDOW, type FakeCa } from './fake-ca.ts';
import { startAcmed, type AcmedUnderTest } from './start-acmed.ts';

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
      acmed.orderKeydCsr('ari-cert', 'ec-p256', leafPem),
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
