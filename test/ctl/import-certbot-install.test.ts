// certsepctl import-certbot --install: lineages issued by Debian's real certbot against Pebble become
// certsep's installed state without a new order. The whole suite runs under its test uids (privd as
// root), certsepctl runs as root like an admin; the key goes certbot's file → keyd (key.import) →
// privd (key.export), and privd checks it against the chain and the config like any renewal.
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AuditRecord } from '../../audit/record.ts';
import { startCertsep, type CertsepUnderTest } from '../deployd/certsep-under-test.ts';
import { runCommand } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { withSocketGroups } from '../harness/accounts.ts';
import { execAs, TEST_IDS } from '../harness/uids.ts';

const spkiOf = (pem: string) => createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' });
const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.replace(/^0+/, '');

describe('certsepctl import-certbot --install', () => {
  let certsep: CertsepUnderTest;
  let letsencrypt: string;
  let mismatched: string;

  const certbot = async (configDir: string, certName: string, domains: string[], keyArgs: string[]) => {
    const result = await runCommand('certbot', [
      'certonly', '--non-interactive', '--agree-tos', '-m', 'ops@example.com',
      '--server', certsep.pebble.directoryUrl, '--config-dir', configDir, '--work-dir', join(certsep.dir, 'certbot-work'), '--logs-dir', join(certsep.dir, 'certbot-logs'),
      '--webroot', '-w', join(certsep.dir, 'webroot'), ...domains.flatMap((d) => ['-d', d]), '--cert-name', certName, ...keyArgs,
    ], { env: { ...process.env, REQUESTS_CA_BUNDLE: certsep.pebble.caBundlePath }, timeoutMs: 120_000 });
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
  };
  const audit = (daemon: string): AuditRecord[] => readFileSync(join(certsep.dir, 'audit', `${daemon}.audit.jsonl`), 'utf8')
    .split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditRecord);
  const lineageFile = (name: string, file: string) => readFileSync(join(letsencrypt, 'live', name, file), 'utf8');
  const target = (site: string, file: string) => readFileSync(join(certsep.dir, 'targets', site, file), 'utf8');

  before(async () => {
    certsep = await startCertsep();
    letsencrypt = join(certsep.dir, 'letsencrypt');
    mismatched = join(certsep.dir, 'letsencrypt-mismatched');
    // certbot names its lineages after the first domain; certsep's config calls them ec, rsa, san.
    await certbot(letsencrypt, 'ec.example.com', ['ec.example.com'], ['--key-type', 'ecdsa']);
    await certbot(letsencrypt, 'rsa.example.com', ['rsa.example.com'], ['--key-type', 'rsa', '--rsa-key-size', '2048']);
    await certbot(letsencrypt, 'san.example.com', ['san.example.com', 'www.san.example.com', 'api.san.example.com', 'mail.san.example.com', 'static.san.example.com'], ['--key-type', 'ecdsa']);
    // Named like a configured certificate, but for one more name than the config lists.
    await certbot(mismatched, 'ec', ['ec.example.com', 'www.ec.example.com'], ['--key-type', 'ecdsa']);
    // Not in certsep's config at all.
    await certbot(mismatched, 'other.example.com', ['other.example.com'], ['--key-type', 'ecdsa']);
  });
  after(async () => certsep?.stop());

  test('lineages whose names differ from the config, or that it lacks, are skipped with the reason, and nothing is installed', async () => {
    const placeholder = target('ec', 'fullchain.pem');
    const result = await certsep.ctl(['import-certbot', '--install', '--config-dir', mismatched]);
    assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^skipped ec: certificate "ec" names ec\.example\.com, but the lineage's certificate names (?=.*www\.ec\.example\.com).*; installing it would change what is served$/m);
    assert.match(result.stdout, /^skipped other\.example\.com: no certificate in certsep's config names other\.example\.com$/m);
    assert.match(result.stdout, /^ {6}- name: other\.example\.com$/m, 'the config to add is printed');
    assert.doesNotMatch(result.stdout, /^ {6}- name: ec$/m, 'no config is proposed under a name the config already uses');
    assert.equal(target('ec', 'fullchain.pem'), placeholder);
    assert.equal(audit('keyd').filter((r) => r.method === 'key.import').length, 0, 'keyd was not asked to import a key');
    assert.equal(audit('privd').filter((r) => r.method === 'deploy.install').length, 0, 'privd was not asked to install');
  });

  test('named lineages only are considered, and a name certbot does not have fails without installing anything', async () => {
    const one = await certsep.ctl(['import-certbot', '--install', '--config-dir', mismatched, 'other.example.com']);
    assert.equal(one.code, 2, `${one.stdout}\n${one.stderr}`);
    assert.doesNotMatch(one.stdout, /skipped ec:/);
    const unknown = await certsep.ctl(['import-certbot', '--install', '--config-dir', mismatched, 'nope.example.com']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no lineage "nope\.example\.com" under .*letsencrypt-mismatched\/renewal/);
    assert.equal(audit('keyd').filter((r) => r.method === 'key.import').length, 0);
  });

  test('key.import from deployd\'s uid is refused with E_PEER', async () => {
    const params = { cert: 'ec', keyType: 'ec-p256', keyPem: lineageFile('ec.example.com', 'privkey.pem') };
    // With deployd's socket groups, as the supervisor starts it: the file system lets it reach keyd.sock.
    const run = await execAs(withSocketGroups('certsep-deploy'), process.execPath, ['--import', 'tsx', 'test/harness/raw-call-cli.ts', join(certsep.dir, 'run', 'keyd.sock'), 'key.import', JSON.stringify(params)], { cwd: REPO, timeoutMs: 60_000 });
    assert.equal(run.code, 0, run.stderr);
    const { pid, answer } = JSON.parse(run.stdout) as { pid: number; answer: { ok: boolean; error?: { code: string } } };
    assert.equal(answer.error?.code, 'E_PEER');
    const record = audit('keyd').find((r) => r.method === 'key.import' && r.peer?.pid === pid);
    assert.deepEqual([record?.peer?.uid, record?.outcome, record?.code], [TEST_IDS.deployd.uid, 'refused', 'E_PEER']);
  });

  test('three certbot lineages are adopted by domain set: the targets hold certbot\'s chain and key, and nginx serves them', async () => {
    const placeholders = Object.fromEntries(await Promise.all((['ec', 'rsa', 'san'] as const).map(async (site) => [site, await certsep.servedSerial(site)])));
    const result = await certsep.ctl(['import-certbot', '--install', '--config-dir', letsencrypt]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    for (const [site, lineage, keyType] of [['ec', 'ec.example.com', 'ec-p256'], ['rsa', 'rsa.example.com', 'rsa-2048'], ['san', 'san.example.com', 'ec-p256']] as const) {
      const chain = lineageFile(lineage, 'fullchain.pem');
      const serial = serialOf(chain);
      assert.match(result.stdout, new RegExp(`^adopted ${lineage.replaceAll('.', '\\.')} as ${site} \\(${keyType}\\): version 1, serial 0*${serial}, valid until \\S+Z$`, 'm'));
      assert.equal(target(site, 'fullchain.pem'), chain, `${site}: the target's fullchain is certbot's`);
      assert.ok(spkiOf(target(site, 'privkey.pem')).equals(spkiOf(lineageFile(lineage, 'privkey.pem'))), `${site}: the target's key is certbot's`);
      assert.equal(await certsep.servedSerialOtherThan(site, placeholders[site]), serial, `${site}: nginx serves certbot's certificate`);
    }
    const imports = audit('keyd').filter((r) => r.method === 'key.import' && r.outcome === 'ok');
    assert.deepEqual(imports.map((r) => r.peer?.uid), [0, 0, 0], 'keyd audited three key.import calls from root');
    assert.ok(!readFileSync(join(certsep.dir, 'audit', 'keyd.audit.jsonl'), 'utf8').includes('PRIVATE KEY'), 'no key in keyd\'s audit log');
    const installs = audit('privd').filter((r) => r.method === 'deploy.install' && r.outcome === 'ok');
    assert.deepEqual(installs.map((r) => r.peer?.uid), [0, 0, 0], 'privd audited three installs from root');
  });

  test('after adoption renew --all finds nothing due and orders nothing', async () => {
    const ordersBefore = audit('acmed').filter((r) => r.method === 'order.issue').length;
    const result = await certsep.ctl(['renew', '--all']);
    assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
    assert.equal(audit('acmed').filter((r) => r.method === 'order.issue').length, ordersBefore, 'acmed was asked for no order');
    for (const site of ['ec', 'rsa', 'san']) assert.equal(target(site, 'fullchain.pem'), lineageFile(`${site}.example.com`, 'fullchain.pem'));
  });
});
