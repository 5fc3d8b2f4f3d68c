// A config edit under a booted systemd 252, with the installed units, socket-activated daemons,
// a real nginx in the container and the host's Pebble: an added certificate renews with no
// restart of any daemon, a CA's new profile is in acmed's next order, `systemctl reload` (the
// units' ExecReload, SIGHUP) makes every running daemon read the file, and a broken edit is
// refused with its line (journal, audit, systemctl's status text) while the config in force keeps
// renewing. The daemons get a long idle exit here, so "no restart" is seen as the same MainPID.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { waitFor } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { bootContainer, copySuite, ensureRootfs, SUITE_SOURCE, type Container } from './container.ts';

const DAEMONS = ['privd', 'keyd', 'acmed', 'netd', 'deployd'] as const;
const RENEWING = ['deployd', 'privd', 'keyd', 'acmed'] as const;
const DIST = process.env['CERTSEP_SYSTEMD_DIST'] ?? join(REPO, 'dist');
const CONFIG = '/etc/certsep/certsep.yaml';
const GOOD = '/root/certsep-good.yaml';
const WEBROOT = '/var/www/acme';
const TRUST_BUNDLE = '/etc/certsep/pebble-https-ca.pem';
// Pebble's issuing roots: privd, under its hardened unit, reads them at each install.
const PEBBLE_ROOTS = '/etc/certsep/pebble-roots.pem';

interface AuditLine {
  method: string;
  outcome: string;
  message?: string;
  detail?: { trigger?: string };
}

let box: Container | undefined;
let pebble: Pebble | undefined;

function c(): Container {
  assert.ok(box, 'the container did not boot');
  return box;
}

/** certsep.yaml with the given certificates (each a webroot renewal into /srv/certsep/<name>) and CA settings. */
function config(p: Pebble, names: string[], ca = ''): string {
  const certificates = names.map((name) => `  - name: ${name}
    domains: [${name}.certsep.test]
    challenge: { type: http-01-webroot, webroot: ${WEBROOT} }
    targets:
      - dir: /srv/certsep/${name}
        files: [fullchain, privkey]
        services: [nginx]
`).join('');
  return `cas:
  default:
    directory: ${p.directoryUrl}
    trustBundle: ${TRUST_BUNDLE}
    roots: ${PEBBLE_ROOTS}
${ca}services:
  nginx:
    check: [["nginx", "-t"]]
    reload: { systemd: nginx.service, action: reload }
certificates:
${certificates}`;
}

function writeConfig(text: string): void {
  writeFileSync(join(c().root, CONFIG), text);
}

async function mainPids(): Promise<Record<string, string>> {
  const out = await c().sh(RENEWING.map((d) => `systemctl show -P MainPID certsep-${d}.service`).join('; '));
  return Object.fromEntries(out.trim().split('\n').map((pid, i) => [RENEWING[i], pid]));
}

async function certsepctl(...args: string[]): Promise<{ code: number | null; output: string }> {
  const r = await c().exec(['certsepctl', ...args]);
  return { code: r.code, output: `${r.stdout}${r.stderr}` };
}

describe('a config edit under a booted systemd', { timeout: 300_000 }, () => {
  let pids: Record<string, string> = {};

  before(async () => {
    await ensureRootfs();
    pebble = await startPebble();
    const p = pebble;
    box = await bootContainer((root) => {
      copySuite(root, DIST);
      mkdirSync(join(root, 'etc/certsep'), { recursive: true });
      for (const [from, to] of [[p.caBundlePath, TRUST_BUNDLE], [p.rootsPath, PEBBLE_ROOTS]] as const) {
        copyFileSync(from, join(root, to));
        chmodSync(join(root, to), 0o644);
      }
      writeFileSync(join(root, CONFIG), config(p, ['web']), { mode: 0o644 });
      // The targets' one existing parent: install opens it in privd's sandbox (ReadWritePaths), so
      // a certificate added later with a target below it needs no new install.
      mkdirSync(join(root, 'srv/certsep'), { recursive: true, mode: 0o755 });
      mkdirSync(join(root, WEBROOT), { recursive: true });
      // The container shares the host's network: nginx serves only the webroot, on Pebble's port.
      rmSync(join(root, 'etc/nginx/sites-enabled/default'), { force: true });
      const site = `server {\n  listen 127.0.0.1:${p.httpPort};\n  root ${WEBROOT};\n}\n`;
      writeFileSync(join(root, 'etc/nginx/sites-enabled/certsep-test'), site);
      // Test-only: the daemons stay up between the steps, so a restart would show as a new MainPID.
      for (const d of DAEMONS) {
        const dropins = join(root, `etc/systemd/system/certsep-${d}.service.d`);
        mkdirSync(dropins, { recursive: true });
        writeFileSync(join(dropins, 'test.conf'), '[Service]\nEnvironment=CERTSEP_IDLE_EXIT_SECONDS=600\n');
      }
    });
    const install = await box.exec([`${SUITE_SOURCE}/install`]);
    assert.equal(install.code, 0, `install failed:\n${install.stdout}\n${install.stderr}`);
    // privd installs into target directories that exist (root's alone); an admin makes them.
    await box.sh('mkdir -m 0755 /srv/certsep/web');
    const first = await certsepctl('renew', '--all');
    assert.equal(first.code, 0, first.output);
    pids = await mainPids();
    for (const d of RENEWING) assert.notEqual(pids[d], '0', `${d} runs after the first renewal`);
  });

  after(async () => {
    await box?.stop();
    await pebble?.stop();
  });

  test('a certificate added to certsep.yaml renews with certsepctl renew NAME, and no daemon restarted', async () => {
    await c().sh('mkdir -m 0755 /srv/certsep/second');
    writeConfig(config(pebble!, ['web', 'second']));
    const r = await certsepctl('renew', 'second');
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /1 renewed/);
    assert.equal((await c().sh('head -n 1 /srv/certsep/second/fullchain.pem')).trim(), '-----BEGIN CERTIFICATE-----');
    assert.deepEqual(await mainPids(), pids);
  });

  test('a CA\'s new profile is in acmed\'s next order', async () => {
    writeConfig(config(pebble!, ['web', 'second'], '    profile: shortlived\n'));
    const r = await certsepctl('renew', '--force', 'web');
    assert.equal(r.code, 0, r.output);
    const journal = await c().sh('journalctl -o cat --no-pager -u certsep-acmed.service');
    const orders = journal.split('\n').filter((l) => l.includes('"msg":"order created"'))
      .map((l) => JSON.parse(l) as { cert: string; profile?: string });
    assert.deepEqual(orders.map((o) => `${o.cert}:${o.profile ?? '-'}`), ['web:-', 'second:-', 'web:shortlived']);
    assert.deepEqual(await mainPids(), pids);
  });

  test('systemctl reload makes each daemon read a broken edit, refused with its line; the old one renews', async () => {
    await c().sh(`cp ${CONFIG} ${GOOD}`);
    writeConfig(`${config(pebble!, ['web', 'second'], '    profile: shortlived\n')}  - name: [broken\n`);
    await c().sh(`systemctl reload ${RENEWING.map((d) => `certsep-${d}.service`).join(' ')}`);
    // ExecReload only sends the signal: each daemon's answer to it is waited for.
    for (const d of RENEWING) {
      const refusal = await waitFor(async () => {
        const audit = await c().sh(`cat /var/log/certsep/${d}.audit.jsonl`);
        return audit.trim().split('\n').map((l) => JSON.parse(l) as AuditLine)
          .find((r) => r.method === 'config.reload' && r.outcome === 'refused');
      }, 20_000, `${d} to refuse the edit`, 200);
      assert.match(refusal.message ?? '', /^certsep\.yaml:\d+: YAML syntax error/, d);
      assert.equal(refusal.detail?.trigger, 'SIGHUP', d);
      const journal = await c().sh(`journalctl -o cat --no-pager -u certsep-${d}.service`);
      assert.match(journal, /"msg":"config edit refused; keeping the config in force"/, d);
      const statusText = () => c().sh(`systemctl show -P StatusText certsep-${d}.service`);
      const shown = /REFUSED the file's newest edit: certsep\.yaml:\d+: YAML syntax error/;
      await waitFor(async () => shown.test(await statusText()), 20_000, `${d}'s status text to show the refusal`, 200);
    }
    const renewed = await certsepctl('--config', GOOD, 'renew', '--force', 'second');
    assert.equal(renewed.code, 0, renewed.output);
    const status = await certsepctl('--config', GOOD, 'status');
    assert.equal(status.code, 1, status.output);
    assert.match(status.output, /REFUSED \/etc\/certsep\/certsep\.yaml as it is now \(E_CONFIG\)/);
    assert.deepEqual(await mainPids(), pids);
  });

  test('a schema error is refused at the next request; mended, certsepctl reload shows each daemon on it', async () => {
    writeConfig(config(pebble!, ['web', 'second', 'exa mple']));
    const renewed = await certsepctl('--config', GOOD, 'renew', '--force', 'web');
    assert.equal(renewed.code, 0, renewed.output);
    const status = await certsepctl('--config', GOOD, 'status');
    assert.equal(status.code, 1);
    assert.match(status.output, /^ {2}certsep\.yaml:\d+: certificates\[2\]\.name: /m);
    await c().sh(`cp ${GOOD} ${CONFIG}`);
    const reload = await certsepctl('reload');
    assert.equal(reload.code, 0, reload.output);
    for (const d of RENEWING) {
      assert.match(reload.output, new RegExp(`^${d}: runs /etc/certsep/certsep\\.yaml \\(sha256 [0-9a-f]{12}, `, 'm'));
    }
    assert.match(reload.output, /^netd: not running; it reads \/etc\/certsep\/certsep\.yaml when it starts$/m);
    assert.deepEqual(await mainPids(), pids);
  });
});
