// deployd's decisions that need no peer: when a certificate is due and why, how long a failing one
// waits, and that the journal survives a corrupt file. (The end-to-end tests cover the rest.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planRetry } from '../../deployd/backoff.ts';
import { chooseInsideWindow, decideDue, type InstalledCopy } from '../../deployd/due.ts';
import { Journal } from '../../deployd/journal.ts';
import type { CertificateConfig } from '../../config/schema.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';

const DAY = 86_400_000;
const now = new Date('2030-01-01T00:00:00Z');
const cert = (extra: Partial<CertificateConfig> = {}) => ({
  name: 'www', domains: ['www.example.com'], keyTypes: ['ec-p256'], keyPolicy: 'rotate', ca: 'default',
  challenge: { type: 'http-01-webroot', webroot: '/var/www' }, targets: [], ...extra,
}) as CertificateConfig;
const installed = (notBeforeDaysAgo: number, lifetimeDays: number, extra: Partial<InstalledCopy> = {}): InstalledCopy => ({
  keyType: 'ec-p256', present: true, filesMatch: true, serial: 'AB',
  notBefore: new Date(now.getTime() - notBeforeDaysAgo * DAY),
  notAfter: new Date(now.getTime() + (lifetimeDays - notBeforeDaysAgo) * DAY),
  names: ['www.example.com'], ...extra,
});

test('a certificate with nothing installed is due now, as missing', () => {
  const d = decideDue(cert(), [{ keyType: 'ec-p256', present: false, filesMatch: false }], undefined, now);
  assert.deepEqual([d.due, d.reason], [true, 'missing']);
});

test('edited target files make a certificate due, as mismatch', () => {
  assert.equal(decideDue(cert(), [installed(1, 90, { filesMatch: false })], undefined, now).reason, 'mismatch');
});

test('a name added in the config makes a certificate due, as names', () => {
  const d = decideDue(cert({ domains: ['www.example.com', 'new.example.com'] }), [installed(1, 90)], undefined, now);
  assert.deepEqual([d.due, d.reason], [true, 'names']);
});

test('by default a certificate renews when a third of its lifetime remains', () => {
  assert.equal(decideDue(cert(), [installed(59, 90)], undefined, now).due, false);
  const d = decideDue(cert(), [installed(61, 90)], undefined, now);
  assert.deepEqual([d.due, d.reason], [true, 'expiry']);
  assert.equal(decideDue(cert(), [installed(1, 90)], undefined, now).at.toISOString(), new Date(now.getTime() + 59 * DAY).toISOString());
});

test('renewBeforeDays replaces the third-of-lifetime default', () => {
  assert.equal(decideDue(cert({ renewBeforeDays: 10 }), [installed(61, 90)], undefined, now).due, false);
  assert.equal(decideDue(cert({ renewBeforeDays: 10 }), [installed(81, 90)], undefined, now).due, true);
});

test('the CA\'s ARI window replaces renewBeforeDays for the leaf it was asked about', () => {
  const ari = { serial: 'AB', supported: true, start: 'x', end: 'y', chosen: new Date(now.getTime() - 1000).toISOString(), recheckAt: now.toISOString() };
  const d = decideDue(cert(), [installed(5, 90)], ari, now);
  assert.deepEqual([d.due, d.reason], [true, 'ari']);
  assert.equal(decideDue(cert(), [installed(5, 90)], { ...ari, serial: 'OTHER' }, now).due, false, 'a window for another serial does not apply');
});

test('an ARI window reaching to expiry (or to 2100) never puts a renewal later than a third of the lifetime before it', () => {
  const leaf = installed(5, 90);
  const latest = decideDue(cert(), [leaf], undefined, now).at;
  // As acmed passes it on (cut to the leaf's validity), and as a hostile CA sent it.
  const windows: [Date, Date][] = [
    [leaf.notBefore!, leaf.notAfter!],
    [new Date('1970-01-01T00:00:00Z'), new Date('2100-01-01T00:00:00Z')],
  ];
  for (const [start, end] of windows) {
    for (const r of [0.5, 0.999]) {
      const chosen = chooseInsideWindow(start, end, now, () => r).toISOString();
      const ari = {
        serial: 'AB', supported: true, start: start.toISOString(), end: end.toISOString(), chosen,
        recheckAt: now.toISOString(),
      };
      const d = decideDue(cert(), [leaf], ari, now);
      assert.ok(d.at <= latest, `renewal at ${d.at.toISOString()}, after ${latest.toISOString()}`);
    }
  }
});

test('renewAfterDays rotates a certificate by age before its expiry margin', () => {
  const d = decideDue(cert({ renewAfterDays: 30 }), [installed(31, 90)], undefined, now);
  assert.deepEqual([d.due, d.reason], [true, 'age']);
});

test('a random time inside an ARI window is never before now nor after the window', () => {
  const start = new Date(now.getTime() - DAY);
  const end = new Date(now.getTime() + DAY);
  for (const r of [0, 0.5, 0.999]) {
    const t = chooseInsideWindow(start, end, now, () => r).getTime();
    assert.ok(t >= now.getTime() && t <= end.getTime());
  }
  assert.equal(chooseInsideWindow(start, new Date(now.getTime() - 1), now).getTime(), now.getTime());
});

test('failures back off exponentially with jitter; a rate limit waits for the CA\'s Retry-After', () => {
  const error = { code: 'E_CONNECTION', message: 'cannot reach the CA' };
  const first = planRetry(1, error, now, () => 1).nextAttempt.getTime() - now.getTime();
  const third = planRetry(3, error, now, () => 1).nextAttempt.getTime() - now.getTime();
  assert.equal(third, first * 4);
  assert.equal(planRetry(1, error, now, () => 0).nextAttempt.getTime() - now.getTime(), first / 2);
  assert.ok(planRetry(40, error, now, () => 1).nextAttempt.getTime() - now.getTime() <= 12 * 3_600_000);
  const limited = planRetry(1, { code: 'E_RATE_LIMITED', message: 'new order: rateLimited: too many (retry after 7200 seconds)' }, now);
  assert.equal(limited.rateLimitedUntil!.getTime() - now.getTime(), 7_200_000);
});

test('a corrupt journal is moved aside and deployd starts afresh instead of refusing to run', () => {
  const dir = makeTempDir('deployd-journal');
  try {
    writeFileSync(join(dir, 'journal.json'), '{"version":1,"certs":{"www":{"inFlight":');
    const complaints: string[] = [];
    const journal = Journal.open(dir, (m) => complaints.push(m));
    assert.equal(journal.get('www').renewals, 0);
    assert.match(complaints[0]!, /was unreadable .* moved to/);
    journal.update('www', (r) => { r.renewals = 1; });
    assert.equal(Journal.open(dir).get('www').renewals, 1, 'updates are durable');
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file is left behind');
  } finally {
    removeTempDir(dir);
  }
});
