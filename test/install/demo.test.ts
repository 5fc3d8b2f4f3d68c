// `sudo ./install --demo`, the README's one command, run for real on this machine: it installs
// certsep globally (accounts, /usr/lib/certsep, /etc/certsep), starts Pebble on its fixed ports and
// the system nginx, so the test skips (saying why) when any of that belongs to someone else, and
// always ends with `install --demo --uninstall --purge`.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { after, test } from 'node:test';
import { StatusJson } from '../../ctl/status-json.ts';
import { requestText } from '../harness/http.ts';
import { canConnect, runCommand, type CommandResult } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';

const INSTALL = join(REPO, 'install');
const CONFIG = '/etc/certsep/certsep.yaml';
const DEMO_MARKER = '# certsep install --demo';
const PEBBLE_TLS_CA = '/var/lib/certsep-demo/pebble/ca.pem';
// Pebble ACME and management, its http-01 port (the demo nginx), the demo TLS server, challtestsrv.
const DEMO_PORTS = [14000, 15000, 5002, 8443, 8053, 8055];
const RUN_TIMEOUT_MS = 120_000;

function isDemoConfig(path: string): boolean {
  return existsSync(path) && readFileSync(path, 'utf8').startsWith(DEMO_MARKER);
}

function runInstall(...args: string[]): Promise<CommandResult> {
  return runCommand(INSTALL, args, { timeoutMs: RUN_TIMEOUT_MS });
}

async function whyNotRun(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root: install --demo creates accounts and starts root daemons';
  if (existsSync(CONFIG) && !isDemoConfig(CONFIG)) return `${CONFIG} exists and is not the demo's: this machine's certsep is not the test's to change`;
  // A demo left by an interrupted run is the test's own: removed before the port check.
  if (isDemoConfig(CONFIG)) await runInstall('--demo', '--uninstall', '--purge');
  for (const port of DEMO_PORTS) {
    if (await canConnect(port)) return `127.0.0.1:${port} is in use, and the demo needs it`;
  }
  return undefined;
}

const skip = await whyNotRun();

async function servedCertificate(rootPem: string): Promise<{ cert: PeerCertificate; authorized: boolean; error?: Error }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: 8443, servername: 'demo.certsep.test', ca: rootPem, rejectUnauthorized: false }, () => {
      resolve({ cert: socket.getPeerCertificate(), authorized: socket.authorized, error: socket.authorizationError });
      socket.end();
    });
    socket.once('error', reject);
  });
}

async function status(): Promise<StatusJson> {
  const r = await runCommand('certsepctl', ['status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return StatusJson.parse(JSON.parse(r.stdout));
}

function output(r: CommandResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

// Also after a failed assertion: the machine goes back to how the test found it.
after(async () => {
  if (!skip) await runInstall('--demo', '--uninstall', '--purge');
});

test('install --demo issues the demo certificate through the daemons and nginx serves it', { skip, timeout: RUN_TIMEOUT_MS * 2 }, async (t) => {
  const started = Date.now();
  const first = await runInstall('--demo');
  t.diagnostic(`first run: ${Date.now() - started} ms`);
  assert.equal(first.code, 0, output(first));
  assert.match(first.stdout, /install: renewed and installed/, output(first));
  // It ends with certsepctl status, whose table names the certificate.
  assert.match(first.stdout.trimEnd().split('\n').at(-1) ?? '', /^demo\s+demo\.certsep\.test\s+ec-p256\s+Pebble/, output(first));

  const root = await requestText('https://127.0.0.1:15000/roots/0', { ca: readFileSync(PEBBLE_TLS_CA) });
  assert.equal(root.status, 200);
  const served = await servedCertificate(root.body);
  assert.equal(served.authorized, true, `the served certificate does not chain to Pebble's root: ${served.error?.message}`);
  assert.match(String(served.cert.issuer.CN), /^Pebble Intermediate CA/);
  assert.equal(served.cert.subjectaltname, 'DNS:demo.certsep.test');

  const [cert] = (await status()).certs;
  assert.equal(cert?.cert, 'demo');
  const installed = cert.keyTypes[0]?.installed;
  assert.ok(installed, 'status shows no installed certificate');
  assert.equal(installed.serial.toUpperCase(), served.cert.serialNumber.toUpperCase());
  assert.deepEqual(cert.keyTypes[0]?.targets.map((target) => target.matches), [true]);
  assert.equal(cert.failing, false);

  const again = Date.now();
  const second = await runInstall('--demo');
  t.diagnostic(`second run: ${Date.now() - again} ms`);
  assert.equal(second.code, 0, output(second));
  assert.match(second.stdout, /1 not-due; exit 2/, output(second));
  assert.match(second.stdout, /install: nothing was due/, output(second));
  const [unchanged] = (await status()).certs;
  assert.equal(unchanged?.keyTypes[0]?.installed?.serial, installed.serial);
  assert.equal(unchanged?.lastSuccess, cert.lastSuccess);
});

test('install --demo --uninstall --purge stops the demo and removes what it installed', { skip }, async () => {
  const uninstalled = await runInstall('--demo', '--uninstall', '--purge');
  assert.equal(uninstalled.code, 0, output(uninstalled));
  for (const path of [CONFIG, '/usr/lib/certsep', '/usr/bin/certsepctl', '/var/lib/certsep-demo', '/etc/nginx/conf.d/certsep-demo.conf', '/run/certsep-demo']) {
    assert.equal(existsSync(path), false, `${path} is still there`);
  }
  for (const port of [14000, 15000, 8443]) assert.equal(await canConnect(port), false, `127.0.0.1:${port} still answers`);
  const users = await runCommand('getent', ['passwd', 'certsep-acme']);
  assert.equal(users.code, 2, 'the certsep-acme account is still there');
});
