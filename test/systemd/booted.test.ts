// certsep's units and installer under a real systemd 252 booted in systemd-nspawn: install inside
// the running system, socket activation, idle exit, the sandboxes proven from inside the real
// units, a second install that changes nothing, and an uninstall that leaves nothing behind.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../harness/ports.ts';
import { waitFor } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { bootContainer, containerProcesses, copySuite, ensureRootfs, SUITE_SOURCE, type Container } from './container.ts';

const DAEMONS = ['privd', 'keyd', 'acmed', 'netd', 'deployd'] as const;
type Daemon = (typeof DAEMONS)[number];
const IDLE_EXIT_SECONDS = 5;
// CERTSEP_SYSTEMD_DIST: test another build of the suite than ./dist.
const DIST = process.env['CERTSEP_SYSTEMD_DIST'] ?? join(REPO, 'dist');
const SRC = SUITE_SOURCE;
const PROBE = '/opt/certsep-probe/sandbox-probe.mjs';
const REWRITE = '/opt/certsep-probe/rewrite-own-log.mjs';

// What each unit's probe tries; the expected outcome is asserted in the tests below.
const PROBE_ARGS: Record<Daemon, string[]> = {
  privd: ['--write', '/etc/certsep-probe', '--write', '/usr/lib/certsep/probe', '--write', '/var/lib/certsep/keyd/probe',
    '--write', '/var/lib/certsep/privd/probe', '--write', '/etc/nginx/certsep-probe',
    '--run', 'nginx,-t', '--run', 'systemctl,reload,nginx.service'],
  keyd: ['--write', '/etc/certsep-probe', '--write', '/var/lib/certsep/keyd/probe', '--write', '/var/lib/certsep/acmed/probe'],
  acmed: ['--write', '/etc/certsep-probe', '--write', '/var/lib/certsep/acmed/probe', '--write', '/var/lib/certsep/keyd/probe',
    '--write', '/var/www/acme/.well-known/acme-challenge/probe'],
  netd: ['--write', '/etc/certsep-probe', '--write', '/var/lib/certsep/netd/probe'],
  deployd: ['--write', '/etc/certsep-probe', '--write', '/var/lib/certsep/deployd/probe', '--write', '/var/lib/certsep/keyd/probe'],
};

interface Probe {
  daemon: string;
  uid: number;
  capEff: string;
  noNewPrivs: string;
  seccomp: string;
  inet: string;
  writes: Record<string, string>;
  runs: Record<string, string | number>;
}

let box: Container | undefined;
let nginxPort = 0;

function c(): Container {
  assert.ok(box, 'the container did not boot');
  return box;
}

function sh(script: string): Promise<string> {
  return c().sh(script);
}

function testConfig(): string {
  return `# certsep test config for the booted container
cas:
  default:
    directory: https://127.0.0.1:14000/dir
services:
  nginx:
    check: [["nginx", "-t"]]
    reload: { systemd: nginx.service, action: reload }
certificates:
  - name: web
    domains: [web.certsep.test]
    challenge: { type: http-01-webroot, webroot: /var/www/acme }
    targets:
      - dir: /etc/nginx/certsep/web
        files: [fullchain, privkey]
        services: [nginx]
`;
}

function prepareRoot(root: string): void {
  copySuite(root, DIST);
  mkdirSync(join(root, 'opt/certsep-probe'), { recursive: true });
  cpSync(join(import.meta.dirname, 'sandbox-probe.mjs'), join(root, PROBE));
  cpSync(join(REPO, 'test', 'audit', 'rewrite-own-log.mjs'), join(root, REWRITE));
  // An existing config: install must keep it.
  mkdirSync(join(root, 'etc/certsep'), { recursive: true });
  writeFileSync(join(root, 'etc/certsep/certsep.yaml'), testConfig(), { mode: 0o644 });
  // The container shares the host's network: nginx must not take the host's port 80.
  rmSync(join(root, 'etc/nginx/sites-enabled/default'), { force: true });
  writeFileSync(join(root, 'etc/nginx/sites-enabled/certsep-test'),
    `server {\n  listen 127.0.0.1:${nginxPort};\n  root /var/www/acme;\n}\n`);
  mkdirSync(join(root, 'var/www/acme'), { recursive: true });
  // Test-only: a short idle exit, and the sandbox probe run inside each real unit.
  for (const d of DAEMONS) {
    const dropins = join(root, `etc/systemd/system/certsep-${d}.service.d`);
    mkdirSync(dropins, { recursive: true });
    writeFileSync(join(dropins, 'test.conf'), `[Service]
Environment=CERTSEP_IDLE_EXIT_SECONDS=${IDLE_EXIT_SECONDS}
ExecStartPost=/usr/bin/node --jitless ${PROBE} ${d} ${PROBE_ARGS[d].join(' ')}
`);
  }
}

/** The container's processes that run a program of the suite, as "pid command line". */
function certsepProcesses(): string[] {
  return containerProcesses(c(), /\/usr\/lib\/certsep\//);
}

async function mainPid(daemon: Daemon): Promise<number> {
  return Number((await sh(`systemctl show -P MainPID certsep-${daemon}.service`)).trim());
}

async function activate(daemon: Daemon): Promise<void> {
  await sh(`node -e 'require("net").connect("/run/certsep/${daemon}.sock").on("connect", function () { this.end(); })'`);
  await waitFor(async () => (await c().exec(['systemctl', 'is-active', `certsep-${daemon}.service`])).stdout.trim() === 'active',
    30_000, `certsep-${daemon}.service to be active`, 200);
}

async function probeOf(daemon: Daemon): Promise<Probe> {
  const line = await waitFor(async () => {
    const journal = await c().exec(['journalctl', '-o', 'cat', '--no-pager', '-u', `certsep-${daemon}.service`]);
    return journal.stdout.split('\n').reverse().find((l) => l.startsWith('certsep-probe '));
  }, 30_000, `the probe line of ${daemon}`, 300);
  return JSON.parse(line.slice('certsep-probe '.length)) as Probe;
}

// Paths, modes, owners and content hashes of everything install writes (not the logs' content).
const MANIFEST = `find /usr/lib/certsep /usr/bin/certsepctl /etc/certsep /usr/lib/sysusers.d/certsep.conf \
  /usr/lib/tmpfiles.d/certsep.conf /usr/share/doc/certsep /var/lib/certsep /var/log/certsep /var/www/acme \
  /etc/systemd/system -path '*certsep*' -printf '%p %M %u:%g %l\\n' | sort;
  find /usr/lib/certsep /etc/certsep /etc/systemd/system -path '*certsep*' -type f -exec sha256sum {} + | sort;
  grep '^certsep' /etc/passwd /etc/group`;

describe('certsep under a booted systemd', { timeout: 900_000 }, () => {
  before(async () => {
    const debootstrapSeconds = await ensureRootfs();
    console.log(`# debootstrap: ${debootstrapSeconds > 0 ? `${debootstrapSeconds.toFixed(1)} s` : 'cached rootfs reused'}`);
    nginxPort = await freePort();
    const booted = await bootContainer(prepareRoot);
    box = booted;
    console.log(`# copy + boot to is-system-running: ${booted.bootSeconds.toFixed(1)} s`);
    const started = Date.now();
    const install = await box.exec([`${SRC}/install`]);
    assert.equal(install.code, 0, `install failed:\n${install.stdout}\n${install.stderr}`);
    console.log(`# install: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  after(async () => {
    await box?.stop();
  });

  test('install leaves the five sockets listening with their owners, and no certsep process running', async () => {
    for (const d of DAEMONS) {
      assert.equal((await c().exec(['systemctl', 'is-active', `certsep-${d}.socket`])).stdout.trim(), 'active', d);
      assert.equal((await c().exec(['systemctl', 'is-active', `certsep-${d}.service`])).stdout.trim(), 'inactive', d);
    }
    const sockets = await sh('stat -c "%n %U:%G %a %F" /run/certsep/*.sock');
    assert.deepEqual(sockets.trim().split('\n').sort(), [
      '/run/certsep/acmed.sock certsep-acme:certsep-clients 660 socket',
      '/run/certsep/deployd.sock certsep-deploy:certsep-clients 660 socket',
      '/run/certsep/keyd.sock certsep-key:certsep-keyclients 660 socket',
      '/run/certsep/netd.sock certsep-net:certsep-clients 660 socket',
      '/run/certsep/privd.sock root:certsep-clients 660 socket',
    ]);
    assert.deepEqual(certsepProcesses(), []);
  });

  test('systemctl list-timers shows the renew timer', async () => {
    const timers = await sh('systemctl list-timers --all --no-pager certsep-renew.timer');
    assert.match(timers, /certsep-renew\.timer\s+certsep-renew\.service/);
  });

  test('systemd-analyze verify accepts every installed unit without a word on stderr', async () => {
    const r = await c().exec(['sh', '-c', 'systemd-analyze verify /etc/systemd/system/certsep-*.service /etc/systemd/system/certsep-*.socket /etc/systemd/system/certsep-*.timer']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test('a connection starts each daemon by socket activation; it reports READY and STATUS, and exits when idle', async () => {
    for (const d of DAEMONS) {
      await activate(d);
      const status = (await sh(`systemctl show -P StatusText certsep-${d}.service`)).trim();
      assert.match(status, /^serving on inherited fd 3/, d);
    }
    const journal = await sh('journalctl -o cat --no-pager -u "certsep-*.service"');
    for (const d of DAEMONS) assert.match(journal, new RegExp(`Started certsep-${d}\\.service|Started certsep ${d}`), d);
    await waitFor(() => certsepProcesses().length === 0, (IDLE_EXIT_SECONDS + 15) * 1000,
      `every certsep process to exit after ${IDLE_EXIT_SECONDS}s idle`, 500);
    for (const d of DAEMONS) {
      assert.equal((await c().exec(['systemctl', 'is-active', `certsep-${d}.service`])).stdout.trim(), 'inactive', d);
      assert.equal((await c().exec(['systemctl', 'is-active', `certsep-${d}.socket`])).stdout.trim(), 'active', d);
    }
    const stopping = await sh('journalctl -o cat --no-pager -u "certsep-*.service"');
    assert.match(stopping, /idle for 5s/);
  });

  test('keyd has no network: only lo in its namespace, and socket(AF_INET) fails', async () => {
    await activate('keyd');
    const pid = await mainPid('keyd');
    const links = (await sh(`tail -n +3 /proc/${pid}/net/dev | cut -d: -f1 | tr -d ' '`)).trim().split('\n');
    assert.deepEqual(links, ['lo']);
    const probe = await probeOf('keyd');
    assert.equal(probe.inet, 'EAFNOSUPPORT');
    assert.equal(probe.writes['/etc/certsep-probe'], 'EROFS');
    assert.equal(probe.writes['/var/lib/certsep/keyd/probe'], 'ok');
    assert.equal(probe.writes['/var/lib/certsep/acmed/probe'], 'EACCES');
  });

  test('acmed cannot write /etc, keyd\'s store or anything but its state dir and the webroot', async () => {
    await activate('acmed');
    const pid = await mainPid('acmed');
    // In the real daemon's mount namespace even root gets a read-only /etc.
    const r = await c().exec(['nsenter', '-t', String(pid), '-m', 'touch', '/etc/certsep-probe']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Read-only file system/);
    const probe = await probeOf('acmed');
    assert.equal(probe.writes['/etc/certsep-probe'], 'EROFS');
    assert.equal(probe.writes['/var/lib/certsep/acmed/probe'], 'ok');
    assert.equal(probe.writes['/var/lib/certsep/keyd/probe'], 'EACCES');
    assert.equal(probe.writes['/var/www/acme/.well-known/acme-challenge/probe'], 'ok');
    assert.equal(probe.inet, 'ok');
  });

  test('netd runs with CAP_NET_ADMIN as its only effective capability', async () => {
    await activate('netd');
    const pid = await mainPid('netd');
    const status = await sh(`grep -E '^(Uid|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/${pid}/status`);
    assert.match(status, /^CapEff:\s*0000000000001000$/m);
    assert.match(status, /^CapBnd:\s*0000000000001000$/m);
    assert.match(status, /^NoNewPrivs:\s*1$/m);
    assert.doesNotMatch(status, /^Uid:\s*0\b/m);
    const probe = await probeOf('netd');
    assert.equal(probe.capEff, '0000000000001000');
    assert.equal(probe.writes['/etc/certsep-probe'], 'EROFS');
  });

  test('deployd has no network and writes only its state dir', async () => {
    await activate('deployd');
    const probe = await probeOf('deployd');
    assert.equal(probe.inet, 'EAFNOSUPPORT');
    assert.equal(probe.capEff, '0000000000000000');
    assert.equal(probe.writes['/etc/certsep-probe'], 'EROFS');
    assert.equal(probe.writes['/var/lib/certsep/deployd/probe'], 'ok');
    assert.equal(probe.writes['/var/lib/certsep/keyd/probe'], 'EACCES');
  });

  test('privd cannot write outside its ReadWritePaths, yet runs nginx -t and systemctl reload nginx', async () => {
    const reloadsBefore = (await sh('journalctl -o cat --no-pager -u nginx.service | grep -c "Reloaded" || true')).trim();
    await activate('privd');
    const pid = await mainPid('privd');
    const status = await sh(`grep -E '^(Uid|CapEff):' /proc/${pid}/status`);
    assert.match(status, /^Uid:\s*0\b/m);
    // CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER and nothing else.
    assert.match(status, /^CapEff:\s*000000000000000b$/m);
    const probe = await probeOf('privd');
    assert.equal(probe.writes['/etc/certsep-probe'], 'EROFS');
    assert.equal(probe.writes['/usr/lib/certsep/probe'], 'EROFS');
    // InaccessiblePaths: even root with CAP_DAC_OVERRIDE finds an empty read-only directory.
    assert.equal(probe.writes['/var/lib/certsep/keyd/probe'], 'EROFS');
    assert.equal(probe.writes['/var/lib/certsep/privd/probe'], 'ok');
    assert.equal(probe.writes['/etc/nginx/certsep-probe'], 'ok', 'the target dir\'s parent from the config drop-in');
    // nginx -t opens the listening sockets it checks, so privd keeps AF_INET (no packet passes).
    assert.equal(probe.runs['nginx,-t'], 0);
    assert.equal(probe.runs['systemctl,reload,nginx.service'], 0);
    const reloadsAfter = (await sh('journalctl -o cat --no-pager -u nginx.service | grep -c "Reloaded" || true')).trim();
    assert.equal(Number(reloadsAfter), Number(reloadsBefore) + 1);
  });

  test('each audit record is anchored in the journal, and a record keyd removed from its own log is found by audit verify', async () => {
    // Three refused calls as root: keyd records each, and sends each record's hash to journald.
    const refusedCall = `const s = require("net").connect("/run/certsep/keyd.sock", () => {
      const b = Buffer.from(JSON.stringify({ v: 1, id: 1, method: "test.anchor", params: {} }));
      const h = Buffer.alloc(4); h.writeUInt32BE(b.length); s.write(Buffer.concat([h, b])); });
      s.on("data", () => s.end());`;
    for (let i = 0; i < 3; i++) await c().exec(['node', '-e', refusedCall]);
    const records = Number((await sh('wc -l < /var/log/certsep/keyd.audit.jsonl')).trim());
    assert.ok(records >= 3, `${records} records`);
    // journald stores what it receives a moment later.
    const verified = await waitFor(async () => {
      const r = await c().exec(['certsepctl', 'audit', 'verify']);
      return r.stdout.includes(`keyd.audit.jsonl: OK, ${records} records (${records} anchored)`) ? r : undefined;
    }, 30_000, 'keyd\'s records anchored in the journal', 500);
    assert.equal(verified.code, 0, verified.stdout);
    await c().exec(['cp', '-p', '/var/log/certsep/keyd.audit.jsonl', '/root/keyd.audit.jsonl.intact']);
    try {
      const tamper = await c().exec(['setpriv', '--reuid=certsep-key', '--regid=certsep-key', '--clear-groups', 'node', REWRITE,
        '/var/log/certsep/keyd.audit.jsonl', 'drop', '2']);
      assert.equal(tamper.code, 0, tamper.stderr);
      const r = await c().exec(['certsepctl', 'audit', 'verify']);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /^keyd\.audit\.jsonl: BROKEN at line 2: record seq 2 is not the one anchored in the journal at \S+ /m);
    } finally {
      await c().exec(['cp', '-p', '/root/keyd.audit.jsonl.intact', '/var/log/certsep/keyd.audit.jsonl']);
    }
  });

  test('install run a second time changes nothing', async () => {
    const first = await sh(MANIFEST);
    const again = await c().exec([`${SRC}/install`]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /done: 0 file\(s\) written/);
    const second = await sh(MANIFEST);
    const lines = new Set(first.split('\n'));
    assert.deepEqual(second.split('\n').filter((l) => !lines.has(l)), [], 'lines that changed');
    assert.equal(second, first);
  });

  test('install --uninstall leaves no unit, user or socket, keeps keys and config; --purge removes those', async () => {
    const r = await c().exec([`${SRC}/install`, '--uninstall']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal((await sh('systemctl list-unit-files --no-legend "certsep*" | wc -l')).trim(), '0');
    assert.equal((await sh('systemctl list-units --all --no-legend "certsep*" | grep -v "not-found" | wc -l')).trim(), '0');
    assert.equal((await sh('grep -c "^certsep" /etc/passwd /etc/group || true')).trim(), '/etc/passwd:0\n/etc/group:0');
    assert.equal((await sh('ls /run/certsep 2>/dev/null | wc -l')).trim(), '0');
    assert.equal((await sh('ls /usr/lib/certsep /usr/bin/certsepctl 2>/dev/null | wc -l')).trim(), '0');
    await sh('test -d /var/lib/certsep/keyd && test -f /etc/certsep/certsep.yaml');
    const purge = await c().exec([`${SRC}/install`, '--uninstall', '--purge']);
    assert.equal(purge.code, 0, purge.stderr);
    await sh('test ! -e /var/lib/certsep && test ! -e /var/log/certsep && test ! -e /etc/certsep');
  });
});
