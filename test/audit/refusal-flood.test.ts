// A local user who floods a daemon with requests it may not make must not be able to fill the
// disk with the audit records of the refusals: a few are recorded one by one, the rest are
// counted into one record per peer and interval, so every refusal is still accounted for.
// A real keyd under its uid; the flood comes from another local user.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyAuditFile } from '../../audit/verify.ts';
import { waitFor } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { setprivArgs, TEST_IDS } from '../harness/uids.ts';
import { startKeyd, type KeydUnderTest } from '../keyd/start-keyd.ts';

const CLIENT = join(REPO, 'test', 'proto', 'pipelining-client.ts');
const FLOOD = 5000;

interface Line {
  peer: { uid: number } | null;
  outcome: string;
  code?: string;
  detail?: { count?: number };
}

describe('a flood of refused requests', () => {
  let keyd: KeydUnderTest;
  before(async () => {
    keyd = await startKeyd([]);
  });
  after(async () => {
    await keyd?.stop();
  });

  it('a local user flooding keyd with refused calls leaves a few audit records that count every refusal', async () => {
    const client = spawn('setpriv', setprivArgs(TEST_IDS.other, process.execPath,
      ['--import', 'tsx', CLIENT, keyd.daemon.socketPath, String(FLOOD), 'csr.create', '{}', 'read']), { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    client.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    await waitFor(() => /answered \d+/.test(out) || client.exitCode !== null, 120_000, 'every refusal to be answered');
    assert.match(out, new RegExp(`answered ${FLOOD} \\{"E_PEER":${FLOOD}\\}`));
    // The count of an interval is written when it ends, or when the daemon stops.
    await keyd.daemon.stop();
    const path = keyd.auditFile;
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
    const fromOther = lines.filter((l) => l.peer?.uid === TEST_IDS.other.uid);
    assert.ok(fromOther.length <= 16, `${fromOther.length} records for one flood`);
    const oneByOne = fromOther.filter((l) => l.code === 'E_PEER').length;
    const counted = fromOther.filter((l) => l.code === 'E_REFUSALS_COUNTED').reduce((n, l) => n + (l.detail?.count ?? 0), 0);
    assert.ok(oneByOne > 0, 'the first refusals are recorded one by one');
    assert.equal(oneByOne + counted, FLOOD, 'every refusal is accounted for');
    assert.deepEqual(verifyAuditFile(path).ok, true);
  });
});
