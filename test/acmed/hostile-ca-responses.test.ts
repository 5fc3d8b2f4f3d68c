// A hostile CA's answers: an endless body (plain, and gzip that inflates without end), redirects
// and URLs that send acmed to another server (a signed POST would carry acmed's JWS there), and a
// renewal window from 1970 to 2100. acmed must cut answers off at a size no ACME answer needs,
// never leave the CA's origin, and keep a renewal window inside the certificate's validity. A fake
// CA (fake-ca.ts) plays the CA: no real CA software answers like this. keyd, acmed and the CSRs
// are real; the "other server" is a plain HTTP server on loopback that records what reaches it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants, createGzip } from 'node:zlib';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { makeLeaf } from './ari-leaf.ts';
import { resource, startFakeCa, type FakeCa, type Route } from './fake-ca.ts';
import { startAcmed, type AcmedUnderTest } from './start-acmed.ts';

const MIB = 1024 * 1024;
/** What the CA offers to send; acmed must hang up long before. */
const ENDLESS_BYTES = 64 * MIB;

interface Sent {
  bytes: number;
}

/** Writes `total` bytes of `fill` (honouring backpressure) until done or the client hangs up. */
async function writeEndlessly(res: ServerResponse, sent: Sent, total = ENDLESS_BYTES): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 'A');
  while (sent.bytes < total && !res.destroyed) {
    sent.bytes += chunk.length;
    if (res.write(chunk)) continue;
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done).off('close', done);
        resolve();
      };
      res.once('drain', done).once('close', done);
    });
  }
  res.end();
}

async function startRecordingServer(): Promise<{ url: string; requests: string[]; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"valid"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

describe('acmed and a CA whose answers are hostile', () => {
  let scratch: string;
  let fake: FakeCa;
  let other: Awaited<ReturnType<typeof startRecordingServer>>;
  let acmed: AcmedUnderTest;
  let leafPem: string;
  /** The fake CA's newOrder and renewalInfo behaviour for the test at hand. */
  let newOrder: Route;
  let renewalInfo: Route;
  const sent: Sent = { bytes: 0 };

  const readyOrder: Route = (_req, res, { base }) => resource(res, 201, {
    status: 'ready', identifiers: [], authorizations: [], finalize: `${base}/finalize`,
  }, { location: `${base}/order/1` });
  const windowFrom = (start: string, end: string): Route =>
    (_req, res) => resource(res, 200, { suggestedWindow: { start, end } });

  before(async () => {
    scratch = makeTempDir('acmed-hostile-answers');
    [other, leafPem] = await Promise.all([startRecordingServer(), makeLeaf(scratch)]);
    fake = await startFakeCa(scratch, {
      routes: {
        '/order': (req, res, ctx) => newOrder(req, res, ctx),
        '/ari/': (req, res, ctx) => renewalInfo(req, res, ctx),
        '/finalize': (_req, res, { base }) => resource(res, 200, {
          status: 'valid', certificate: `${base}/certificate`,
        }),
        '/certificate': async (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/pem-certificate-chain', 'replay-nonce': 'n' });
          await writeEndlessly(res, sent);
        },
        '/moved/': windowFrom('2000-01-01T00:00:00Z', '2000-01-02T00:00:00Z'),
      },
    });
    acmed = await startAcmed({
      config: {
        cas: { hostile: { directory: fake.directoryUrl, trustBundle: fake.caBundlePath } },
        certificates: [
          { name: 'site', domains: ['site.example.com'], ca: 'hostile', challenge: { type: 'http-01-listener' } },
        ],
      },
    });
  });
  after(async () => {
    await acmed?.stop();
    await fake?.stop();
    other?.server.close();
    if (scratch) removeTempDir(scratch);
  });

  const order = async () => acmed.orderKeydCsr('site');
  const renewalWindow = () => acmed.client.call('renewal.info', { cert: 'site', certPem: leafPem });
  const failure = async (call: () => Promise<unknown>): Promise<Error & { code?: string }> => {
    try {
      await call();
    } catch (e) {
      return e as Error & { code?: string };
    }
    throw new Error('the call must fail');
  };

  test('an endless certificate download is cut off at the size limit: E_CA, and acmed stops reading', async () => {
    newOrder = readyOrder;
    sent.bytes = 0;
    const error = await failure(order);
    assert.equal(error.code, 'E_CA', error.message);
    assert.match(error.message, /larger than 256 KiB/);
    assert.ok(sent.bytes < 16 * MIB, `acmed hung up after ${sent.bytes} bytes, not ${ENDLESS_BYTES}`);
  });

  test('an endless renewal window, and one that inflates without end from gzip, are cut off too', async () => {
    renewalInfo = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      await writeEndlessly(res, { bytes: 0 });
    };
    assert.match((await failure(renewalWindow)).message, /larger than 256 KiB/);
    renewalInfo = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      const gzip = createGzip({ level: constants.Z_BEST_COMPRESSION });
      gzip.pipe(res);
      gzip.end(Buffer.alloc(ENDLESS_BYTES, ' '));
    };
    assert.match((await failure(renewalWindow)).message, /larger than 256 KiB/);
  });

  test('a redirect to another origin is not followed, for a GET nor for a signed POST', async () => {
    renewalInfo = (req, res) => void res.writeHead(302, { location: `${other.url}${req.url}` }).end();
    newOrder = (_req, res) => void res.writeHead(307, { location: `${other.url}/order`, 'replay-nonce': 'n' }).end();
    const mark = fake.requests.length;
    for (const call of [renewalWindow, order]) {
      const error = await failure(call);
      assert.equal(error.code, 'E_CA', error.message);
      assert.match(error.message, /redirect/);
    }
    assert.deepEqual(other.requests, [], 'nothing reached the other server');
    const redirected = fake.requests.slice(mark).filter((r) => /^(GET \/ari\/|POST \/order$)/.test(r));
    assert.equal(redirected.length, 2, `each was asked once, not retried: ${redirected.join(', ')}`);
  });

  test('a URL the CA hands out that points to another origin is not requested', async () => {
    newOrder = (_req, res, { base }) => resource(res, 201, {
      status: 'pending', identifiers: [], authorizations: [`${other.url}/authz/1`], finalize: `${base}/finalize`,
    }, { location: `${base}/order/1` });
    const error = await failure(order);
    assert.equal(error.code, 'E_CA', error.message);
    assert.match(error.message, /not the origin of a configured CA/);
    assert.deepEqual(other.requests, []);
  });

  test("a redirect within the CA's origin is followed", async () => {
    renewalInfo = (req, res) => void res.writeHead(302, { location: `/moved${req.url}` }).end();
    const info = await renewalWindow();
    assert.equal(info.supported, true);
  });

  test("a renewal window from 1970 to 2100 is cut to the certificate's validity", async () => {
    renewalInfo = windowFrom('1970-01-01T00:00:00Z', '2100-01-01T00:00:00Z');
    const leaf = new X509Certificate(leafPem);
    const info = await renewalWindow();
    const validity = [new Date(leaf.validFrom).toISOString(), new Date(leaf.validTo).toISOString()];
    assert.deepEqual(info.supported && [info.start, info.end], validity);
  });

  test("a window wholly after the certificate expired becomes its last instant; one before it was issued, its first", async () => {
    const leaf = new X509Certificate(leafPem);
    const notBefore = new Date(leaf.validFrom).toISOString();
    const notAfter = new Date(leaf.validTo).toISOString();
    renewalInfo = windowFrom('2099-01-01T00:00:00Z', '2100-01-01T00:00:00Z');
    let info = await renewalWindow();
    assert.deepEqual(info.supported && [info.start, info.end], [notAfter, notAfter]);
    renewalInfo = windowFrom('1970-01-01T00:00:00Z', '1970-01-02T00:00:00Z');
    info = await renewalWindow();
    assert.deepEqual(info.supported && [info.start, info.end], [notBefore, notBefore]);
  });
});
