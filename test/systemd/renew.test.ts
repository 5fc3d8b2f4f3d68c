// A whole renewal under a booted systemd 252, the way a server runs it: the installed units,
// socket activation of every daemon it needs, a real nginx inside the container answering the
// http-01 challenge from the webroot and reloaded through privd (`systemctl reload nginx`), and a
// real Pebble on the host's loopback (the container shares the host's network). Afterwards the
// daemons exit when idle, so nothing of certsep stays resident.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { makeLocalTls } from '../harness/certs.ts';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { freePort } from '../harness/ports.ts';
import { waitFor } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { bootContainer, containerProcesses, copySuite, ensureRootfs, SUITE_SOURCE, type Container } from './container.ts';

const DAEMONS = ['privd', 'keyd', 'acmed', 'netd', 'deployd'] as const;
const IDLE_EXIT_SECONDS = 5;
const DIST = process.env['CERTSEP_SYSTEMD_DIST'] ?? join(REPO, 'dist');
const DOMAIN = 'web.certsep.test';
const TARGET_DIR = '/etc/nginx/certsep/web';
const WEBROOT = '/var/www/acme';
const TRUST_BUNDLE = '/etc/certsep/pebble-https-ca.pem';
// Pebble's issuing roots: privd, under its hardened unit, reads them at each install.
const PEBBLE_ROOTS = '/etc/certsep/pebble-roots.pem';

interface Served {
  authorized: boolean;
  authorizationError: string;
  cert: X509Certificate;
  chain: X509Certificate[];
}

let box: Container | undefined;
let pebble: Pebble | undefined;
let hostDir = '';
let tlsPort = 0;
let pebbleRoot = '';
const started = Date.now();

function c(): Container {
  assert.ok(box, 'the container did not boot');
  return box;
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

function sh(script: string): Promise<string> {
  return c().sh(script);
}

function testConfig(p: Pebble): string {
  return `# certsep test config: one certificate from the host's Pebble, deployed to the container's nginx
cas:
  default:
    directory: ${p.directoryUrl}
    trustBundle: ${TRUST_BUNDLE}
    roots: ${PEBBLE_ROOTS}
    email: ops@certsep.test
services:
  nginx:
    check: [["nginx", "-t"]]
    reload: { systemd: nginx.service, action: reload }
certificates:
  - name: web
    domains: [${DOMAIN}]
    keyTypes: [ec-p256]
    challenge: { type: http-01-webroot, webroot: ${WEBROOT} }
    targets:
      - dir: ${TARGET_DIR}
        files: [fullchain, privkey]
        services: [nginx]
`;
}

// nginx answers Pebble's http-01 validation (on Pebble's httpPort, 127.0.0.1 by challtestsrv's
// answers) from the webroot, and serves the target's files on a TLS port. Until the first renewal
// those are a self-signed placeholder, so nginx starts at boot.
function nginxSite(p: Pebble): string {
  return `server {
  listen 127.0.0.1:${p.httpPort};
  root ${WEBROOT};
}
server {
  listen 127.0.0.1:${tlsPort} ssl;
  server_name ${DOMAIN};
  ssl_certificate ${TARGET_DIR}/fullchain.pem;
  ssl_certificate_key ${TARGET_DIR}/privkey.pem;
  return 200 "web\\n";
}
`;
}

async function prepareRoot(root: string, p: Pebble): Promise<void> {
  copySuite(root, DIST);
  mkdirSync(join(root, 'etc/certsep'), { recursive: true });
  for (const [from, to] of [[p.caBundlePath, TRUST_BUNDLE], [p.rootsPath, PEBBLE_ROOTS]] as const) {
    copyFileSync(from, join(root, to));
    chmodSync(join(root, to), 0o644);
  }
  writeFileSync(join(root, 'etc/certsep/certsep.yaml'), testConfig(p), { mode: 0o644 });

  const placeholder = await makeLocalTls(hostDir, 'certsep placeholder');
  const target = join(root, TARGET_DIR);
  mkdirSync(target, { recursive: true, mode: 0o755 });
  copyFileSync(placeholder.certPath, join(target, 'fullchain.pem'));
  copyFileSync(placeholder.keyPath, join(target, 'privkey.pem'));
  chmodSync(join(target, 'privkey.pem'), 0o600);
  // The container shares the host's network: nginx must not take the host's port 80.
  rmSync(join(root, 'etc/nginx/sites-enabled/default'), { force: true });
  writeFileSync(join(root, 'etc/nginx/sites-enabled/certsep-test'), nginxSite(p));
  mkdirSync(join(root, WEBROOT), { recursive: true });

  // Test-only: a short idle exit, so "nothing stays resident" is seen within seconds.
  for (const d of DAEMONS) {
    const dropins = join(root, `etc/systemd/system/certsep-${d}.service.d`);
    mkdirSync(dropins, { recursive: true });
    writeFileSync(join(dropins, 'test.conf'), `[Service]\nEnvironment=CERTSEP_IDLE_EXIT_SECONDS=${IDLE_EXIT_SECONDS}\n`);
  }
}

function serve(port: number, servername: string, ca: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false }, () => {
      const peer = socket.getPeerCertificate(true);
      const chain: X509Certificate[] = [];
      for (let link = peer; link?.raw && !chain.some((x) => x.raw.equals(link.raw)); link = link.issuerCertificate) {
        chain.push(new X509Certificate(link.raw));
      }
      const served = {
        authorized: socket.authorized,
        authorizationError: String(socket.authorizationError ?? ''),
        cert: chain[0]!,
        chain,
      };
      socket.destroy();
      resolve(served);
    });
    socket.once('error', reject);
  });
}

async function nginxState(): Promise<{ mainPid: number; reloads: number }> {
  const mainPid = Number((await sh('systemctl show -P MainPID nginx.service')).trim());
  const reloads = Number((await sh('journalctl -o cat --no-pager -u nginx.service | grep -c "^Reloaded" || true')).trim());
  return { mainPid, reloads };
}

/** The container's processes that run a program of the suite, as "pid command line". */
function certsepProcesses(): string[] {
  return containerProcesses(c(), /certsep[-_]|certsepctl/);
}

async function renewAll(): Promise<{ code: number | null; output: string; seconds: number }> {
  const since = Date.now();
  const r = await c().exec(['certsepctl', 'renew', '--all']);
  return { code: r.code, output: `${r.stdout}${r.stderr}`, seconds: (Date.now() - since) / 1000 };
}

describe('a renewal under a booted systemd', { timeout: 300_000 }, () => {
  let before0 = { mainPid: 0, reloads: 0 };
  let daemonsThatRan: string[] = [];

  before(async () => {
    const debootstrapSeconds = await ensureRootfs();
    console.log(`# debootstrap: ${debootstrapSeconds > 0 ? `${debootstrapSeconds.toFixed(1)} s` : 'cached rootfs reused'}`);
    hostDir = makeTempDir('systemd-renew');
    const since = Date.now();
    pebble = await startPebble();
    pebbleRoot = await pebble.fetchRoot();
    console.log(`# Pebble: ${seconds(since)}`);
    tlsPort = await freePort();
    const p = pebble;
    const booted = await bootContainer((root) => prepareRoot(root, p));
    box = booted;
    console.log(`# copy + boot to is-system-running: ${booted.bootSeconds.toFixed(1)} s`);
    const installing = Date.now();
    const install = await box.exec([`${SUITE_SOURCE}/install`]);
    assert.equal(install.code, 0, `install failed:\n${install.stdout}\n${install.stderr}`);
    console.log(`# install: ${seconds(installing)}`);
  });

  after(async () => {
    await box?.stop();
    await pebble?.stop();
    if (hostDir) removeTempDir(hostDir);
    console.log(`# whole file: ${seconds(started)}`);
  });

  test('before the first renewal nginx serves the placeholder, and no certsep process runs', async () => {
    const served = await serve(tlsPort, DOMAIN, pebbleRoot);
    assert.equal(served.authorized, false);
    assert.match(served.cert.issuer, /certsep placeholder/);
    assert.deepEqual(certsepProcesses(), []);
    before0 = await nginxState();
    assert.ok(before0.mainPid > 0, 'nginx.service runs in the container');
  });

  test('certsepctl renew --all issues the certificate from Pebble, installs it and exits 0', async () => {
    const run = await renewAll();
    console.log(`# first certsepctl renew --all: ${run.seconds.toFixed(1)} s`);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /\bweb\b/);
    // The target dir stays root's; the key gets the target's default mode, the public chain 0644.
    const files = await sh(`stat -c '%n %U:%G %a' ${TARGET_DIR} ${TARGET_DIR}/fullchain.pem ${TARGET_DIR}/privkey.pem`);
    assert.deepEqual(files.trim().split('\n'), [
      `${TARGET_DIR} root:root 755`,
      `${TARGET_DIR}/fullchain.pem root:root 644`,
      `${TARGET_DIR}/privkey.pem root:root 640`,
    ]);
    // Pebble (authorization reuse off) fetched the token from the container's nginx, and acmed
    // removed the answer afterwards.
    const validations = await sh(`grep -c 'GET /.well-known/acme-challenge/' /var/log/nginx/access.log || true`);
    assert.ok(Number(validations.trim()) >= 1, 'Pebble validated through the container\'s nginx');
    assert.equal((await sh(`ls -A ${WEBROOT}/.well-known/acme-challenge`)).trim(), '');
  });

  test('nginx in the container now serves a chain that verifies to Pebble\'s root, for the configured name', async () => {
    const since = Date.now();
    // systemctl reload returns once nginx's master has the signal; new workers take over moments later.
    const served = await waitFor(async () => {
      const s = await serve(tlsPort, DOMAIN, pebbleRoot);
      return s.authorized ? s : undefined;
    }, 10_000, 'nginx to serve the issued certificate', 200);
    console.log(`# new certificate served ${seconds(since)} after the run returned`);
    assert.equal(served.authorizationError, '');
    assert.equal(served.cert.checkHost(DOMAIN), DOMAIN);
    assert.match(served.cert.subjectAltName ?? '', new RegExp(`DNS:${DOMAIN.replaceAll('.', '\\.')}`));
    assert.match(served.cert.issuer, /Pebble/);
    assert.equal(served.cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const root = new X509Certificate(pebbleRoot);
    assert.ok(served.chain.at(-1)!.checkIssued(root) || served.chain.at(-1)!.fingerprint256 === root.fingerprint256,
      'the served chain ends at (or under) Pebble\'s root');
  });

  test('nginx was reloaded once through privd, not restarted: same master pid', async () => {
    const now = await nginxState();
    assert.equal(now.mainPid, before0.mainPid);
    assert.equal(now.reloads, before0.reloads + 1);
    assert.equal((await sh('systemctl is-active nginx.service')).trim(), 'active');
  });

  test('the journal shows each daemon that ran started by its socket, ready and serving on inherited fd 3', async () => {
    const journal = await sh('journalctl -o cat --no-pager -u "certsep-*.service"');
    // For a Type=notify unit systemd logs "Started" only once the daemon has sent READY=1; its
    // "ready" log line carries the same place as its STATUS= ("serving on inherited fd 3").
    daemonsThatRan = DAEMONS.filter((d) => new RegExp(`Started certsep-${d}\\.service`).test(journal));
    console.log(`# daemons socket-activated by the run: ${daemonsThatRan.join(', ')}`);
    // A webroot renewal needs all but netd (leases are only for exposures).
    for (const d of ['deployd', 'keyd', 'acmed', 'privd']) assert.ok(daemonsThatRan.includes(d), `${d} ran`);
    for (const d of daemonsThatRan) {
      const own = await sh(`journalctl -o cat --no-pager -u certsep-${d}.service`);
      const ready = own.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; listen?: string })
        .find((l) => l.msg === 'ready');
      assert.equal(ready?.listen, 'inherited fd 3', `${d}'s ready line`);
    }
  });

  test('within idle-exit and a few seconds no certsep process runs; every daemon said why it stopped', async () => {
    const since = Date.now();
    await waitFor(() => certsepProcesses().length === 0, (IDLE_EXIT_SECONDS + 10) * 1000,
      `every certsep process to exit after ${IDLE_EXIT_SECONDS}s idle`, 250);
    console.log(`# last certsep process gone ${seconds(since)} after the checks above`);
    for (const d of daemonsThatRan) {
      assert.equal((await c().exec(['systemctl', 'is-active', `certsep-${d}.service`])).stdout.trim(), 'inactive', d);
      assert.equal((await c().exec(['systemctl', 'is-active', `certsep-${d}.socket`])).stdout.trim(), 'active', d);
      const own = await sh(`journalctl -o cat --no-pager -u certsep-${d}.service`);
      assert.match(own, new RegExp(`"why":"idle for ${IDLE_EXIT_SECONDS}s"`), d);
    }
  });

  test('certsep-renew.service, as the timer starts it, finds nothing due and counts that as success', async () => {
    const since = Date.now();
    const r = await c().exec(['systemctl', 'start', 'certsep-renew.service']);
    console.log(`# systemctl start certsep-renew.service: ${seconds(since)}`);
    assert.equal(r.code, 0, r.stderr);
    const shown = await sh('systemctl show -P Result certsep-renew.service; systemctl show -P ExecMainStatus certsep-renew.service');
    assert.deepEqual(shown.trim().split('\n'), ['success', '2']);
  });

  test('a second certsepctl renew --all exits 2: nothing is due, nginx is left alone', async () => {
    const run = await renewAll();
    console.log(`# second certsepctl renew --all: ${run.seconds.toFixed(1)} s`);
    assert.equal(run.code, 2, run.output);
    const now = await nginxState();
    assert.equal(now.reloads, before0.reloads + 1);
    assert.equal(now.mainPid, before0.mainPid);
  });
});
