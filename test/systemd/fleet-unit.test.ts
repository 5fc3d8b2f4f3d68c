// deployd's ssh under its real unit: `install --fleet` in a booted systemd 252, then a run that
// must reach a host over ssh from inside deployd's sandbox (no capabilities, ProtectSystem=strict,
// the system call filter, MemoryDenyWriteExecute) with the fleet drop-in giving it network.
// The "host" is the container itself: an sshd on a loopback port whose only key is deployd's,
// forced to `certsepctl remote-serve` with a config of its own (users.remote) in which nothing
// listens behind it, so its answer to `status` is E_UNAVAILABLE. That answer, and the remote
// audit naming deployd's key, prove ssh ran, trusted only the pinned host key, authenticated with
// deployd's identity and carried the protocol. Without the drop-in, the same run cannot connect.
// (The full remote role with its own keyd and privd is test/fleet's, in network namespaces.)
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../harness/ports.ts';
import { waitFor } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { fingerprintOf } from '../../remote/ssh-identity.ts';
import { bootContainer, copySuite, ensureRootfs, SUITE_SOURCE, type Container } from './container.ts';

const DIST = process.env['CERTSEP_SYSTEMD_DIST'] ?? join(REPO, 'dist');
const STUB = '/etc/certsep-stub';

let box: Container | undefined;
let sshPort = 0;

function c(): Container {
  assert.ok(box, 'the container did not boot');
  return box;
}

function sh(script: string): Promise<string> {
  return c().sh(script);
}

function centralConfig(hostKey: string): string {
  return `# certsep test config: one certificate delivered to one host over ssh
hosts:
  self:
    address: 127.0.0.1
    port: ${sshPort}
    hostKeys: ["${hostKey}"]
    connectTimeoutSeconds: 3
certificates:
  - name: fleet
    domains: [fleet.certsep.test]
    hosts: [self]
    challenge: { type: http-01-webroot, webroot: /var/www/acme }
`;
}

async function prepareRoot(root: string): Promise<void> {
  copySuite(root, DIST);
  mkdirSync(join(root, STUB), { recursive: true });
  const hostKey = readFileSync(join(root, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  mkdirSync(join(root, 'etc/certsep'), { recursive: true });
  writeFileSync(join(root, 'etc/certsep/certsep.yaml'), centralConfig(hostKey), { mode: 0o644 });
  writeFileSync(join(root, STUB, 'certsep.yaml'), `users: { remote: certsep-remote }
paths: { runDir: /run/certsep-stub, stateDir: /var/lib/certsep-stub, auditDir: /var/log/certsep-stub }
`, { mode: 0o644 });
  writeFileSync(join(root, STUB, 'sshd_config'), `ListenAddress 127.0.0.1:${sshPort}
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/certsep-stub-sshd.pid
UsePAM no
AllowUsers certsep-remote
AuthorizedKeysFile ${STUB}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
ExposeAuthInfo yes
DisableForwarding yes
PermitTTY no
`, { mode: 0o644 });
}

interface AuditRecord {
  method: string;
  outcome: string;
  code?: string;
  detail?: { ssh?: { keyFingerprint: string | null } };
}

async function stubAudit(): Promise<AuditRecord[]> {
  return (await sh('cat /var/log/certsep-stub/remote.audit.jsonl')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditRecord);
}

describe("deployd's ssh inside its hardened unit (install --fleet)", { timeout: 300_000 }, () => {
  before(async () => {
    await ensureRootfs();
    sshPort = await freePort();
    box = await bootContainer(prepareRoot);
    const install = await box.exec([`${SUITE_SOURCE}/install`, '--fleet']);
    assert.equal(install.code, 0, `install --fleet failed:\n${install.stdout}\n${install.stderr}`);
    const publicKey = (await sh('cat /var/lib/certsep/deployd/ssh/id_ed25519.pub')).trim();
    // The stub remote: its user, its audit file, and deployd's key forced to remote-serve.
    await sh([
      'useradd --system --shell /bin/sh --home-dir / --no-create-home certsep-remote',
      'usermod -p "*" certsep-remote',
      'install -d -m 0755 /var/log/certsep-stub /run/sshd',
      'install -m 0640 -o certsep-remote -g certsep-remote /dev/null /var/log/certsep-stub/remote.audit.jsonl',
      `printf '%s\\n' 'command="/usr/bin/certsepctl --config ${STUB}/certsep.yaml remote-serve",restrict ${publicKey}' > ${STUB}/authorized_keys`,
      `chmod 0644 ${STUB}/authorized_keys`,
      `systemd-run --unit certsep-stub-sshd /usr/sbin/sshd -D -e -f ${STUB}/sshd_config`,
    ].join(' && '));
    await waitFor(async () => (await c().exec(['sh', '-c', `exec 3<>/dev/tcp/127.0.0.1/${sshPort}`])).code === 0 || undefined, 20_000, 'the stub sshd').catch(() => undefined);
  });

  after(async () => {
    await box?.stop();
  });

  test('with the fleet drop-in, deployd reaches the host over ssh: pinned host key, its own identity, the forced command answering', async () => {
    const publicKey = (await sh('cat /var/lib/certsep/deployd/ssh/id_ed25519.pub')).trim();
    const run = await c().exec(['certsepctl', 'renew', '--all']);
    const output = `${run.stdout}${run.stderr}`;
    assert.equal(run.code, 1, output);
    assert.match(output, /@self\s+failed\s+-\s+connect: E_UNAVAILABLE .*privd/, 'the answer came from remote-serve behind ssh');
    const records = await stubAudit();
    const status = records.find((r) => r.method === 'status');
    assert.ok(status, `remote-serve audited the status call: ${JSON.stringify(records)}`);
    assert.equal(status.detail?.ssh?.keyFingerprint, fingerprintOf(publicKey.split(' ')[1]!), "and named deployd's key");
    const shown = await sh('systemctl show -p PrivateNetwork,RestrictAddressFamilies,NoNewPrivileges,ProtectSystem,MemoryDenyWriteExecute certsep-deployd.service');
    const unit = Object.fromEntries(shown.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.deepEqual(unit, { PrivateNetwork: 'no', RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX', NoNewPrivileges: 'yes', ProtectSystem: 'strict', MemoryDenyWriteExecute: 'yes' }, 'the rest of the sandbox held');
  });

  test('without the drop-in deployd has no network, and the same run cannot connect', async () => {
    await sh('rm /etc/systemd/system/certsep-deployd.service.d/fleet.conf && systemctl daemon-reload && systemctl stop certsep-deployd.service');
    const before = (await stubAudit()).length;
    const run = await c().exec(['certsepctl', 'renew', '--all']);
    const output = `${run.stdout}${run.stderr}`;
    assert.equal(run.code, 1, output);
    assert.match(output, /@self\s+failed\s+-\s+connect: E_(HOST_UNREACHABLE|SSH) .*install --fleet gives its unit network/);
    assert.equal((await stubAudit()).length, before, 'nothing reached the host');
  });
});
