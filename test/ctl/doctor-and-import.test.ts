// certsepctl doctor finds another scheduler renewing certsep's names (a certbot.timer planted in a
// fake root), and import-certbot turns a lineage made by Debian's real certbot against Pebble into
// certsep config that certsep's own config parser accepts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseConfig } from '../../config/load.ts';
import { startNginx, type Nginx } from '../harness/nginx.ts';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { runCommand } from '../harness/proc.ts';
import { assertBuilt, writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';

const ctl = (args: string[]) => runCommand(process.execPath, [assertBuilt('ctl'), ...args], { timeoutMs: 60_000 });

describe('certsepctl doctor', () => {
  let dir: string;
  let configPath: string;

  before(() => {
    dir = makeTempDir('ctl-doctor');
    configPath = writeTestConfig(dir, {
      certificates: [{ name: 'www', domains: ['www.example.com'], challenge: { type: 'http-01-webroot', webroot: join(dir, 'webroot') } }],
    });
  });
  after(() => removeTempDir(dir));

  test('doctor reports an enabled certbot.timer that renews a name certsep manages, with the fix', async () => {
    const root = join(dir, 'root-with-certbot');
    mkdirSync(join(root, 'etc/systemd/system/timers.target.wants'), { recursive: true });
    symlinkSync('/lib/systemd/system/certbot.timer', join(root, 'etc/systemd/system/timers.target.wants/certbot.timer'));
    mkdirSync(join(root, 'etc/letsencrypt/renewal'), { recursive: true });
    writeFileSync(join(root, 'etc/letsencrypt/renewal/www.example.com.conf'), [
      'version = 2.1.0',
      'cert = /etc/letsencrypt/live/www.example.com/cert.pem',
      '[renewalparams]',
      'authenticator = webroot',
      '[[webroot_map]]',
      'www.example.com = /var/www/html',
      '',
    ].join('\n'));
    const result = await ctl(['--config', configPath, 'doctor', '--root', root, '--no-network']);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /FAIL other scheduler certbot\.timer: certbot\.timer is enabled .*; it also renews www\.example\.com/);
    assert.match(result.stdout, /fix: systemctl disable --now certbot\.timer; set "autorenew = False" under \[renewalparams\] in \/etc\/letsencrypt\/renewal\/www\.example\.com\.conf/);
    assert.match(result.stdout, /OK {3}config: /);
  });

  test('doctor does not report a certbot.timer that is masked', async () => {
    const root = join(dir, 'root-masked');
    mkdirSync(join(root, 'etc/systemd/system/timers.target.wants'), { recursive: true });
    symlinkSync('/lib/systemd/system/certbot.timer', join(root, 'etc/systemd/system/timers.target.wants/certbot.timer'));
    symlinkSync('/dev/null', join(root, 'etc/systemd/system/certbot.timer'));
    const result = await ctl(['--config', configPath, 'doctor', '--root', root, '--no-network']);
    assert.doesNotMatch(result.stdout, /other scheduler/);
  });

  test('doctor names every config problem with its line instead of a stack trace', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'certificates:\n  - name: x\n    domain: [a.example]\n');
    const result = await ctl(['--config', bad, 'doctor', '--root', dir, '--no-network']);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^FAIL config: bad\.yaml:2: certificates\[0\]\.domains: missing required key$/m);
    assert.match(result.stdout, /^ +bad\.yaml:3: certificates\[0\]\.domain: unknown key$/m);
    assert.doesNotMatch(result.stdout + result.stderr, /at .*\.mjs:\d+/);
  });
});

describe('certsepctl import-certbot', () => {
  let pebble: Pebble;
  let nginx: Nginx;
  let dir: string;

  before(async () => {
    dir = makeTempDir('ctl-import');
    mkdirSync(join(dir, 'webroot'), { mode: 0o755 });
    pebble = await startPebble();
    nginx = await startNginx({ servers: [{ listen: pebble.httpPort, webroot: join(dir, 'webroot') }] });
  });
  after(async () => {
    await nginx?.stop();
    await pebble?.stop();
    removeTempDir(dir);
  });

  test('a lineage issued by the real certbot becomes certsep config that certsep accepts', async () => {
    const configDir = join(dir, 'letsencrypt');
    const certbot = await runCommand('certbot', [
      'certonly', '--non-interactive', '--agree-tos', '-m', 'ops@example.com',
      '--server', pebble.directoryUrl, '--config-dir', configDir, '--work-dir', join(dir, 'work'), '--logs-dir', join(dir, 'logs'),
      '--webroot', '-w', join(dir, 'webroot'), '-d', 'imp.example.com', '-d', 'www.imp.example.com',
      '--key-type', 'ecdsa', '--cert-name', 'imp.example.com',
      '--deploy-hook', 'systemctl reload nginx',
    ], { env: { ...process.env, REQUESTS_CA_BUNDLE: pebble.caBundlePath }, timeoutMs: 120_000 });
    assert.equal(certbot.code, 0, `${certbot.stdout}\n${certbot.stderr}`);

    const result = await ctl(['import-certbot', '--config-dir', configDir]);
    assert.equal(result.code, 0, result.stderr);
    const imported = parse(result.stdout) as { cas: Record<string, { directory: string }>; certificates: Record<string, unknown>[] };
    assert.deepEqual(Object.values(imported.cas), [{ directory: pebble.directoryUrl }]);
    const [cert] = imported.certificates;
    assert.equal(cert!.name, 'imp.example.com');
    assert.deepEqual([...(cert!.domains as string[])].sort(), ['imp.example.com', 'www.imp.example.com']);
    assert.deepEqual(cert!.keyTypes, ['ec-p256']);
    assert.deepEqual(cert!.challenge, { type: 'http-01-webroot', webroot: join(dir, 'webroot') });
    assert.deepEqual(cert!.hooks, { onRenewed: ['/bin/sh', '-c', 'systemctl reload nginx'] });
    assert.deepEqual(cert!.targets, [{ dir: join(configDir, 'live', 'imp.example.com'), files: ['cert', 'chain', 'fullchain', 'privkey'] }]);
    // The output is meant to be pasted into certsep.yaml: certsep's own parser must accept it.
    const config = parseConfig(result.stdout, 'imported.yaml');
    assert.equal(config.certificates[0]!.ca, Object.keys(imported.cas)[0]);
  });

  test('a directory without certbot lineages is reported, not turned into empty config', async () => {
    const result = await ctl(['import-certbot', '--config-dir', join(dir, 'nothing-here')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no renewal\/\*\.conf under/);
  });
});
