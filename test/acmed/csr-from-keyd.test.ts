// acmed orders a certificate only for the key keyd holds now for that certificate and key type.
// The attack: a compromised deployd (its uid) sends order.issue with a CSR for a key it made
// itself (openssl), with exactly the configured names; the CA would sign it, and whoever holds
// that key could impersonate the site. Real Pebble, real keyd and acmed under their own uids,
// the calls made from deployd's uid.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { rawCall } from '../harness/raw-call.ts';
import { REPO } from '../harness/suite.ts';
import { execAs, TEST_IDS, type Identity } from '../harness/uids.ts';
import { assertChainsToRoot, makeCsr, startAcmed, type AcmedUnderTest } from './start-acmed.ts';

const NAMES = ['site.example.com', 'www.site.example.com'];
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake';

function keyIdOfLeaf(chainPem: string): string {
  const leaf = new X509Certificate(chainPem);
  return createHash('sha256').update(leaf.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

describe('acmed orders only for the key keyd holds now', () => {
  let pebble: Pebble;
  let acmed: AcmedUnderTest;

  before(async () => {
    pebble = await startPebble();
    const challenge = { type: 'http-01-listener', port: pebble.httpPort };
    acmed = await startAcmed({
      config: {
        cas: { pebble: { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath } },
        certificates: [
          { name: 'site', domains: NAMES, keyTypes: ['ec-p256', 'rsa-2048'], ca: 'pebble', challenge },
          // Same names, another certificate: its key must not pass for site's.
          { name: 'twin', domains: NAMES, ca: 'pebble', challenge },
          // Keyed by the remote host's own keyd, which acmed cannot ask.
          { name: 'remote', domains: ['remote.example.com'], ca: 'pebble', challenge, hosts: ['web1'] },
        ],
        hosts: { web1: { address: '192.0.2.1', hostKeys: [HOST_KEY] } },
      },
    });
  });
  after(async () => {
    await acmed?.stop();
    await pebble?.stop();
  });

  const orderAs = (id: Identity, cert: string, csrPem: string, keyType = 'ec-p256') =>
    acmed.callAs(id, 'order.issue', { cert, csrPem, keyType });

  test('an openssl-made CSR sent as certsep-deploy is refused with E_CSR_NOT_KEYD, audited, and nothing is ordered', async () => {
    const answer = await orderAs(TEST_IDS.deployd, 'site', await makeCsr(NAMES));
    assert.equal(answer.ok, false, `acmed ordered for a key keyd never made: ${JSON.stringify(answer).slice(0, 300)}`);
    assert.equal(answer.code, 'E_CSR_NOT_KEYD');
    assert.match(answer.message!, /not the ec-p256 key keyd holds for certificate "site"/);
    const record = acmed.auditRecords().findLast((r) => r.method === 'order.issue');
    assert.equal(record?.outcome, 'error');
    assert.equal(record?.code, 'E_CSR_NOT_KEYD');
    assert.equal(record?.peer?.uid, TEST_IDS.deployd.uid);
    assert.doesNotMatch(acmed.log(), /order created/, 'no order reached the CA');
  });

  test("keyd's CSR for the certificate and key type is ordered, and the certificate carries keyd's key", async () => {
    const [ec, rsa] = await acmed.keydCsrs([
      { cert: 'site', keyType: 'ec-p256' },
      { cert: 'site', keyType: 'rsa-2048' },
    ]);
    const root = await pebble.fetchRoot();
    for (const [csr, keyType] of [[ec!, 'ec-p256'], [rsa!, 'rsa-2048']] as const) {
      const answer = await orderAs(TEST_IDS.deployd, 'site', csr.csrPem, keyType);
      assert.equal(answer.ok, true, JSON.stringify(answer));
      const { chainPem } = answer.result as { chainPem: string };
      assertChainsToRoot(chainPem, root);
      assert.equal(keyIdOfLeaf(chainPem), csr.keyId);
    }
  });

  test('a CSR of an older key is refused once keyd made a newer one for the certificate', async () => {
    const [older] = await acmed.keydCsrs([{ cert: 'site', keyType: 'ec-p256' }]);
    await acmed.keydCsrs([{ cert: 'site', keyType: 'ec-p256' }]);
    const answer = await orderAs(TEST_IDS.deployd, 'site', older!.csrPem);
    assert.equal(answer.code, 'E_CSR_NOT_KEYD', JSON.stringify(answer).slice(0, 300));
  });

  test("keyd's CSR for another certificate with the same names is refused", async () => {
    const twin = await acmed.keydCsr('twin');
    const answer = await orderAs(TEST_IDS.deployd, 'site', twin);
    assert.equal(answer.code, 'E_CSR_NOT_KEYD', JSON.stringify(answer).slice(0, 300));
  });

  test("only acmed may ask keyd for a certificate's current key; every other uid is refused and audited", async () => {
    const params = { cert: 'site', keyType: 'ec-p256' };
    const call = async (id: Identity) => {
      const cli = 'test/harness/raw-call-cli.ts';
      const args = ['--import', 'tsx', cli, acmed.keydSocket, 'key.current', JSON.stringify(params)];
      const run = await execAs(id, process.execPath, args, { cwd: REPO });
      assert.equal(run.code, 0, run.stderr);
      return (JSON.parse(run.stdout) as { answer: Awaited<ReturnType<typeof rawCall>> }).answer;
    };
    const asAcmed = await call(TEST_IDS.acmed);
    assert.equal(asAcmed.ok, true, JSON.stringify(asAcmed));
    assert.match(String((asAcmed as { result: Record<string, unknown> }).result['keyId']), /^[0-9a-f]{64}$/);
    for (const id of [TEST_IDS.deployd, TEST_IDS.netd, TEST_IDS.other]) {
      const answer = await call(id);
      assert.equal(answer.ok, false);
      assert.equal(answer.ok ? '' : answer.error.code, 'E_PEER', `uid ${id.uid}`);
    }
    const asRoot = await rawCall(acmed.keydSocket, 'key.current', params);
    assert.equal(asRoot.ok, false, 'not even root: the answer is for acmed alone');
    const refused = acmed.auditRecords('keyd')
      .filter((r) => r.method === 'key.current' && r.outcome === 'refused')
      .map((r) => r.peer?.uid);
    assert.deepEqual(refused, [TEST_IDS.deployd.uid, TEST_IDS.netd.uid, TEST_IDS.other.uid, 0]);
  });

  test("a remote host's CSR, relayed by deployd, is ordered on deployd's word (the trust README.md states)", async () => {
    const answer = await orderAs(TEST_IDS.deployd, 'remote', await makeCsr(['remote.example.com']));
    assert.equal(answer.ok, true, JSON.stringify(answer).slice(0, 300));
    assert.match(acmed.log(), /ordering for a remote host's key, vouched for by deployd/);
  });
});
