import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { summarizeParams } from '../../audit/log.ts';

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const PEM = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oOXq\n-----END EC PRIVATE KEY-----\n';

describe('summarizeParams', () => {
  it('keeps short ordinary values as they are', () => {
    const params = { cert: 'www', keyType: 'ec-p256', keyId: 'a'.repeat(64), files: ['cert', 'chain'], force: false, n: 3, none: null };
    assert.deepEqual(summarizeParams(params), params);
  });

  it('replaces a string longer than 128 characters by its length and sha256', () => {
    const long = 'x'.repeat(129);
    assert.deepEqual(summarizeParams({ note: long }), { note: { bytes: 129, sha256: sha256(long) } });
    assert.deepEqual(summarizeParams({ note: 'x'.repeat(128) }), { note: 'x'.repeat(128) });
  });

  it('never lets a PEM through, under any key, at any depth, however short', () => {
    const out = JSON.stringify(summarizeParams({ a: [{ b: { c: PEM } }], d: '-----BEGIN X-----', [PEM]: 1 }));
    assert.doesNotMatch(out, /BEGIN|MHcCAQEE/);
  });

  it('replaces any value under a key named like a secret, whatever its type', () => {
    const out = summarizeParams({ privkey: 'short', keyPem: 'k', hmacKey: Buffer.from('abc'), secret: { d: 'jwk-private-part' }, password: 12345, accountKey: 'k2' }) as Record<string, unknown>;
    assert.deepEqual(out['privkey'], { bytes: 5, sha256: sha256('short') });
    assert.deepEqual(out['hmacKey'], { bytes: 3, sha256: sha256(Buffer.from('abc')) });
    for (const key of ['keyPem', 'secret', 'password', 'accountKey']) {
      assert.deepEqual(Object.keys(out[key] as object), ['bytes', 'sha256'], key);
    }
    assert.doesNotMatch(JSON.stringify(out), /jwk-private-part|12345|short/);
  });

  it('replaces bytes by their length and sha256', () => {
    assert.deepEqual(summarizeParams(Buffer.from('der bytes')), { bytes: 9, sha256: sha256('der bytes') });
  });

  it('bounds depth, list length and total size', () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 50; i++) deep = { next: deep };
    assert.ok(JSON.stringify(summarizeParams(deep)).includes('[omitted: too deep]'));

    const list = summarizeParams(Array.from({ length: 1000 }, (_, i) => i)) as unknown[];
    assert.equal(list.length, 65);
    assert.equal(list[64], '[omitted: 936 more]');

    const wide = Array.from({ length: 64 }, () => Array.from({ length: 64 }, () => 'v'));
    assert.ok(JSON.stringify(summarizeParams(wide)).length < 8000);
  });

  it('keeps a "__proto__" key from the wire as plain data', () => {
    const params = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}') as unknown;
    const out = summarizeParams(params) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal((out as { polluted?: boolean }).polluted, undefined);
    assert.deepEqual(JSON.parse(JSON.stringify(out)), { ['__proto__']: { polluted: true }, ok: 1 });
  });

  it('copies rather than aliases its input', () => {
    const params = { nested: { a: 1 } };
    const out = summarizeParams(params) as typeof params;
    out.nested.a = 2;
    assert.equal(params.nested.a, 1);
  });
});
