// certsepctl remote-serve without ssh: the built certsepctl under the remote test uid, its stdin
// and stdout piped here as sshd would, a real keyd behind it. What ssh adds (the forced command,
// host keys, forwarding refused) is test/fleet's.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { RpcClient } from '../../proto/client.ts';
import type { RpcError } from '../../proto/errors.ts';
import { remoteApi } from '../../remote/api.ts';
import { fingerprintOf } from '../../remote/ssh-identity.ts';
import { runCommand, waitForExit } from '../harness/proc.ts';
import { assertBuilt, prepareDaemonDirs, startCertsepDaemon, testUsers, writeTestConfig, type RunningDaemon } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, setprivArgs, TEST_IDS } from '../harness/uids.ts';


describe('certsepctl remote-serve', () => {
  let dir: string;
  let configPath: string;
  let keyd: RunningDaemon;
  /** The base64 field of a real ed25519 public key: the central key sshd would name. */
  let BLOB: string;
  const ctl = () => assertBuilt('ctl');
  const audit = () => readFileSync(join(dir, 'audit', 'remote.audit.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const sshEnv = (extra: Record<string, string> = {}) => {
    const authInfo = join(dir, 'auth-info');
    writeFileSync(authInfo, `publickey ssh-ed25519 ${BLOB}\n`, { mode: 0o644 });
    return { PATH: process.env['PATH']!, SSH_CONNECTION: '10.0.0.1 40000 10.0.0.2 22', SSH_USER_AUTH: authInfo, ...extra };
  };

  before(async () => {
    dir = makeTempDir('remote-serve');
    configPath = writeTestConfig(dir, {
      users: { ...testUsers(), remote: TEST_IDS.remote.uid },
      certificates: [{ name: 'www', domains: ['www.example.com'], targets: [{ dir: join(dir, 'targets', 'www') }] }],
    });
    prepareDaemonDirs(dir, 'keyd', TEST_IDS.keyd);
    chownSync(join(dir, 'run'), TEST_IDS.keyd.uid, TEST_IDS.keyd.gid);
    writeFileSync(join(dir, 'audit', 'remote.audit.jsonl'), '', { mode: 0o640 });
    chownSync(join(dir, 'audit', 'remote.audit.jsonl'), TEST_IDS.remote.uid, TEST_IDS.remote.gid);
    const made = await runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'central')]);
    assert.equal(made.code, 0, made.stderr);
    BLOB = readFileSync(join(dir, 'central.pub'), 'utf8').split(' ')[1]!;
    keyd = await startCertsepDaemon('keyd', { configPath, socketPath: join(dir, 'run', 'keyd.sock'), logFile: join(dir, 'keyd.log') });
  });
  after(async () => {
    await keyd?.stop();
    if (dir) removeTempDir(dir);
  });

  it('refuses to run as any user but users.remote, before reading a byte', async () => {
    const asRoot = await runCommand(process.execPath, [ctl(), '--config', configPath, 'remote-serve'], { input: 'x', timeoutMs: 30_000 });
    assert.equal(asRoot.code, 78);
    assert.match(asRoot.stderr, /runs as the user named by users\.remote .* not uid 0/);
    const asDeployd = await execAs(TEST_IDS.deployd, process.execPath, [ctl(), '--config', configPath, 'remote-serve'], { timeoutMs: 30_000 });
    assert.equal(asDeployd.code, 78);
    assert.equal(audit().length, 0);
  });

  it('refuses any other command the ssh client asked for, and audits it with the key fingerprint and client address', async () => {
    const run = await execAs(TEST_IDS.remote, process.execPath, [ctl(), '--config', configPath, 'remote-serve'], {
      env: sshEnv({ SSH_ORIGINAL_COMMAND: 'cat /etc/shadow' }), timeoutMs: 30_000,
    });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '', 'nothing ran, nothing was printed');
    assert.match(run.stderr, /may only speak certsep's remote protocol/);
    const record = audit().at(-1)!;
    assert.deepEqual([record['method'], record['outcome'], record['code'], record['params']], ['ssh.exec', 'refused', 'E_FORCED_COMMAND', { command: 'cat /etc/shadow' }]);
    assert.deepEqual(record['detail'], { ssh: { keyFingerprint: fingerprintOf(BLOB), keyType: 'ssh-ed25519', client: '10.0.0.1:40000' } });
    const keygen = await runCommand('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'central.pub')]);
    assert.equal(keygen.stdout.split(' ')[1], fingerprintOf(BLOB), "the fingerprint is OpenSSH's own");
  });

  it("serves its methods on stdin/stdout through this host's keyd, passes keyd's errors on, and exits when stdin closes", async () => {
    const child = spawn('setpriv', setprivArgs(TEST_IDS.remote, process.execPath, [ctl(), '--config', configPath, 'remote-serve']), {
      env: sshEnv({ SSH_ORIGINAL_COMMAND: 'certsep-remote-serve' }), stdio: ['pipe', 'pipe', 'pipe'],
    });
    const client = RpcClient.over(remoteApi, Duplex.from({ readable: child.stdout, writable: child.stdin }));
    const csr = await client.call('csr.create', { cert: 'www', keyType: 'ec-p256' });
    assert.match(csr.csrPem, /^-----BEGIN CERTIFICATE REQUEST-----/);
    await assert.rejects(client.call('csr.create', { cert: 'www', keyType: 'rsa-2048' }), (e: unknown) => (e as RpcError).code === 'E_KEY_TYPE');
    await assert.rejects(client.call('status', {}), (e: unknown) => (e as RpcError).code === 'E_UNAVAILABLE', 'privd is not running here');
    child.stdin.end();
    await waitForExit(child, 10_000);
    assert.equal(child.exitCode, 0);
    const methods = audit().slice(-3).map((r) => [r['method'], r['outcome'], (r['detail'] as { ssh: { keyFingerprint: string } }).ssh.keyFingerprint]);
    assert.deepEqual(methods, [['csr.create', 'ok', fingerprintOf(BLOB)], ['csr.create', 'error', fingerprintOf(BLOB)], ['status', 'error', fingerprintOf(BLOB)]]);
    const keydRecord = readFileSync(join(dir, 'audit', 'keyd.audit.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { method: string; peer: { uid: number } }).find((r) => r.method === 'csr.create')!;
    assert.equal(keydRecord.peer.uid, TEST_IDS.remote.uid, 'keyd served the remote user, by its own pledge');
  });
});
