// A local user who may connect must not be able to hold every connection a daemon accepts and
// so lock root (certsepctl, privd) out: connections are capped per peer uid, and root is served
// beyond the total. A real keyd under its uid; the holder is another local user.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/proc.ts';
import { rawCall } from '../harness/raw-call.ts';
import { REPO } from '../harness/suite.ts';
import { setprivArgs, TEST_IDS } from '../harness/uids.ts';
import { startKeyd, type KeydUnderTest } from '../keyd/start-keyd.ts';

const HOLDER = join(REPO, 'test', 'proto', 'connection-holder.ts');

describe('connections per peer uid', () => {
  let keyd: KeydUnderTest;
  before(async () => {
    keyd = await startKeyd([]);
  });
  after(async () => {
    await keyd?.stop();
  });

  it('a local user holding 80 connections gets 16, and root is still served', async () => {
    const holder = spawn('setpriv', setprivArgs(TEST_IDS.other, process.execPath, ['--import', 'tsx', HOLDER, keyd.daemon.socketPath, '80']), {
      cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    holder.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    try {
      await waitFor(() => /held \d+/.test(out) || holder.exitCode !== null, 60_000, 'the holder to open its connections');
      const root = await rawCall(keyd.daemon.socketPath, 'test.root', {}, 30_000).catch((e: NodeJS.ErrnoException) => ({ ok: false as const, error: { code: e.code ?? 'error' } }));
      assert.equal(root.ok ? 'served' : root.error.code, 'E_UNKNOWN_METHOD', 'root must be served while the other user holds its connections');
      assert.match(out, /^held 16 turnedAway 64 codes \{"E_TOO_MANY_CONNECTIONS":64\}$/m);
    } finally {
      holder.stdin!.end();
    }
  });
});
