// The remote role as `install --remote-only` leaves it on a booted systemd 252: only privd and
// keyd (socket-activated), the certsep-remote account, the sshd_config.d snippet and the
// authorized key with its forced command. A real sshd in the container (on a loopback port; the
// container shares the host's network) reads the system's sshd_config with the snippet, and this
// test connects as the central host would (ssh with the authorized key) and speaks the protocol:
// keyd makes a key and answers with a CSR, privd answers status, each started by its socket and
// reached by remote-serve through the sockets' groups; other commands are refused; the remote's
// audit names the key. (test/fleet covers the whole fleet in network namespaces.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { RpcClient } from '../../proto/client.ts';
import type { RpcError } from '../../proto/errors.ts';
import { remoteApi } from '../../remote/api.ts';
import { fingerprintOf } from '../../remote/ssh-identity.ts';
import { freePort } from '../harness/ports.ts';
import { runCommand, waitFor, canConnect } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { bootContainer, copySuite, ensureRootfs, SUITE_SOURCE, type Container } from './container.ts';

const DIST = process.env['CERTSEP_SYSTEMD_DIST'] ?? join(REPO, 'dist');

let box: Container | undefined;
let hostDir = '';
let sshPort = 0;
let key = '';

function c(): Container {
  assert.ok(box, 'the container did not boot');
  return box;
}

function sh(script: string): Promise<string> {
  return c().sh(script);
}

const REMOTE_CONFIG = `# the remote role: certificates ordered and delivered by a central host
users: { remote: certsep-remote }
services:
  nginx:
    check: [["nginx", "-t"]]
    reload: { systemd: nginx.service }
certificates:
  - name: www
    domains: [www.remote.certsep.test]
    targets: [{ dir: /etc/nginx/certsep/www, files: [fullchain, privkey], services: [nginx] }]
`;

function sshArgs(extra: string[]): string[] {
  return ['-F', 'none', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-p', String(sshPort), '-l', 'certsep-remote', ...extra];
}

describe('the remote role under a booted systemd (install --remote-only)', { timeout: 300_000 }, () => {
  before(async () => {
    await ensureRootfs();
    hostDir = makeTempDir('systemd-remote-role');
    key = join(hostDir, 'central');
    const made = await runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'certsep-deployd@central', '-f', key]);
    assert.equal(made.code, 0, made.stderr);
    sshPort = await freePort();
    box = await bootContainer((root) => copySuite(root, DIST));
    const publicKey = readFileSync(`${key}.pub`, 'utf8').trim();
    const install = await box.exec([`${SUITE_SOURCE}/install`, '--remote-only', '--authorize-key', publicKey]);
    assert.equal(install.code, 0, `install --remote-only failed:\n${install.stdout}\n${install.stderr}`);
    await sh(`printf '%s' '${REMOTE_CONFIG}' > /etc/certsep/certsep.yaml && install -d -m 0755 /etc/nginx/certsep/www`);
    // The packaged ssh.service is masked in the test rootfs (shared network); the same sshd binary
    // and system config (with install's snippet), on a free loopback port instead of 22.
    await sh(`mkdir -p /run/sshd && systemd-run --unit test-sshd /usr/sbin/sshd -D -e -o ListenAddress=127.0.0.1:${sshPort} -o PidFile=/run/test-sshd.pid`);
    await waitFor(() => canConnect(sshPort), 20_000, 'the container\'s sshd');
  });

  after(async () => {
    await box?.stop();
    if (hostDir) removeTempDir(hostDir);
  });

  test('only privd and keyd are installed, and nothing of certsep runs before a connection', async () => {
    const units = (await sh("systemctl list-unit-files 'certsep-*' --no-legend | awk '{print $1}'")).trim().split('\n').sort();
    assert.deepEqual(units, ['certsep-keyd.service', 'certsep-keyd.socket', 'certsep-privd.service', 'certsep-privd.socket']);
    assert.equal((await sh('systemctl is-active certsep-keyd.service certsep-privd.service || true')).trim(), 'inactive\ninactive');
  });

  test("the central host's key speaks the protocol: keyd makes the key and returns a CSR, privd answers, both socket-activated", async () => {
    const child = spawn('ssh', sshArgs(['127.0.0.1', 'certsep-remote-serve']), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const client = RpcClient.over(remoteApi, Duplex.from({ readable: child.stdout, writable: child.stdin }), { timeoutMs: 60_000 });
    try {
      const csr = await client.call('csr.create', { cert: 'www', keyType: 'ec-p256' }).catch((e: RpcError) => assert.fail(`${e.code}: ${e.message}\n${stderr}`));
      assert.match(csr.csrPem, /^-----BEGIN CERTIFICATE REQUEST-----/);
      assert.equal(csr.newKey, true);
      const status = await client.call('status', { certs: ['www'] });
      assert.deepEqual(status.certs.map((s) => [s.cert, s.pending]), [['www', false]]);
      await assert.rejects(client.call('deploy.install', { cert: 'www', keyType: 'ec-p256', chainPem: 'not a chain', keyId: csr.keyId }), (e: unknown) => (e as RpcError).code === 'E_CHAIN');
    } finally {
      client.close();
      child.kill();
    }
    assert.equal((await sh('systemctl is-active certsep-keyd.service certsep-privd.service')).trim(), 'active\nactive');
    const keys = await sh('find /var/lib/certsep/keyd -type f -name "*.pem" | wc -l');
    assert.ok(Number(keys.trim()) >= 1, 'the key stays in the remote keyd\'s state dir');
  });

  test('any other command is refused by the forced command, and the audit names the key', async () => {
    const id = await runCommand('ssh', sshArgs(['127.0.0.1', 'id']), { timeoutMs: 30_000 });
    assert.notEqual(id.code, 0);
    assert.doesNotMatch(id.stdout, /uid=/);
    const records = (await sh('cat /var/log/certsep/remote.audit.jsonl')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { method: string; outcome: string; detail: { ssh: { keyFingerprint: string } } });
    const blob = readFileSync(`${key}.pub`, 'utf8').split(' ')[1]!;
    assert.deepEqual(records.map((r) => `${r.method}:${r.outcome}`), ['csr.create:ok', 'status:ok', 'deploy.install:error', 'ssh.exec:refused']);
    assert.ok(records.every((r) => r.detail.ssh.keyFingerprint === fingerprintOf(blob)), 'ExposeAuthInfo from the installed snippet gives remote-serve the key');
  });
});
