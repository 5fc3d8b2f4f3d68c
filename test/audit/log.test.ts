import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { AuditError } from '../../audit/error.ts';
import { AuditLog } from '../../audit/log.ts';
import { GENESIS_HASH, hashLine } from '../../audit/record.ts';
import { verifyAuditFile } from '../../audit/verify.ts';
import { entry, makeAuditDir, readLines, writeRecords } from './fixtures.ts';

describe('AuditLog', () => {
  let dir = '';
  let remove = () => {};
  beforeEach(() => ({ dir, remove } = makeAuditDir()));
  afterEach(() => remove());

  it('writes one JSON line per record with exactly the documented fields, in order', () => {
    const log = AuditLog.open(dir, 'privd');
    log.record({
      peer: { uid: 991, gid: 992, pid: 77 },
      method: 'deploy.install',
      params: { cert: 'www' },
      outcome: 'refused',
      code: 'E_PEER',
      message: 'uid 991 may not call deploy.install',
      durationMs: 0.5,
      detail: { files: 2 },
    });
    log.record({ peer: null, method: 'status', outcome: 'ok' });
    log.close();
    const [first, second] = readLines(join(dir, 'privd.audit.jsonl')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(Object.keys(first ?? {}), ['seq', 'time', 'daemon', 'peer', 'method', 'params', 'outcome', 'code', 'message', 'durationMs', 'detail', 'prev']);
    assert.equal(first?.['seq'], 1);
    assert.equal(first?.['prev'], GENESIS_HASH);
    assert.deepEqual(first?.['peer'], { uid: 991, gid: 992, pid: 77 });
    assert.match(String(first?.['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(Object.keys(second ?? {}), ['seq', 'time', 'daemon', 'peer', 'method', 'outcome', 'prev']);
    assert.equal(second?.['peer'], null);
  });

  it('creates the file readable by owner and group only (0640 before the umask)', () => {
    writeRecords(dir, 'keyd', 1);
    const mode = statSync(join(dir, 'keyd.audit.jsonl')).mode & 0o777;
    assert.equal(mode & ~0o640, 0, `mode ${mode.toString(8)}`);
    assert.equal(mode & 0o600, 0o600);
  });

  it('continues seq and the hash chain across a reopen', () => {
    const path = writeRecords(dir, 'acmed', 2);
    const log = AuditLog.open(dir, 'acmed');
    log.record(entry('after.reopen'));
    log.close();
    const lines = readLines(path);
    const third = JSON.parse(lines[2] ?? '') as { seq: number; prev: string };
    assert.equal(third.seq, 3);
    assert.equal(third.prev, hashLine(lines[1] ?? ''));
    assert.deepEqual(verifyAuditFile(path), { ok: true, records: 3, anchored: 0 });
  });

  it('ends a torn last line on reopen, leaves it visible to verify and continues the chain', () => {
    const path = writeRecords(dir, 'netd', 2);
    appendFileSync(path, '{"seq":3,"time":"20');
    const log = AuditLog.open(dir, 'netd');
    log.record(entry('after.crash'));
    log.close();
    const lines = readLines(path);
    assert.equal(lines.length, 4);
    assert.equal(lines[2], '{"seq":3,"time":"20');
    const fourth = JSON.parse(lines[3] ?? '') as { seq: number; prev: string };
    assert.equal(fourth.seq, 3);
    assert.equal(fourth.prev, hashLine(lines[1] ?? ''));
    assert.deepEqual(verifyAuditFile(path).broken, { line: 3, reason: 'not valid JSON (the line was edited, or a write was cut short)' });
  });

  it('keeps a whole record whose newline was lost as part of the chain', () => {
    const path = writeRecords(dir, 'netd', 2);
    writeFileSync(path, readFileSync(path, 'utf8').replace(/\n$/, ''));
    writeRecords(dir, 'netd', 1);
    assert.deepEqual(verifyAuditFile(path), { ok: true, records: 3, anchored: 0 });
  });

  it('continues from the last record when lines that are not records follow it, leaving them to verify', () => {
    const path = writeRecords(dir, 'deployd', 1);
    appendFileSync(path, 'garbage\n{"seq":2,"ti\n');
    writeRecords(dir, 'deployd', 1);
    const lines = readLines(path);
    const next = JSON.parse(lines[3] ?? '') as { seq: number; prev: string };
    assert.equal(next.seq, 2);
    assert.equal(next.prev, hashLine(lines[0] ?? ''));
    assert.deepEqual(verifyAuditFile(path).broken, { line: 2, reason: 'not valid JSON (the line was edited, or a write was cut short)' });
  });

  it('refuses a symlink planted in place of the log file', () => {
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'privd.audit.jsonl'));
    assert.throws(() => AuditLog.open(dir, 'privd'), (err: unknown) => err instanceof AuditError && err.code === 'E_AUDIT_OPEN' && /ELOOP/.test(err.message));
  });

  it('refuses a daemon name that is not a plain name', () => {
    assert.throws(() => AuditLog.open(dir, '../privd'), (err: unknown) => err instanceof AuditError && err.code === 'E_AUDIT_OPEN');
  });

  it('throws instead of dropping a record after close', () => {
    const log = AuditLog.open(dir, 'privd');
    log.close();
    assert.throws(() => log.record(entry('late')), (err: unknown) => err instanceof AuditError && err.code === 'E_AUDIT_CLOSED');
  });

  it('summarizes params and detail, so a private key in a request never reaches the file', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n';
    const log = AuditLog.open(dir, 'privd');
    log.record(entry('deploy.install', { params: { cert: 'www', material: { pem } }, detail: { echoed: pem }, message: `bad key ${pem}` }));
    log.close();
    const text = readFileSync(join(dir, 'privd.audit.jsonl'), 'utf8');
    assert.doesNotMatch(text, /BEGIN|MIGHAgEA/);
    assert.match(text, /"cert":"www"/);
  });
});
