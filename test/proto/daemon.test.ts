import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { callOnce, RpcClient } from '../../proto/client.ts';
import { startDaemon, waitFor, waitForExit } from '../harness/proc.ts';
import { canConnectUnix, REPO, writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, TEST_IDS } from '../harness/uids.ts';
import { fixtureApi } from './fixture-api.ts';

const DAEMON = join(REPO, 'test', 'proto', 'fixture-daemon.ts');
const CALL = join(REPO, 'test', 'proto', 'call.ts');
const tsx = ['--import', 'tsx'];

interface AuditRecord {
  peer: { uid: number; pid: number } | null;
  method: string;
  outcome: string;
  code?: string;
}

function auditRecords(dir: string): AuditRecord[] {
  const text = readFileSync(join(dir, 'audit', 'test-fixture.audit.jsonl'), 'utf8');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditRecord);
}

async function callAs(id: { uid: number; gid: number }, socket: string, method: string, params: unknown) {
  const r = await execAs(id, process.execPath, [...tsx, CALL, socket, method, JSON.stringify(params)], { cwd: REPO, timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { pid: number; ok: boolean; code?: string; result?: unknown };
}

describe('a daemon started through runDaemon', () => {
  let dir: string;
  let daemon: ChildProcess;
  let socket: string;
  before(async () => {
    dir = makeTempDir('proto-daemon');
    socket = join(dir, 'run', 'fixture.sock');
    const config = writeTestConfig(dir);
    daemon = startDaemon(process.execPath, [...tsx, DAEMON, '--config', config, '--socket', socket, '--socket-mode', '0666'], { logPath: join(dir, 'daemon.log'), cwd: REPO });
    await waitFor(() => canConnectUnix(socket), 20_000, 'fixture daemon socket');
  });
  after(async () => {
    daemon.kill('SIGTERM');
    await waitForExit(daemon, 10_000);
    removeTempDir(dir);
  });

  it('refuses a client under another uid with E_PEER and audits the refusal with that uid and pid', async () => {
    const answer = await callAs(TEST_IDS.other, socket, 'rootOnly', {});
    assert.equal(answer.ok, false);
    assert.equal(answer.code, 'E_PEER');
    const refusal = auditRecords(dir).find((r) => r.outcome === 'refused' && r.peer?.uid === TEST_IDS.other.uid);
    assert.ok(refusal, 'the refusal is in the audit log');
    assert.equal(refusal.code, 'E_PEER');
    assert.equal(refusal.method, 'rootOnly');
    assert.equal(refusal.peer?.pid, answer.pid, 'the audited pid is the caller process');
  });

  it("serves the deployd uid the methods its role allows, and only those", async () => {
    const echo = await callAs(TEST_IDS.deployd, socket, 'echo', { text: 'from deployd' });
    assert.deepEqual(echo.result, { text: 'from deployd' });
    const root = await callAs(TEST_IDS.deployd, socket, 'rootOnly', {});
    assert.equal(root.code, 'E_PEER');
  });

  it('exits cleanly on SIGTERM after answering what is in flight', async () => {
    const client = await RpcClient.connect(fixtureApi, socket);
    const pending = client.call('sleep', { ms: 300 });
    await new Promise((r) => setTimeout(r, 50));
    daemon.kill('SIGTERM');
    assert.deepEqual(await pending, { slept: 300 });
    await waitForExit(daemon, 10_000);
    assert.equal(daemon.exitCode, 0);
    client.close();
  });
});

describe('socket activation, sd_notify and idle exit', () => {
  it('starts on the first connection through systemd-socket-activate, notifies READY and STOPPING, and exits when idle', async () => {
    const dir = makeTempDir('proto-activate');
    try {
      const config = writeTestConfig(dir);
      const socket = join(dir, 'run', 'activated.sock');
      const notifySocket = join(dir, 'notify.sock');
      // A real NOTIFY_SOCKET listener: Node has no AF_UNIX datagram sockets, python3 does.
      const listener = spawn('python3', ['-u', '-c', [
        'import socket, sys',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
        's.bind(sys.argv[1])',
        'print("listening", flush=True)',
        'while True: print(s.recv(4096).decode().replace("\\n", "|"), flush=True)',
      ].join('\n'), notifySocket]);
      const received: string[] = [];
      listener.stdout.on('data', (b: Buffer) => received.push(...b.toString().split('\n').filter(Boolean)));
      await waitFor(() => received.includes('listening'), 10_000, 'notify listener');

      const activator = spawn('systemd-socket-activate', ['-l', socket, '-E', `NOTIFY_SOCKET=${notifySocket}`, process.execPath, ...tsx, DAEMON, '--config', config, '--idle-exit', '1'], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      activator.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      await waitFor(() => canConnectUnix(socket), 10_000, 'activation socket');
      // systemd-socket-activate execs the daemon in its own process, so the pid stays the same.
      const result = await callOnce(fixtureApi, socket, 'echo', { text: 'activated' }, { timeoutMs: 30_000 });
      assert.deepEqual(result, { text: 'activated' });
      await waitFor(() => received.some((m) => m.includes('READY=1')), 10_000, 'READY=1');
      const ready = received.find((m) => m.includes('READY=1'))!;
      assert.match(ready, /STATUS=serving on inherited fd 3/);
      assert.match(ready, new RegExp(`MAINPID=${activator.pid}`));
      await waitForExit(activator, 15_000);
      assert.equal(activator.exitCode, 0, stderr);
      await waitFor(() => received.some((m) => m.includes('STOPPING=1')), 5_000, 'STOPPING=1');
      assert.match(received.find((m) => m.includes('STOPPING=1'))!, /idle for 1s/);
      listener.kill();
    } finally {
      removeTempDir(dir);
    }
  });
});
