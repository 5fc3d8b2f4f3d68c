// keyPolicy: "rotate" makes a new key for every CSR, "reuse" keeps one (across restarts too); old
// versions stay exportable up to a bound and are deleted beyond it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KEPT_KEY_VERSIONS } from '../../keyd/key-store.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { startKeyd, type KeydUnderTest } from './start-keyd.ts';

function csrSpki(csrPem: string): string {
  return Buffer.from(new x509.Pkcs10CertificateRequest(csrPem).publicKey.rawData).toString('hex');
}

describe('keyd key policy', () => {
  let keyd: KeydUnderTest;
  before(async () => {
    keyd = await startKeyd([
      { name: 'rotating', domains: ['rotate.example.com'], keyTypes: ['ec-p256'] },
      { name: 'pruned', domains: ['prune.example.com'], keyTypes: ['ec-p256'], keyPolicy: 'rotate' },
      { name: 'reused', domains: ['reuse.example.com'], keyTypes: ['ec-p384', 'rsa-2048'], keyPolicy: 'reuse' },
      { name: 'raced', domains: ['race.example.com'], keyTypes: ['rsa-4096'], keyPolicy: 'reuse' },
    ]);
  });
  after(async () => {
    await keyd?.stop();
  });

  const keyFiles = (cert: string, keyType: string) =>
    readdirSync(join(keyd.stateDir, cert, keyType)).filter((name) => name.endsWith('.pem')).sort();
  const currentOf = (cert: string, keyType: string) => readFileSync(join(keyd.stateDir, cert, keyType, 'current'), 'utf8').trim();

  it('rotate (the default) makes a new key for every CSR and points current at the latest', async () => {
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await keyd.createCsr('rotating', 'ec-p256'));
    assert.equal(new Set(answers.map((a) => a.keyId)).size, 3);
    assert.ok(answers.every((a) => a.newKey));
    assert.equal(new Set(answers.map((a) => csrSpki(a.csrPem))).size, 3);
    assert.equal(currentOf('rotating', 'ec-p256'), answers[2]!.keyId);
    // privd installs chains for the current key only: key.export says which one it is.
    const exported = await Promise.all(
      answers.map(({ keyId }) => keyd.callAsRoot('key.export', { cert: 'rotating', keyType: 'ec-p256', keyId })),
    );
    assert.deepEqual(exported.map((a) => a.ok && a.result['current']), [false, false, true]);
  });

  it('reuse hands out the same key for every CSR, per key type, and after a restart', async () => {
    const first = await keyd.createCsr('reused', 'ec-p384');
    const second = await keyd.createCsr('reused', 'ec-p384');
    assert.equal(first.newKey, true);
    assert.equal(second.newKey, false);
    assert.equal(second.keyId, first.keyId);
    assert.equal(csrSpki(second.csrPem), csrSpki(first.csrPem));
    const rsa = await keyd.createCsr('reused', 'rsa-2048');
    assert.equal(rsa.newKey, true);
    assert.notEqual(rsa.keyId, first.keyId);
    await keyd.restart();
    const afterRestart = await keyd.createCsr('reused', 'ec-p384');
    assert.deepEqual([afterRestart.keyId, afterRestart.newKey], [first.keyId, false]);
    assert.deepEqual(keyFiles('reused', 'ec-p384'), [`${first.keyId}.pem`]);
  });

  // RSA-4096 takes a second or more to generate, so the four requests surely overlap inside keyd.
  it('concurrent reuse requests for a certificate without a key make exactly one key', async () => {
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => keyd.callAs(TEST_IDS.deployd, 'csr.create', { cert: 'raced', keyType: 'rsa-4096' })),
    );
    const results = answers.map(({ answer }) => {
      assert.ok(answer.ok, JSON.stringify(answer));
      return answer.result as { keyId: string; newKey: boolean };
    });
    assert.equal(new Set(results.map((r) => r.keyId)).size, 1);
    assert.equal(results.filter((r) => r.newKey).length, 1);
    assert.equal(keyFiles('raced', 'rsa-4096').length, 1);
  });

  it(`rotation keeps the last ${KEPT_KEY_VERSIONS} keys exportable and deletes older ones`, async () => {
    const ids: string[] = [];
    for (let i = 0; i < KEPT_KEY_VERSIONS + 2; i++) ids.push((await keyd.createCsr('pruned', 'ec-p256')).keyId);
    const kept = ids.slice(-KEPT_KEY_VERSIONS);
    assert.deepEqual(keyFiles('pruned', 'ec-p256'), kept.map((id) => `${id}.pem`).sort());
    for (const keyId of kept) await keyd.exportKey('pruned', 'ec-p256', keyId);
    for (const keyId of ids.slice(0, -KEPT_KEY_VERSIONS)) {
      const answer = await keyd.callAsRoot('key.export', { cert: 'pruned', keyType: 'ec-p256', keyId });
      assert.equal(answer.ok, false);
      assert.equal(!answer.ok && answer.error.code, 'E_NO_KEY');
      assert.match(!answer.ok ? answer.error.message : '', /pruned/);
    }
  });
});
