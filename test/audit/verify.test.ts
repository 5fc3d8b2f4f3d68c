import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { verifyAuditFile } from '../../audit/verify.ts';
import { makeAuditDir, readLines, writeLines, writeRecords } from './fixtures.ts';

describe('verifyAuditFile', () => {
  let dir = '';
  let remove = () => {};
  let path = '';
  beforeEach(() => {
    ({ dir, remove } = makeAuditDir());
    path = writeRecords(dir, 'privd', 5);
  });
  afterEach(() => remove());

  it('passes an intact log and counts its records', () => {
    assert.deepEqual(verifyAuditFile(path), { ok: true, records: 5, anchored: 0 });
  });

  it('passes an empty log', () => {
    writeLines(path, []);
    assert.deepEqual(verifyAuditFile(path), { ok: true, records: 0, anchored: 0 });
  });

  it('names the line after a record whose text was edited', () => {
    const lines = readLines(path);
    lines[2] = (lines[2] ?? '').replace('"outcome":"ok"', '"outcome":"refused"');
    writeLines(path, lines);
    const result = verifyAuditFile(path);
    assert.equal(result.ok, false);
    assert.equal(result.records, 3);
    assert.deepEqual(result.broken, {
      line: 4,
      reason: 'prev hash does not match line 3 (a record was edited, deleted or reordered; seq 4 follows seq 3)',
    });
  });

  it('names the line where a deleted record is missing', () => {
    const lines = readLines(path);
    lines.splice(2, 1);
    writeLines(path, lines);
    assert.deepEqual(verifyAuditFile(path).broken, {
      line: 3,
      reason: 'prev hash does not match line 2 (a record was edited, deleted or reordered; seq 4 follows seq 2)',
    });
  });

  it('names the first of two swapped records', () => {
    const lines = readLines(path);
    [lines[1], lines[2]] = [lines[2] ?? '', lines[1] ?? ''];
    writeLines(path, lines);
    const result = verifyAuditFile(path);
    assert.equal(result.broken?.line, 2);
    assert.match(result.broken?.reason ?? '', /^prev hash does not match line 1 .*seq 3 follows seq 1\)$/);
  });

  it('refuses a log whose first records were cut off', () => {
    writeLines(path, readLines(path).slice(1));
    assert.deepEqual(verifyAuditFile(path).broken, {
      line: 1,
      reason: 'the first record has seq 2 and does not start the chain (records before it were removed)',
    });
  });

  it('notices an edited seq even on the last line, which no later prev covers', () => {
    const lines = readLines(path);
    lines[4] = (lines[4] ?? '').replace('"seq":5', '"seq":9');
    writeLines(path, lines);
    assert.deepEqual(verifyAuditFile(path).broken, { line: 5, reason: 'seq 9 follows seq 4 (the seq was edited)' });
  });

  it('reports a line that is not JSON', () => {
    const lines = readLines(path);
    lines[1] = `${lines[1]}x`;
    writeLines(path, lines);
    assert.deepEqual(verifyAuditFile(path).broken, { line: 2, reason: 'not valid JSON (the line was edited, or a write was cut short)' });
  });

  it('reports a torn last line', () => {
    const lines = readLines(path);
    writeFileSync(path, `${lines.slice(0, 4).join('\n')}\n${(lines[4] ?? '').slice(0, 30)}`);
    assert.deepEqual(verifyAuditFile(path).broken, { line: 5, reason: 'incomplete last line (a write was cut short, e.g. by a crash or a full disk)' });
  });

  it('reports a record copied in from another daemon\'s file', () => {
    const other = writeRecords(dir, 'acmed', 1);
    writeLines(path, readLines(other));
    assert.match(verifyAuditFile(path).broken?.reason ?? '', /^record says daemon "acmed" but this is privd's file$/);
  });
});
