// deployd end to end: real Pebble, real nginx, every daemon under its own uid (certsep-supervisor),
// certsepctl as root. Proves: a first run issues and installs three certificates and nginx serves
// them; a second run does nothing (no reload); --force renews one and reloads only its services;
// status --json keeps its schema; a chain whose root the CA's roots file lacks is not installed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StatusJson } from '../../ctl/status-json.ts';
import { makeLocalTls } from '../harness/certs.ts';
import { waitFor } from '../harness/proc.ts';
import { startCertsep, SITES, type CertsepUnderTest, type Site } from './certsep-under-test.ts';

const sites = Object.keys(SITES) as Site[];

describe('certsepctl renew through deployd', () => {
  let certsep: CertsepUnderTest;
  const served = new Map<Site, string>();

  before(async () => {
    // Not 90 days: the last test tells the leaf's real lifetime from the 90 days deployd assumes.
    certsep = await startCertsep({ pebble: { validityDays: 45 } });
  });
  after(async () => {
    await certsep?.stop();
  });

  test('renew --all issues and installs all three certificates, nginx serves them, exit 0', async () => {
    const reloadsBefore = certsep.nginx.reloadCount();
    const placeholders = new Map<Site, string>();
    for (const site of sites) placeholders.set(site, await certsep.servedSerial(site));
    const result = await certsep.ctl(['renew', '--all']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /3 renewed/);
    for (const site of sites) assert.match(result.stdout, new RegExp(`${site} \\[[a-z0-9-]+\\]: order ok serial`), 'progress lines name each step');
    for (const site of sites) {
      const serial = await certsep.servedSerialOtherThan(site, placeholders.get(site)!);
      assert.doesNotMatch(serial, /^untrusted/, `${site} serves a certificate chaining to Pebble`);
      served.set(site, serial);
    }
    assert.equal(certsep.nginx.reloadCount(), reloadsBefore + 1, 'one batched nginx reload for three certificates');
    assert.equal(readFileSync(certsep.markerFile, 'utf8').trim().split('\n').length, 1);
    assert.equal(statSync(join(certsep.dir, 'targets', 'ec', 'privkey.pem')).mode & 0o777, 0o600);
  });

  test('a second run finds nothing due, does not reload nginx and exits 2', async () => {
    const pid = certsep.nginx.pid();
    const reloads = certsep.nginx.reloadCount();
    const result = await certsep.ctl(['renew', '--all']);
    assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /3 not-due/);
    assert.equal(certsep.nginx.pid(), pid);
    assert.equal(certsep.nginx.reloadCount(), reloads);
    for (const site of sites) assert.equal(await certsep.servedSerial(site), served.get(site));
  });

  test('renew --force NAME renews only that certificate and reloads only its services', async () => {
    const reloads = certsep.nginx.reloadCount();
    const markerReloads = readFileSync(certsep.markerFile, 'utf8');
    const result = await certsep.ctl(['renew', '--force', 'ec']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /1 renewed/);
    await certsep.servedSerialOtherThan('ec', served.get('ec')!);
    assert.equal(await certsep.servedSerial('rsa'), served.get('rsa'));
    assert.equal(await certsep.servedSerial('san'), served.get('san'));
    assert.equal(certsep.nginx.reloadCount(), reloads + 1);
    assert.equal(readFileSync(certsep.markerFile, 'utf8'), markerReloads, 'the rsa-only service was not reloaded');
  });

  test('status --json matches the published schema and exits 0 when nothing fails', async () => {
    const result = await certsep.ctl(['status', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const status = StatusJson.parse(JSON.parse(result.stdout));
    assert.deepEqual(status.certs.map((c) => c.cert), sites);
    for (const cert of status.certs) {
      assert.equal(cert.failing, false);
      assert.equal(cert.next.due, false);
      assert.equal(cert.next.reason, 'expiry');
      assert.ok(cert.keyTypes.every((k) => k.installed && k.targets.every((t) => t.matches)));
    }
    assert.equal(status.certs.find((c) => c.cert === 'ec')!.renewals, 2);
    assert.deepEqual(status.certs.find((c) => c.cert === 'san')!.domains, SITES.san.domains);
    const table = await certsep.ctl(['status']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^NAME\s+DOMAINS/);
  });

  test('the metrics file has expiry, last success and renewal count per certificate', () => {
    const prom = readFileSync(join(certsep.dir, 'state', 'deployd', 'certsep.prom'), 'utf8');
    assert.match(prom, /certsep_certificate_expiry_timestamp_seconds\{cert="san"\} [1-9]\d{9}/);
    assert.match(prom, /certsep_certificate_renewals_total\{cert="ec"\} 2/);
    assert.match(prom, /certsep_certificate_failing\{cert="rsa"\} 0/);
    assert.ok(!existsSync(join(certsep.dir, 'state', 'deployd', '.certsep.prom.tmp')));
  });

  test('renew of an unknown certificate is refused with a clear error and changes nothing', async () => {
    const result = await certsep.ctl(['renew', 'nosuch']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no certificate named "nosuch"/);
  });

  test('deployd that lost its copy of the leaves still finds nothing due, from the leaves privd reports', async () => {
    const journalPath = join(certsep.dir, 'state', 'deployd', 'journal.json');
    const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { certs: Record<string, { issued?: unknown; ari?: unknown }> };
    for (const record of Object.values(journal.certs)) {
      delete record.issued;
      delete record.ari;
    }
    // deployd is idle and reads its journal only at start: edit, then restart it (the supervisor does).
    writeFileSync(journalPath, JSON.stringify(journal));
    const pid = certsep.pidOf('deployd');
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => certsep.pidOf('deployd') !== pid, 20_000, 'the supervisor to restart deployd');
    await certsep.waitForDaemons();

    const reloads = certsep.nginx.reloadCount();
    const result = await certsep.ctl(['renew', '--all']);
    assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /3 not-due/);
    assert.equal(certsep.nginx.reloadCount(), reloads);

    const status = StatusJson.parse(JSON.parse((await certsep.ctl(['status', '--json'])).stdout));
    const after = certsep.journal() as unknown as { certs: Record<string, { issued: Record<string, { leafPem: string }>; ari: { serial: string } }> };
    for (const site of sites) {
      const installed = new X509Certificate(readFileSync(join(certsep.dir, 'targets', site, 'fullchain.pem')));
      const notBefore = new Date(installed.validFrom).getTime();
      const notAfter = new Date(installed.validTo).getTime();
      const next = status.certs.find((c) => c.cert === site)!.next;
      assert.deepEqual([next.due, next.reason], [false, 'expiry'], site);
      // The leaf's real lifetime, not the 90 days assumed when only notAfter is known.
      assert.ok(Math.abs(new Date(next.at).getTime() - (notAfter - (notAfter - notBefore) / 3)) < 1000, `${site}: ${next.at} ${next.detail}`);
      const serial = installed.serialNumber.replace(/^0+/, '');
      const keyType = SITES[site].keyTypes[0];
      assert.equal(new X509Certificate(after.certs[site]!.issued[keyType]!.leafPem).serialNumber, installed.serialNumber, `${site}: the installed leaf is what the next order replaces`);
      assert.equal(after.certs[site]!.ari.serial, serial, `${site}: the CA was asked for the installed leaf's renewal window`);
    }
  });

  test('privd refuses a Pebble chain whose root the roots file lacks; the old certificate stays served', async () => {
    const trusted = readFileSync(certsep.pebble.rootsPath);
    const stranger = await makeLocalTls(mkdtempSync(join(certsep.dir, 'stranger-')), 'a root nobody configured');
    writeFileSync(certsep.pebble.rootsPath, readFileSync(stranger.caPath));
    const before = await certsep.servedSerial('ec');
    const reloads = certsep.nginx.reloadCount();
    try {
      const result = await certsep.ctl(['renew', '--force', 'ec']);
      assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
      assert.match(result.stdout, /ec: install FAILED E_UNTRUSTED: .*does not lead to a root trusted for CA "default"/);
      assert.equal(await certsep.servedSerial('ec'), before);
      assert.equal(certsep.nginx.reloadCount(), reloads);
      const kept = certsep.journal().certs['ec']?.inFlight?.keyTypes ?? {};
      assert.deepEqual(kept, {}, 'deployd does not keep a chain privd refused');
    } finally {
      writeFileSync(certsep.pebble.rootsPath, trusted);
    }
  });
});
