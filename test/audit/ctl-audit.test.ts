import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AuditLog } from '../../audit/log.ts';
import { readAuditRecords } from '../../audit/read.ts';
import { formatAuditTable, parseSince } from '../../ctl/audit.ts';
import { entry, makeAuditDir, writeRecords } from './fixtures.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

function certsepctl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'ctl/main.ts', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 60_000,
    // Never fall back to a real /etc/certsep config on the test machine.
    env: { ...process.env, CERTSEP_CONFIG: '/nonexistent/certsep.yaml' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('certsepctl audit', () => {
  let dir = '';
  let remove = () => {};
  beforeEach(() => {
    ({ dir, remove } = makeAuditDir());
    writeRecords(dir, 'privd', 4);
    writeRecords(dir, 'keyd', 2);
  });
  afterEach(() => remove());

  it('audit verify exits 0 and reports each file OK on an intact log', () => {
    const { status, stdout } = certsepctl('audit', 'verify', '--audit-dir', dir);
    assert.equal(status, 0);
    assert.equal(stdout, 'keyd.audit.jsonl: OK, 2 records (none anchored)\nprivd.audit.jsonl: OK, 4 records (none anchored)\n');
  });

  it('audit verify exits 1 and names the broken line of a tampered log', () => {
    const path = `${dir}/privd.audit.jsonl`;
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[1] = (lines[1] ?? '').replace('"uid":991', '"uid":0');
    writeFileSync(path, lines.join('\n'));
    const { status, stdout } = certsepctl('audit', 'verify', '--audit-dir', dir);
    assert.equal(status, 1);
    assert.match(stdout, /^keyd\.audit\.jsonl: OK, 2 records \(none anchored\)$/m);
    assert.match(stdout, /^privd\.audit\.jsonl: BROKEN at line 3: prev hash does not match line 2 /m);
  });

  it('audit verify exits 1 when there is no log at all', () => {
    const empty = makeAuditDir();
    try {
      const { status, stderr } = certsepctl('audit', 'verify', '--audit-dir', empty.dir);
      assert.equal(status, 1);
      assert.match(stderr, /no \*\.audit\.jsonl files in/);
    } finally {
      empty.remove();
    }
  });

  it('audit without --audit-dir reports the unreadable config', () => {
    const { status, stderr } = certsepctl('audit', 'verify');
    assert.equal(status, 1);
    assert.equal(stderr, 'certsepctl: certsep.yaml: cannot read /nonexistent/certsep.yaml: ENOENT\n');
  });

  it('audit --json prints the merged records', () => {
    const { status, stdout } = certsepctl('audit', '--json', '--audit-dir', dir);
    assert.equal(status, 0);
    const records = JSON.parse(stdout) as { daemon: string }[];
    assert.equal(records.length, 6);
    assert.deepEqual(new Set(records.map((r) => r.daemon)), new Set(['keyd', 'privd']));
  });

  it('audit prints a table with one row per record', () => {
    const { status, stdout } = certsepctl('audit', '--since', '1h', '--audit-dir', dir);
    assert.equal(status, 0);
    const rows = stdout.trimEnd().split('\n');
    assert.match(rows[0] ?? '', /^TIME\s+DAEMON\s+PEER\s+METHOD\s+OUTCOME\s+CODE\/MESSAGE$/);
    assert.equal(rows.length, 7);
    assert.match(rows[1] ?? '', /uid 991 pid 4242\s+method\.1\s+ok$/);
  });
});

describe('certsepctl audit output', () => {
  it('escapes terminal control characters a peer put into a record', () => {
    const { dir, remove } = makeAuditDir();
    try {
      const log = AuditLog.open(dir, 'privd');
      log.record(entry('x\x1b]0;owned\x07', { outcome: 'refused', code: 'E_METHOD', message: 'bad \x9b2J \u202eevil' }));
      log.close();
      const table = formatAuditTable(readAuditRecords(dir));
      assert.doesNotMatch(table, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
      assert.match(table, /x\\u001b\]0;owned\\u0007/);
    } finally {
      remove();
    }
  });

  it('--since takes spans back from now and ISO times, and nothing else', () => {
    const now = Date.parse('2025-06-01T12:00:00Z');
    assert.equal(parseSince('90m', now).toISOString(), '2025-06-01T10:30:00.000Z');
    assert.equal(parseSince('2d', now).toISOString(), '2025-05-30T12:00:00.000Z');
    assert.equal(parseSince('2025-01-31T12:00Z', now).toISOString(), '2025-01-31T12:00:00.000Z');
    for (const bad of ['yesterday', '1y', '-1h', '12']) assert.throws(() => parseSince(bad, now), bad);
  });
});
