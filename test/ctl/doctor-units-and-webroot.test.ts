// certsepctl doctor checks that systemd would start certsep (unit files and .wants symlinks in a
// fake root), says the supervisor must run where systemd does not, and proves each http-01 webroot
// is served over HTTP by fetching a probe file through a real nginx — leaving no probe behind. The
// probe is written as acmed's account: a web user who owns its web root cannot make root write
// through a link it planted there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNginx, type Nginx } from '../harness/nginx.ts';
import { freePort } from '../harness/ports.ts';
import { runCommand } from '../harness/proc.ts';
import { assertBuilt, writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';

const ctl = (args: string[]) => runCommand(process.execPath, [assertBuilt('ctl'), ...args], { timeoutMs: 60_000 });
const DAEMONS = ['privd', 'keyd', 'acmed', 'netd', 'deployd'];

describe('certsepctl doctor: systemd units', () => {
  let dir: string;
  let configPath: string;

  before(() => {
    dir = makeTempDir('ctl-units');
    configPath = writeTestConfig(dir, {});
  });
  after(() => removeTempDir(dir));

  function plantRoot(name: string, units: { unit: string; installed: boolean; enabled: boolean }[]): string {
    const root = join(dir, name);
    const system = join(root, 'etc/systemd/system');
    for (const target of ['sockets.target.wants', 'timers.target.wants']) mkdirSync(join(system, target), { recursive: true });
    for (const { unit, installed, enabled } of units) {
      if (installed) writeFileSync(join(system, unit), '[Install]\n');
      const wants = unit.endsWith('.timer') ? 'timers.target.wants' : 'sockets.target.wants';
      if (enabled) symlinkSync(`/etc/systemd/system/${unit}`, join(system, wants, unit));
    }
    return root;
  }

  test('doctor finds a socket unit that is installed but not enabled and one that is missing, and says the fix', async () => {
    const root = plantRoot('root-partial', [
      ...DAEMONS.map((d) => ({ unit: `certsep-${d}.socket`, installed: d !== 'netd', enabled: d !== 'keyd' && d !== 'netd' })),
      { unit: 'certsep-renew.timer', installed: true, enabled: true },
    ]);
    const result = await ctl(['--config', configPath, 'doctor', '--root', root, '--no-network']);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^FAIL unit certsep-keyd\.socket: certsep-keyd\.socket is installed \(\/etc\/systemd\/system\/certsep-keyd\.socket\) but not enabled: nothing starts it at boot/m);
    assert.match(result.stdout, new RegExp(`^ +fix: systemctl --root=${root} enable certsep-keyd\\.socket$`, 'm'));
    assert.match(result.stdout, /^FAIL unit certsep-netd\.socket: certsep-netd\.socket is not installed/m);
    assert.match(result.stdout, /^ +fix: sudo \.\/install /m);
    for (const unit of ['certsep-privd.socket', 'certsep-acmed.socket', 'certsep-deployd.socket', 'certsep-renew.timer']) {
      assert.match(result.stdout, new RegExp(`^OK {3}unit ${unit.replace('.', '\\.')}: enabled `, 'm'));
    }
    assert.doesNotMatch(result.stdout, /^\w+ +supervisor:/m, 'under --root, units are what starts certsep');
  });

  test('doctor reports a masked timer as masked, not as enabled', async () => {
    const root = plantRoot('root-masked', [
      ...DAEMONS.map((d) => ({ unit: `certsep-${d}.socket`, installed: true, enabled: true })),
      { unit: 'certsep-renew.timer', installed: false, enabled: true },
    ]);
    symlinkSync('/dev/null', join(root, 'etc/systemd/system/certsep-renew.timer'));
    const result = await ctl(['--config', configPath, 'doctor', '--root', root, '--no-network']);
    assert.match(result.stdout, /^FAIL unit certsep-renew\.timer: certsep-renew\.timer is masked/m);
    assert.match(result.stdout, /^ +fix: systemctl unmask certsep-renew\.timer && /m);
    assert.equal((result.stdout.match(/^OK {3}unit certsep-\w+\.socket: enabled/gm) ?? []).length, 5);
  });

  test('without systemd, doctor says certsep-supervisor must run and which daemons do not answer', { skip: existsSync('/run/systemd/system') && 'systemd runs on this machine' }, async () => {
    const result = await ctl(['--config', configPath, 'doctor', '--no-network']);
    assert.match(result.stdout, /^FAIL supervisor: systemd is not running .*certsep-supervisor must run as root.*; no answer from privd, keyd, acmed, netd, deployd /m);
    assert.match(result.stdout, /^ +fix: start certsep-supervisor /m);
    assert.doesNotMatch(result.stdout, /^\w+ +unit /m);
  });
});

describe('certsepctl doctor: webroot served over HTTP', () => {
  let dir: string;
  let webroot: string;
  let elsewhere: string;
  let nginx: Nginx;
  let servingPort: number;
  let wrongPort: number;
  let configPath: string;

  before(async () => {
    dir = makeTempDir('ctl-webroot');
    webroot = join(dir, 'webroot');
    elsewhere = join(dir, 'elsewhere');
    mkdirSync(join(webroot, '.well-known', 'acme-challenge'), { recursive: true, mode: 0o755 });
    // As install makes it: acmed writes the CA's tokens there, and doctor's probe as acmed.
    chownSync(join(webroot, '.well-known', 'acme-challenge'), TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);
    mkdirSync(elsewhere, { mode: 0o755 });
    [servingPort, wrongPort] = [await freePort(), await freePort()];
    // Two servers: one serves the webroot, the other a different directory (a common mistake).
    nginx = await startNginx({ servers: [{ listen: servingPort, webroot }, { listen: wrongPort, webroot: elsewhere }] });
    // `localhost` resolves to 127.0.0.1 through /etc/hosts and the config accepts it as a name;
    // www.example.com resolves, if at all, to an address that is not this host's.
    configPath = writeTestConfig(dir, {
      certificates: [{ name: 'local', domains: ['localhost', 'www.example.com'], challenge: { type: 'http-01-webroot', webroot } }],
    });
  });
  after(async () => {
    await nginx?.stop();
    removeTempDir(dir);
  });

  const probesLeft = () => readdirSync(join(webroot, '.well-known', 'acme-challenge'));

  test('doctor fetches its probe file through nginx for a name that resolves to this host, and removes it', async () => {
    const result = await ctl(['--config', configPath, 'doctor', '--root', dir, '--no-network', '--http-port', String(servingPort)]);
    assert.match(result.stdout, new RegExp(`^OK {3}webroot local localhost: http://localhost/\\.well-known/acme-challenge/[A-Za-z0-9_-]{32} via 127\\.0\\.0\\.1:${servingPort} serves ${webroot}/\\.well-known/acme-challenge$`, 'm'));
    assert.match(result.stdout, /^OK {3}webroot local www\.example\.com: skipped \(not served from this host\)$/m);
    assert.match(readFileSync(join(nginx.prefix, 'logs', 'access.log'), 'utf8'), /"GET \/\.well-known\/acme-challenge\/[A-Za-z0-9_-]{32} HTTP\/1\.1" 200 /, 'nginx served the probe');
    assert.deepEqual(probesLeft(), []);
  });

  test('doctor says what came back when the server on the port does not serve the webroot, with the nginx fix, and removes its probe', async () => {
    const result = await ctl(['--config', configPath, 'doctor', '--root', dir, '--no-network', '--http-port', String(wrongPort)]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, new RegExp(`^FAIL webroot local localhost: GET http://localhost/\\.well-known/acme-challenge/\\S+ via 127\\.0\\.0\\.1:${wrongPort}: HTTP 404 instead of the probe file$`, 'm'));
    assert.match(result.stdout, new RegExp(`^ +fix: .*location \\^~ /\\.well-known/acme-challenge/ \\{ root ${webroot}; default_type text/plain; \\}`, 'm'));
    assert.deepEqual(probesLeft(), []);
  });

  test('doctor reports a refused connection when nothing listens on the port, and removes its probe', async () => {
    const closed = await freePort();
    const result = await ctl(['--config', configPath, 'doctor', '--root', dir, '--no-network', '--http-port', String(closed)]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, new RegExp(`^FAIL webroot local localhost: GET \\S+ via 127\\.0\\.0\\.1:${closed}: connection refused \\(nothing listens there\\)$`, 'm'));
    assert.deepEqual(probesLeft(), []);
  });
});

describe('certsepctl doctor: a webroot its web user owns', () => {
  let dir: string;
  let nginx: Nginx;
  let port: number;
  let configPath: string;
  let rootOnly: string;

  before(async () => {
    dir = makeTempDir('ctl-webroot-owner');
    // A root-only directory that happens to hold an acme-challenge directory (another site's).
    rootOnly = join(dir, 'root-only');
    mkdirSync(join(rootOnly, 'acme-challenge'), { recursive: true, mode: 0o755 });
    chmodSync(rootOnly, 0o700);
    // The web user owns its web root, and links .well-known to that directory.
    const webroot = join(dir, 'webroot');
    mkdirSync(webroot, { mode: 0o755 });
    symlinkSync(rootOnly, join(webroot, '.well-known'));
    chownSync(join(webroot, '.well-known'), TEST_IDS.other.uid, TEST_IDS.other.gid);
    chownSync(webroot, TEST_IDS.other.uid, TEST_IDS.other.gid);
    port = await freePort();
    nginx = await startNginx({ servers: [{ listen: port, webroot }] });
    configPath = writeTestConfig(dir, {
      certificates: [{ name: 'owned', domains: ['localhost'], challenge: { type: 'http-01-webroot', webroot } }],
    });
  });
  after(async () => {
    await nginx?.stop();
    removeTempDir(dir);
  });

  test('a .well-known the web user linked elsewhere does not make doctor write there as root', async () => {
    const before = statSync(join(rootOnly, 'acme-challenge'), { bigint: true }).mtimeNs;
    const result = await ctl(['--config', configPath, 'doctor', '--root', dir, '--no-network', '--http-port', String(port)]);
    assert.equal(statSync(join(rootOnly, 'acme-challenge'), { bigint: true }).mtimeNs, before, 'nothing was written into the root-only directory');
    assert.deepEqual(readdirSync(join(rootOnly, 'acme-challenge')), []);
    assert.match(result.stdout, new RegExp(`^FAIL webroot owned localhost: acmed \\(uid ${TEST_IDS.acmed.uid}\\) cannot write the probe file \\S+: EACCES, so it could not write the CA's token either$`, 'm'));
  });
});
