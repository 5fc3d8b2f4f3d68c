// A crash or a full disk can leave the audit log's last line half-written. A daemon must still
// start after that, however often it restarts before its next record, and the half line stays
// visible to `certsepctl audit verify`. A real keyd under its uid, restarted twice.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog } from '../../audit/log.ts';
import { verifyAuditFile } from '../../audit/verify.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { startKeyd, type KeydUnderTest } from '../keyd/start-keyd.ts';

describe('an audit log whose last line was cut short', () => {
  let keyd: KeydUnderTest;
  let path = '';
  before(async () => {
    keyd = await startKeyd([], {
      prepare: (dir) => {
        const log = AuditLog.open(join(dir, 'audit'), 'keyd');
        log.record({ peer: null, method: 'before.crash', outcome: 'ok' });
        log.close();
        appendFileSync(join(dir, 'audit', 'keyd.audit.jsonl'), '{"seq":2,"time":"2025-');
      },
    });
    path = keyd.auditFile;
  });
  after(async () => {
    await keyd?.stop();
  });

  it('keyd starts again and again after a half-written last line, and records after it', async () => {
    // Each start without a record in between meets the half line as the last complete one.
    await keyd.restart();
    await keyd.restart();
    const { answer } = await keyd.callAs(TEST_IDS.other, 'csr.create', {});
    assert.equal(answer.ok ? 'ok' : answer.error.code, 'E_PEER');
    await keyd.daemon.stop();
    const lines = readFileSync(path, 'utf8').split('\n');
    assert.equal(lines[1], '{"seq":2,"time":"2025-', 'the half line stays');
    const after = JSON.parse(lines[2]!) as { seq: number; method: string };
    assert.equal(after.seq, 2);
    assert.deepEqual(verifyAuditFile(path).broken, { line: 2, reason: 'not valid JSON (the line was edited, or a write was cut short)' });
  });
});
