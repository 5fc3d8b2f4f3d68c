import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { readAuditRecords } from '../../audit/read.ts';
import { makeAuditDir, writeRecords } from './fixtures.ts';

/** Rewrites the time of each record in a file, in order (the chain is irrelevant to reading). */
function setTimes(path: string, times: string[]): void {
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1);
  writeFileSync(path, lines.map((l, i) => `${l.replace(/"time":"[^"]*"/, `"time":"${times[i]}"`)}\n`).join(''));
}

describe('readAuditRecords', () => {
  let dir = '';
  let remove = () => {};
  beforeEach(() => {
    ({ dir, remove } = makeAuditDir());
    setTimes(writeRecords(dir, 'privd', 2), ['2025-01-01T10:00:00.000Z', '2025-01-01T12:00:00.000Z']);
    setTimes(writeRecords(dir, 'acmed', 2), ['2025-01-01T09:00:00.000Z', '2025-01-01T11:00:00.000Z']);
  });
  afterEach(() => remove());

  it('merges every daemon\'s file into one timeline', () => {
    const records = readAuditRecords(dir);
    assert.deepEqual(records.map((r) => `${r.daemon}#${r.seq}`), ['acmed#1', 'privd#1', 'acmed#2', 'privd#2']);
  });

  it('keeps only records since a time', () => {
    const records = readAuditRecords(dir, { since: new Date('2025-01-01T10:30:00Z') });
    assert.deepEqual(records.map((r) => `${r.daemon}#${r.seq}`), ['acmed#2', 'privd#2']);
  });

  it('reads one daemon\'s file when asked', () => {
    assert.deepEqual(readAuditRecords(dir, { daemon: 'privd' }).map((r) => r.seq), [1, 2]);
    assert.deepEqual(readAuditRecords(dir, { daemon: 'keyd' }), []);
    assert.throws(() => readAuditRecords(dir, { daemon: '../etc' }), RangeError);
  });

  it('skips lines that are not records instead of failing', () => {
    appendFileSync(`${dir}/privd.audit.jsonl`, 'not json\n{"seq":"x"}\n{"torn');
    assert.equal(readAuditRecords(dir).length, 4);
  });
});
