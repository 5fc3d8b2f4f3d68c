// acmed's own http-01 listener under a booted systemd 252, as install leaves it: the drop-in's
// ListenStream= makes systemd hold the port beside acmed.sock, all the time, and pass it to acmed
// after its RPC socket (fd 4). No other user can bind the port, in the container or on the host
// (the container shares the host's network), not even while acmed is not running; a connection
// to it starts acmed, which answers. A real Pebble on the host validates through it.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { waitFor } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { execAs, TEST_IDS } from '../harness/uids.ts';
import { bootContainer, containerProcesses, copySuite, ensureRootfs, SUITE_SOURCE } from './container.ts';
import type { Container } from './container.ts';

const DIST = process.env['CERTSEP_SYSTEMD_DIST'] ?? join(REPO, 'dist');
const TRUST_BUNDLE = '/etc/certsep/pebble-https-ca.pem';
// Pebble's issuing roots: privd, under its hardened unit, reads them at each install.
const PEBBLE_ROOTS = '/etc/certsep/pebble-roots.pem';
const TARGET = '/srv/certsep/listen';
const IDLE_EXIT_SECONDS = 3;
// Binds 127.0.0.1:PORT as node does (SO_REUSEADDR); prints "bound" or the error code.
const BIND = "const s=require('net').createServer();s.once('error',e=>{console.log(e.code)});" +
  "s.listen(Number(process.argv[1]),'127.0.0.1',()=>{console.log('bound');s.close()})";

let box: Container | undefined;
let pebble: Pebble | undefined;

function c(): Container {
  assert.ok(box, 'the container did not boot');
  return box;
}

function testConfig(p: Pebble): string {
  return `cas:
  default: { directory: ${p.directoryUrl}, trustBundle: ${TRUST_BUNDLE}, roots: ${PEBBLE_ROOTS} }
certificates:
  - name: listen
    domains: [listen.certsep.test]
    challenge: { type: http-01-listener, address: 127.0.0.1, port: ${p.httpPort} }
    targets: [{ dir: ${TARGET}, files: [fullchain, privkey] }]
`;
}

function prepareRoot(root: string, p: Pebble): void {
  copySuite(root, DIST);
  mkdirSync(join(root, 'etc/certsep'), { recursive: true });
  for (const [from, to] of [[p.caBundlePath, TRUST_BUNDLE], [p.rootsPath, PEBBLE_ROOTS]] as const) {
    copyFileSync(from, join(root, to));
    chmodSync(join(root, to), 0o644);
  }
  writeFileSync(join(root, 'etc/certsep/certsep.yaml'), testConfig(p), { mode: 0o644 });
  mkdirSync(join(root, TARGET), { recursive: true, mode: 0o755 });
  const dropins = join(root, 'etc/systemd/system/certsep-acmed.service.d');
  mkdirSync(dropins, { recursive: true });
  writeFileSync(join(dropins, 'test.conf'), `[Service]\nEnvironment=CERTSEP_IDLE_EXIT_SECONDS=${IDLE_EXIT_SECONDS}\n`);
}

const acmedRuns = () => containerProcesses(c(), /certsep-acmed/).length > 0;

async function bindInContainer(port: number): Promise<string> {
  return (await c().sh(`setpriv --reuid=65534 --regid=65534 --clear-groups node -e "${BIND}" ${port}`)).trim();
}

async function bindOnHost(port: number): Promise<string> {
  const run = await execAs(TEST_IDS.other, process.execPath, ['-e', BIND, String(port)]);
  return run.stdout.trim();
}

function challengeStatus(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const path = '/.well-known/acme-challenge/none';
    const req = request({ host: '127.0.0.1', port, path, timeout: 20_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

describe("acmed's http-01 listener under a booted systemd", { timeout: 300_000 }, () => {
  let port = 0;

  before(async () => {
    await ensureRootfs();
    pebble = await startPebble();
    port = pebble.httpPort;
    const p = pebble;
    box = await bootContainer((root) => prepareRoot(root, p));
    const install = await box.exec([`${SUITE_SOURCE}/install`]);
    assert.equal(install.code, 0, `install failed:\n${install.stdout}\n${install.stderr}`);
  });
  after(async () => {
    await box?.stop();
    await pebble?.stop();
  });

  test('systemd listens on the port for acmed from the start, beside acmed.sock, with acmed not running', async () => {
    const listen = (await c().sh('systemctl show -P Listen certsep-acmed.socket')).trim().split('\n');
    assert.deepEqual(listen, ['/run/certsep/acmed.sock (Stream)', `127.0.0.1:${port} (Stream)`]);
    assert.equal(acmedRuns(), false);
  });

  test('no other uid can bind the port, in the container or on the host', async () => {
    assert.equal(await bindInContainer(port), 'EADDRINUSE');
    assert.equal(await bindOnHost(port), 'EADDRINUSE');
  });

  test('renew --all is validated through the port: acmed answers on the socket systemd passed it', async () => {
    const run = await c().exec(['certsepctl', 'renew', '--all']);
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    const journal = await c().sh('journalctl -o cat --no-pager -u certsep-acmed.service');
    const held = `"held":["127.0.0.1:${port}"],"msg":"answering http-01 on the listener ports held for acmed"`;
    assert.ok(journal.includes(held), journal);
    assert.match(journal, /"listen":"inherited fd 3"/, 'the RPC socket is fd 3, the listener after it');
  });

  test('after acmed exits idle the port stays held, and a connection to it starts acmed, which answers', async () => {
    await waitFor(() => !acmedRuns(), 30_000, 'acmed to exit idle');
    assert.equal(await bindOnHost(port), 'EADDRINUSE');
    assert.equal(await challengeStatus(port), 404);
    assert.equal(acmedRuns(), true, 'the connection started acmed');
  });
});
