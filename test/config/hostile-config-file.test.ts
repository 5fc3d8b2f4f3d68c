// A config path that names something other than a small regular file: a FIFO planted as the
// config must not hang a daemon or certsepctl, and an oversized file (or /dev/zero behind a
// symlink) is refused from its size before anything is read. Real daemons under their own uids.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, closeSync, ftruncateSync, openSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand, waitFor } from '../harness/proc.ts';
import { assertBuilt, canConnectUnix, prepareDaemonDirs, writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { setprivArgs, TEST_IDS } from '../harness/uids.ts';

/** keyd's outcome with this config: its exit code and stderr, or 'listening' if it started serving. */
async function keydWith(config: string, socket: string): Promise<{ code: number | null | 'listening'; stderr: string }> {
  const keyd = spawn('setpriv', setprivArgs(TEST_IDS.keyd, process.execPath, [assertBuilt('keyd'), '--config', config, '--socket', socket]), {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  keyd.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  let code: number | null | undefined;
  keyd.once('close', (c) => (code = c));
  try {
    await waitFor(async () => code !== undefined || (await canConnectUnix(socket)), 30_000, 'keyd to exit or listen');
  } finally {
    if (code === undefined) keyd.kill('SIGKILL');
  }
  return { code: code === undefined ? 'listening' : code, stderr };
}

describe('a config path that is not a small regular file', () => {
  let dir = '';
  let fifo = '';
  let huge = '';
  let zero = '';
  before(async () => {
    dir = makeTempDir('config-hostile-file');
    writeTestConfig(dir);
    prepareDaemonDirs(dir, 'keyd', TEST_IDS.keyd);
    fifo = join(dir, 'fifo.yaml');
    const made = await runCommand('mkfifo', ['-m', '0644', fifo]);
    assert.equal(made.code, 0, made.stderr);
    chownSync(fifo, 0, 0);
    // 3 GiB, sparse: larger than any buffer Node would read it into.
    huge = join(dir, 'huge.yaml');
    const fd = openSync(huge, 'w', 0o644);
    ftruncateSync(fd, 3 * 1024 ** 3);
    closeSync(fd);
    zero = join(dir, 'zero.yaml');
    symlinkSync('/dev/zero', zero);
  });
  after(() => removeTempDir(dir));

  it('a FIFO planted as the config does not block keyd: it exits saying the config is not a regular file', async () => {
    const { code, stderr } = await keydWith(fifo, join(dir, 'keyd-fifo.sock'));
    assert.equal(code, 78, stderr);
    assert.match(stderr, new RegExp(`cannot read ${fifo}: not a regular file \\(a FIFO\\)`));
  });

  it('a FIFO planted as the config does not block certsepctl', async () => {
    const r = await runCommand(process.execPath, [assertBuilt('ctl'), '--config', fifo, 'status'], { timeoutMs: 30_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not a regular file \(a FIFO\)/);
  });

  it('an oversized config is refused from its size, before it is read', async () => {
    const { code, stderr } = await keydWith(huge, join(dir, 'keyd-huge.sock'));
    assert.equal(code, 78, stderr);
    assert.match(stderr, new RegExp(`${huge} is ${3 * 1024 ** 3} bytes, more than the 1048576 a config may have`));
  });

  it('a symlink to /dev/zero as the config is refused, not read forever', async () => {
    const { code, stderr } = await keydWith(zero, join(dir, 'keyd-zero.sock'));
    assert.equal(code, 78, stderr);
    assert.match(stderr, /not a regular file \(a character device\)/);
  });
});
