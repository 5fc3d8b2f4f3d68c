// Under certsep-supervisor the sockets are what the .socket units make them: 0660, owned by their
// daemon and by the group of exactly its callers, so a local user who is not a caller is turned
// away by the file system, before any daemon reads a byte from it.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TEST_GROUP_IDS, withSocketGroups } from '../harness/accounts.ts';
import { REPO, writeTestConfig } from '../harness/suite.ts';
import { startSupervisor, SUPERVISED, type Supervisor } from '../harness/supervisor.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, TEST_IDS, type Identity } from '../harness/uids.ts';

const OWNERS: Record<string, string> = {
  privd: `0:${TEST_GROUP_IDS['certsep-clients']}`,
  keyd: `${TEST_IDS.keyd.uid}:${TEST_GROUP_IDS['certsep-keyclients']}`,
  acmed: `${TEST_IDS.acmed.uid}:${TEST_GROUP_IDS['certsep-clients']}`,
  netd: `${TEST_IDS.netd.uid}:${TEST_GROUP_IDS['certsep-clients']}`,
  deployd: `${TEST_IDS.deployd.uid}:${TEST_GROUP_IDS['certsep-clients']}`,
};

describe('the sockets of certsep-supervisor', () => {
  let dir = '';
  let supervisor: Supervisor;
  before(async () => {
    dir = makeTempDir('supervisor-sockets');
    supervisor = await startSupervisor(dir, writeTestConfig(dir));
  });
  after(async () => {
    await supervisor?.stop();
    removeTempDir(dir);
  });

  const connectAs = async (id: Identity, daemon: string): Promise<string> => {
    const run = await execAs(id, process.execPath, ['--import', 'tsx', 'test/harness/raw-call-cli.ts', join(supervisor.runDir, `${daemon}.sock`), 'test.who', '{}'], { cwd: REPO, timeoutMs: 60_000 });
    if (run.code === 0) return (JSON.parse(run.stdout) as { answer: { error: { code: string } } }).answer.error.code;
    return /EACCES/.test(run.stderr) ? 'EACCES' : `exit ${run.code}: ${run.stderr}`;
  };

  it('no socket is world-writable: each is 0660, its daemon\'s, and its callers\' group\'s', () => {
    for (const daemon of SUPERVISED) {
      const st = statSync(join(supervisor.runDir, `${daemon}.sock`));
      assert.equal(`${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`, `660 ${OWNERS[daemon]}`, daemon);
    }
  });

  it('a local user who is no caller cannot connect to any socket', async () => {
    for (const daemon of SUPERVISED) assert.equal(await connectAs(TEST_IDS.other, daemon), 'EACCES', daemon);
  });

  it('deployd\'s account, with the groups the supervisor gives it, reaches every daemon it calls', async () => {
    for (const daemon of ['privd', 'keyd', 'acmed', 'netd']) assert.equal(await connectAs(withSocketGroups('certsep-deploy'), daemon), 'E_UNKNOWN_METHOD', daemon);
  });

  it('the supervised deployd runs with the socket groups of its account', () => {
    const status = readFileSync(`/proc/${supervisor.pidOf('deployd')}/status`, 'utf8');
    const groups = /^Groups:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number).sort();
    assert.deepEqual(groups, withSocketGroups('certsep-deploy').groups!.slice().sort());
  });
});
