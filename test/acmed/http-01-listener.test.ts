// acmed answering http-01 itself, on the port Pebble validates, only while orders need it; and
// 30 certificates ordered at once through one shared listener (the wall time is printed).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { freePort } from '../harness/ports.ts';
import { canConnect } from '../harness/proc.ts';
import { assertChainsToRoot, dnsNames, startAcmed, type AcmedUnderTest } from './start-acmed.ts';

const MANY = 30;

describe('acmed with its own http-01 listener', () => {
  let pebble: Pebble;
  let acmed: AcmedUnderTest;
  let wrongPort: number;

  before(async () => {
    pebble = await startPebble();
    wrongPort = await freePort();
    const challenge = { type: 'http-01-listener', address: '127.0.0.1', port: pebble.httpPort };
    acmed = await startAcmed({
      config: {
        acme: { concurrency: 8 },
        cas: { pebble: { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath } },
        certificates: [
          { name: 'listen-ec', domains: ['listen-ec.example.com'], ca: 'pebble', challenge },
          { name: 'listen-rsa', domains: ['listen-rsa.example.com'], keyTypes: ['rsa-2048'], ca: 'pebble', challenge },
          // Pebble validates on httpPort; a listener elsewhere is never reached.
          { name: 'wrong-port', domains: ['wrong-port.example.com'], ca: 'pebble', challenge: { ...challenge, port: wrongPort } },
          ...Array.from({ length: MANY }, (_, i) => ({ name: `many-${i}`, domains: [`many-${i}.example.com`], ca: 'pebble', challenge })),
        ],
      },
    });
  });
  after(async () => {
    await acmed?.stop();
    await pebble?.stop();
  });

  test('no listener is open before an order', async () => {
    assert.equal(await canConnect(pebble.httpPort), false);
  });

  test('acmed issues an ECDSA and an RSA certificate through its listener and closes it afterwards', async () => {
    const root = await pebble.fetchRoot();
    const ec = await acmed.orderKeydCsr('listen-ec');
    assert.deepEqual(dnsNames(assertChainsToRoot(ec.chainPem, root)), ['listen-ec.example.com']);
    const rsa = await acmed.orderKeydCsr('listen-rsa', 'rsa-2048');
    assert.equal(assertChainsToRoot(rsa.chainPem, root).publicKey.asymmetricKeyType, 'rsa');
    assert.equal(await canConnect(pebble.httpPort), false, 'the listener is gone once no order needs it');
  });

  test('a validation Pebble cannot reach answers E_CONNECTION and the listener is closed', async () => {
    await assert.rejects(
      acmed.orderKeydCsr('wrong-port'),
      (e: Error & { code?: string }) => e.code === 'E_CONNECTION' && /wrong-port\.example\.com/.test(e.message),
    );
    assert.equal(await canConnect(wrongPort), false);
  });

  test(`${MANY} certificates ordered at once are all issued (wall time printed)`, async () => {
    const requests = Array.from({ length: MANY }, (_, i) => ({ cert: `many-${i}`, keyType: 'ec-p256' as const }));
    const csrs = (await acmed.keydCsrs(requests)).map((c) => c.csrPem);
    const started = performance.now();
    const results = await Promise.all(csrs.map((csrPem, i) => acmed.client.call('order.issue', { cert: `many-${i}`, csrPem, keyType: 'ec-p256' })));
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`# ${MANY} certificates issued concurrently (acme.concurrency 8) in ${seconds.toFixed(2)} s wall time\n`);
    const root = await pebble.fetchRoot();
    results.forEach((result, i) => assert.deepEqual(dnsNames(assertChainsToRoot(result.chainPem, root)), [`many-${i}.example.com`]));
    assert.equal(await canConnect(pebble.httpPort), false);
  });
});
