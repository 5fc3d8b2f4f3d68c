// A peer that pipelines requests and never reads the answers must not make a daemon buffer them
// without bound: the server stops reading from a peer whose answers are not drained, and goes on
// once they are. A real daemon (runDaemon, as every daemon's main.ts) and a real client under the
// deployd uid, which may call echo; the daemon's resident memory is read from /proc.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, waitFor, waitForExit } from '../harness/proc.ts';
import { canConnectUnix, REPO, writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { setprivArgs, TEST_IDS } from '../harness/uids.ts';

const DAEMON = join(REPO, 'test', 'proto', 'fixture-daemon.ts');
const CLIENT = join(REPO, 'test', 'proto', 'pipelining-client.ts');
const REQUESTS = 4000;
const TEXT_BYTES = 64 * 1024; // 4000 answers of 64 KiB: 250 MiB, were they all held at once
const MAX_GROWTH_BYTES = 96 * 1024 * 1024;

function residentBytes(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}

describe('a peer that pipelines requests and never reads the answers', () => {
  let dir = '';
  let daemon: ChildProcess;
  let socket = '';
  let logPath = '';
  before(async () => {
    dir = makeTempDir('proto-backpressure');
    socket = join(dir, 'run', 'fixture.sock');
    logPath = join(dir, 'daemon.log');
    const config = writeTestConfig(dir);
    daemon = startDaemon(process.execPath, ['--import', 'tsx', DAEMON, '--config', config, '--socket', socket, '--socket-mode', '0666'], { logPath, cwd: REPO });
    await waitFor(() => canConnectUnix(socket), 20_000, 'fixture daemon socket');
  });
  after(async () => {
    daemon.kill('SIGTERM');
    await waitForExit(daemon, 10_000);
    removeTempDir(dir);
  });

  it('the daemon stops reading from it while its answers are not drained, its memory stays bounded, and every answer arrives once it reads', async () => {
    // setpriv's own pid is the daemon's (it execs); the fixture runs under tsx in that process.
    const pid = daemon.pid!;
    const baseline = residentBytes(pid);
    const client = spawn('setpriv', setprivArgs(TEST_IDS.deployd, process.execPath, ['--import', 'tsx', CLIENT, socket, String(REQUESTS), 'echo', JSON.stringify({ text: 'x'.repeat(TEXT_BYTES) }), 'hold']), {
      cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    client.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    let peak = baseline;
    // Until the daemon says it stopped reading, or its memory has grown past the bound (it did not).
    await waitFor(() => {
      peak = Math.max(peak, residentBytes(pid));
      return peak - baseline > MAX_GROWTH_BYTES || /not reading its answers/.test(readFileSync(logPath, 'utf8'));
    }, 120_000, 'the daemon to stop reading from the client, or to grow', 20);
    assert.ok(peak - baseline <= MAX_GROWTH_BYTES, `the daemon grew by ${Math.round((peak - baseline) / 2 ** 20)} MiB`);
    const log = readFileSync(logPath, 'utf8');
    assert.match(log, new RegExp(`"uid":${TEST_IDS.deployd.uid}.*not reading its answers`));
    client.stdin!.write('read now\n');
    await waitFor(() => /answered \d+/.test(out) || client.exitCode !== null, 120_000, 'the client to read every answer');
    assert.match(out, new RegExp(`answered ${REQUESTS} \\{"ok":${REQUESTS}\\}`));
    assert.ok(residentBytes(pid) > 0, 'the daemon is still running');
  });
});
