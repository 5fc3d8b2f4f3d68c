// A daemon whose audit log cannot be written must do nothing it would have to record, must keep
// running, and must go on recording once there is space again: keyd's auditDir is a small tmpfs
// (in a mount namespace of keyd's own, reached from here through /proc/<pid>/root), filled up
// and emptied while deployd's uid asks for CSRs.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyAuditFile } from '../../audit/verify.ts';
import { trackDaemon, waitFor, waitForExit } from '../harness/proc.ts';
import type { RawAnswer } from '../harness/raw-call.ts';
import { assertBuilt, canConnectUnix, prepareDaemonDirs, REPO, writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, setprivArgs, TEST_IDS, type Identity } from '../harness/uids.ts';

const KEYD = TEST_IDS.keyd;

describe('keyd with a full audit disk', () => {
  let dir = '';
  let keyd: ChildProcess;
  let socket = '';
  /** The audit directory as keyd sees it: its tmpfs. */
  let auditDir = '';
  let keyDir = '';
  before(async () => {
    dir = makeTempDir('audit-full-disk');
    const configPath = writeTestConfig(dir, {
      certificates: [{ name: 'www', domains: ['www.example.com'], challenge: { type: 'dns-01-hook', command: ['/bin/true'] } }],
    });
    prepareDaemonDirs(dir, 'keyd', KEYD);
    // keyd makes its own socket here, so it owns the run dir (as systemd would make the socket).
    chownSync(join(dir, 'run'), KEYD.uid, KEYD.gid);
    socket = join(dir, 'run', 'keyd.sock');
    const mountPoint = join(dir, 'audit');
    const log = openSync(join(dir, 'keyd.log'), 'a');
    // unshare and sh exec into setpriv and node: the pid stays keyd's, and so does the namespace.
    keyd = trackDaemon(spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-ec', [
      'mount -t tmpfs -o size=128k,mode=0755 certsep-audit-test "$1"',
      ': > "$1/keyd.audit.jsonl"; chown "$2" "$1/keyd.audit.jsonl"; chmod 0640 "$1/keyd.audit.jsonl"',
      'shift 2; exec "$@"',
    ].join('\n'), 'sh', mountPoint, `${KEYD.uid}:${KEYD.gid}`, 'setpriv', ...setprivArgs(KEYD, process.execPath, [assertBuilt('keyd'), '--config', configPath, '--socket', socket, '--socket-mode', '0666'])], {
      stdio: ['ignore', log, log],
    }));
    closeSync(log);
    await waitFor(() => canConnectUnix(socket), 20_000, 'keyd listening');
    auditDir = `/proc/${keyd.pid}/root${mountPoint}`;
    keyDir = join(dir, 'state', 'keyd', 'www', 'ec-p256');
  });
  after(async () => {
    if (keyd.exitCode === null) keyd.kill('SIGTERM');
    await waitForExit(keyd, 10_000);
    removeTempDir(dir);
  });

  const call = async (id: Identity, method: string, params: unknown): Promise<RawAnswer> => {
    const run = await execAs(id, process.execPath, ['--import', 'tsx', 'test/harness/raw-call-cli.ts', socket, method, JSON.stringify(params)], { cwd: REPO, timeoutMs: 60_000 });
    assert.equal(run.code, 0, run.stderr);
    return (JSON.parse(run.stdout) as { answer: RawAnswer }).answer;
  };
  /** The key keyd would sign the next CSR with: rotate makes a new one for every CSR. */
  const currentKey = () => readFileSync(join(keyDir, 'current'), 'utf8');
  const fillDisk = () => {
    const fd = openSync(join(auditDir, 'filler'), 'w');
    const chunk = Buffer.alloc(4096, 0x41);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      closeSync(fd);
    }
  };

  it('keyd refuses to make keys while its audit log cannot be written, stays up, and records again once there is space', async () => {
    const csr = () => call(TEST_IDS.deployd, 'csr.create', { cert: 'www', keyType: 'ec-p256' });
    assert.equal((await csr()).ok, true);
    fillDisk();
    // Appends fit in the audit file's last page until it is full; the call whose record no longer
    // fits was done (keyd cannot know before) and its answer says so; its record waits in memory.
    let made = 1;
    let answer: RawAnswer;
    while ((answer = await csr()).ok) made += 1;
    assert.equal(answer.error.code, 'E_AUDIT_UNAVAILABLE', JSON.stringify(answer));
    assert.match(answer.error.message, /was done, but its audit record could not be written yet \(ENOSPC\)/);
    made += 1;

    const keyBefore = currentKey();
    const refused = await csr();
    assert.equal(refused.ok ? 'ok' : refused.error.code, 'E_AUDIT_UNAVAILABLE', JSON.stringify(refused));
    assert.match(refused.ok ? '' : refused.error.message, /refused while the audit log cannot be written \(ENOSPC\)/);
    assert.equal(currentKey(), keyBefore, 'no key was made once nothing could be recorded');
    const stranger = await call(TEST_IDS.other, 'csr.create', { cert: 'www', keyType: 'ec-p256' });
    assert.equal(stranger.ok ? 'ok' : stranger.error.code, 'E_PEER', 'refusals are still answered');
    assert.equal(keyd.exitCode, null, 'keyd is still running');

    rmSync(join(auditDir, 'filler'));
    assert.equal((await csr()).ok, true);
    assert.notEqual(currentKey(), keyBefore);
    const path = join(auditDir, 'keyd.audit.jsonl');
    const records = readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { outcome: string; code?: string; peer: { uid: number } | null });
    // What could not be written while the disk was full is written now, in order, before the new CSR.
    const deployd = TEST_IDS.deployd.uid;
    assert.deepEqual(records.map((r) => `${r.peer?.uid ?? '-'} ${r.outcome} ${r.code ?? ''}`.trim()), [
      ...Array.from({ length: made }, () => `${deployd} ok`),
      `${deployd} refused E_AUDIT_UNAVAILABLE`,
      `${TEST_IDS.other.uid} refused E_PEER`,
      `${deployd} ok`,
    ]);
    assert.deepEqual(verifyAuditFile(path), { ok: true, records: made + 3, anchored: 0 });
  });
});
