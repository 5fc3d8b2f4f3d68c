// deployd's delivery queue on disk: durable per certificate and host, due entries by time, retries
// used up are not due, pairs the config dropped are forgotten, an unreadable file is moved aside.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DeliveryStore } from '../../deployd/delivery-store.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';

const chain = { keyId: 'a'.repeat(64), chainPem: '-----BEGIN CERTIFICATE-----\n', serial: 'ABC', notAfter: '2030-01-01T00:00:00.000Z' };
const pending = (nextAttempt: string, gaveUp = false) => ({ chains: { 'ec-p256': chain }, issuedAt: '2026-01-01T00:00:00.000Z', attempts: 1, nextAttempt, gaveUp });

describe('the delivery queue', () => {
  const dir = makeTempDir('delivery-store');
  after(() => removeTempDir(dir));

  it('keeps each certificate and host apart, durably, and knows which attempts are due', () => {
    const store = DeliveryStore.open(dir);
    store.update('www', 'web1', (r) => { r.pending = pending('2026-01-01T00:05:00.000Z'); });
    store.update('www', 'web2', (r) => { r.pending = pending('2026-01-01T01:00:00.000Z'); });
    store.update('api', 'web1', (r) => { r.pending = pending('2026-01-01T00:01:00.000Z', true); });
    const reopened = DeliveryStore.open(dir);
    assert.deepEqual(reopened.due(new Date('2026-01-01T00:10:00.000Z')), [['www', 'web1']], 'retries used up are never due');
    assert.equal(reopened.nextAttempt()?.toISOString(), '2026-01-01T00:05:00.000Z');
    assert.equal(reopened.get('www', 'web2').pending?.attempts, 1);
    assert.deepEqual(reopened.get('www', 'web3'), {}, 'a pair never seen is empty');
  });

  it('forgets pairs the config no longer has, so their retries stop', () => {
    const store = DeliveryStore.open(dir);
    assert.deepEqual(store.prune((cert, host) => cert === 'www' && host === 'web1'), ['www@web2', 'api@web1']);
    assert.equal(DeliveryStore.open(dir).nextAttempt()?.toISOString(), '2026-01-01T00:05:00.000Z');
    assert.deepEqual(DeliveryStore.open(dir).get('www', 'web2'), {});
  });

  it('moves an unreadable file aside and starts empty, saying so', () => {
    writeFileSync(join(dir, 'deliveries.json'), '{"version":1,"hosts":{"www@web1":{"pending":{"chains":7}}}}');
    const said: string[] = [];
    const store = DeliveryStore.open(dir, (m) => said.push(m));
    assert.deepEqual(store.get('www', 'web1'), {});
    assert.match(said[0] ?? '', /was unreadable .* moved to .*deliveries\.json\.corrupt-\d+/);
    assert.equal(existsSync(join(dir, 'deliveries.json')), false);
    assert.equal(readdirSync(dir).filter((f) => f.startsWith('deliveries.json.corrupt-')).length, 1);
    store.update('www', 'web1', (r) => { r.lastContact = '2026-01-01T00:00:00.000Z'; });
    assert.match(readFileSync(join(dir, 'deliveries.json'), 'utf8'), /"www@web1":\{"lastContact"/);
  });
});
