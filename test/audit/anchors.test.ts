// A daemon owns its audit file, so it can rewrite or cut it and hash a valid chain again. Under
// certsep-supervisor every record's hash is also anchored in a root-owned file the daemon cannot
// reach, and `certsepctl audit verify` checks each file against it; the merged view names each
// record's daemon by the file it is in. Real daemons, the rewrite done under keyd's own uid.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../harness/proc.ts';
import { rawCall } from '../harness/raw-call.ts';
import { assertBuilt, REPO, writeTestConfig } from '../harness/suite.ts';
import { startSupervisor, type Supervisor } from '../harness/supervisor.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, TEST_IDS, type Identity } from '../harness/uids.ts';

describe('audit records anchored by certsep-supervisor', () => {
  let dir = '';
  let auditDir = '';
  let supervisor: Supervisor;
  let intact = '';
  let records = 0;
  before(async () => {
    dir = makeTempDir('audit-anchors');
    auditDir = join(dir, 'audit');
    supervisor = await startSupervisor(dir, writeTestConfig(dir));
    // Refusals of root's, recorded one by one, after those of the start-up probes.
    for (let i = 0; i < 5; i++) await rawCall(join(supervisor.runDir, 'keyd.sock'), `test.call${i}`, {});
    await supervisor.stop();
    intact = join(dir, 'keyd.audit.jsonl.intact');
    copyFileSync(join(auditDir, 'keyd.audit.jsonl'), intact);
    records = readFileSync(intact, 'utf8').split('\n').filter(Boolean).length;
    assert.ok(records >= 6, `${records} records in keyd's log`);
  });
  after(() => removeTempDir(dir));

  const ctl = (...args: string[]) => runCommand(process.execPath, [assertBuilt('ctl'), ...args], { timeoutMs: 60_000 });
  const tamperAs = async (id: Identity, ...args: string[]) => {
    const r = await execAs(id, process.execPath, ['test/audit/rewrite-own-log.mjs', ...args], { cwd: REPO });
    assert.equal(r.code, 0, r.stderr);
  };
  const restore = () => copyFileSync(intact, join(auditDir, 'keyd.audit.jsonl'));

  it('every record of an untouched log is anchored', async () => {
    const r = await ctl('audit', 'verify', '--audit-dir', auditDir);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^keyd\\.audit\\.jsonl: OK, ${records} records \\(${records} anchored\\)$`, 'm'));
  });

  it('a record keyd removed from its own log, re-hashing the chain, is found by audit verify', async () => {
    await tamperAs(TEST_IDS.keyd, join(auditDir, 'keyd.audit.jsonl'), 'drop', '3');
    try {
      const r = await ctl('audit', 'verify', '--audit-dir', auditDir);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /^keyd\.audit\.jsonl: BROKEN at line 3: record seq 3 is not the one anchored in the supervisor's anchor file at \S+ \(sha256 [0-9a-f]{16}…\): the log was rewritten from here on/m);
    } finally {
      restore();
    }
  });

  it('records keyd cut from the end of its own log are found by audit verify', async () => {
    await tamperAs(TEST_IDS.keyd, join(auditDir, 'keyd.audit.jsonl'), 'cut', '2');
    try {
      const r = await ctl('audit', 'verify', '--audit-dir', auditDir);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, new RegExp(`^keyd\\.audit\\.jsonl: BROKEN at line ${records - 1}: the log ends at seq ${records - 2}, ` +
        `but the supervisor's anchor file anchored records up to seq ${records} \\(at \\S+\\): records were cut from the end`, 'm'));
    } finally {
      restore();
    }
  });

  it('the merged view names a record by the file it is in, not by the daemon it claims to be from', async () => {
    await tamperAs(TEST_IDS.acmed, join(auditDir, 'acmed.audit.jsonl'), 'forge', 'privd');
    const r = await ctl('audit', '--json', '--audit-dir', auditDir);
    assert.equal(r.code, 0, r.stderr);
    const forged = (JSON.parse(r.stdout) as { daemon: string; method: string }[]).filter((x) => x.method === 'deploy.install');
    assert.deepEqual(forged.map((x) => x.daemon), ['acmed']);
    assert.doesNotMatch(readFileSync(join(auditDir, 'privd.audit.jsonl'), 'utf8'), /deploy\.install/);
  });
});
