// privd killed (SIGKILL, as by a power cut) at each step of a run on a 3-target certificate, then
// started again: every target must hold the complete old set or the complete new set — never a
// mix — no temp or backup may be left behind, and the repair must be in the audit log.
// The kill comes from privd's own test hook (CERTSEP_TEST_HOOKS=1 CERTSEP_PRIVD_CRASH_AT=<step>,
// see privd/crash-hook.ts): only privd knows when it is between two renames.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitForExit } from '../harness/proc.ts';
import { readTarget, startPrivdSuite, targetDir, type Issued, type PrivdSuite } from './privd-suite.ts';

const NAMES = ['triple.certsep.test'];
const FILES = ['cert.pem', 'chain.pem', 'combined.pem', 'fullchain.pem', 'privkey.pem'];

type FileSet = Record<string, string>;

function expectedSet(issued: Issued): FileSet {
  return {
    'cert.pem': issued.leafPem,
    'chain.pem': issued.chainPem.slice(issued.leafPem.length),
    'combined.pem': issued.chainPem + issued.keyPem,
    'fullchain.pem': issued.chainPem,
    'privkey.pem': issued.keyPem,
  };
}

const visible = (set: FileSet): FileSet => Object.fromEntries(Object.entries(set).filter(([name]) => !name.startsWith('.')));

describe('privd crash safety', () => {
  let suite: PrivdSuite;
  let dirs: string[];

  before(async () => {
    suite = await startPrivdSuite((dir) => {
      dirs = ['a', 'b', 'c'].map((name) => targetDir(dir, name));
      return {
        services: { noop: { reload: { command: ['true'] } } },
        certificates: [{
          name: 'triple',
          domains: NAMES,
          challenge: { type: 'dns-01-hook', command: ['/bin/true'] },
          targets: dirs.map((d) => ({ dir: d, files: ['cert', 'chain', 'fullchain', 'privkey', 'combined'], services: ['noop'] })),
        }],
      };
    });
    const first = await suite.issue('triple', 'ec-p256', { names: NAMES });
    await suite.install('triple', 'ec-p256', first);
    assert.ok((await suite.call('deploy.reload', { certs: ['triple'] })).ok);
  });

  after(async () => {
    await suite?.stop();
  });

  const install = (issued: Issued) => suite.call('deploy.install', { cert: 'triple', keyType: 'ec-p256', chainPem: issued.chainPem, keyId: issued.keyId });
  const installAndReload = async (issued: Issued) => {
    const installed = await install(issued);
    assert.ok(installed.ok, JSON.stringify(installed));
    assert.ok((await suite.call('deploy.check', { certs: ['triple'] })).ok);
    return suite.call('deploy.reload', { certs: ['triple'] });
  };

  /** Runs drive under a privd armed to die at point; returns the targets before, at the crash, and after the repair. */
  async function crashAt(point: string, drive: (issued: Issued) => ReturnType<typeof install>) {
    const old = dirs.map(readTarget);
    const issued = await suite.issue('triple', 'ec-p256', { names: NAMES });
    const fresh = expectedSet(issued);
    await suite.restartPrivd({ CERTSEP_TEST_HOOKS: '1', CERTSEP_PRIVD_CRASH_AT: point });
    const answer = await drive(issued);
    assert.equal(answer.ok, false);
    assert.equal(answer.error.code, 'E_CLOSED', `privd answered instead of dying at ${point}: ${JSON.stringify(answer)}`);
    await waitForExit(suite.privd().child);
    assert.equal(suite.privd().child.signalCode, 'SIGKILL');
    const atCrash = dirs.map(readTarget);

    const mark = suite.auditMark();
    await suite.restartPrivd();
    const repaired = dirs.map(readTarget);
    repaired.forEach((files, i) => {
      assert.deepEqual(Object.keys(files), FILES, `target ${i + 1} holds exactly its five files, no temp`);
      const isOld = JSON.stringify(files) === JSON.stringify(old[i]);
      const isNew = JSON.stringify(files) === JSON.stringify(fresh);
      assert.ok(isOld !== isNew, `target ${i + 1} holds the complete old set or the complete new set after a crash at ${point}`);
    });
    const repair = await suite.awaitAudit(mark, (r) => r.method === 'run.repair');
    assert.equal(repair.peer, null);
    assert.equal(repair.detail?.['cert'], 'triple');
    const stateDir = join(suite.dir, 'state', 'privd');
    assert.deepEqual(JSON.parse(readFileSync(join(stateDir, 'journal.json'), 'utf8')).runs, [], 'the journal holds no run');
    assert.deepEqual(existsSync(join(stateDir, 'backups')) ? readdirSync(join(stateDir, 'backups')) : [], [], 'no backup left behind');
    const status = await suite.call('status', { certs: ['triple'] });
    assert.ok(status.ok);
    assert.match(JSON.stringify(status.result), /"pending":false/);
    assert.doesNotMatch(JSON.stringify(status.result), /"matches":false/, 'every target matches the lineage');
    return { old, fresh, atCrash, repaired, repair };
  }

  const assertRolledBack = (r: Awaited<ReturnType<typeof crashAt>>) => {
    assert.deepEqual(r.repaired, r.old, 'every target is back to its old set');
    assert.match(r.repair.message ?? '', /rolled back the interrupted .* run of triple: restored the previous files of 3 target\(s\)/);
  };

  it('privd rolls back a run killed right after its journal entry', async () => {
    const r = await crashAt('journal-written', install);
    assert.deepEqual(r.atCrash, r.old, 'nothing was written yet');
    assertRolledBack(r);
  });

  it('privd rolls back a run killed after staging, removing the temps', async () => {
    const r = await crashAt('staged', install);
    assert.ok(r.atCrash.every((files) => Object.keys(files).some((name) => name.startsWith('.'))), 'temps were beside every target');
    assert.deepEqual(r.atCrash.map(visible), r.old);
    assertRolledBack(r);
  });

  it('privd rolls back a run killed after backing up the old files', async () => {
    const r = await crashAt('backed-up', install);
    assert.deepEqual(r.atCrash.map(visible), r.old);
    assertRolledBack(r);
  });

  it('privd rolls back a run killed in the middle of a target, when that target held a mix', async () => {
    const r = await crashAt('mid-target', install);
    const [a, b, c] = r.atCrash.map(visible);
    assert.deepEqual(a, r.fresh, 'the first target was complete');
    assert.equal(b!['cert.pem'], r.fresh['cert.pem'], 'the second target had its first file renamed');
    assert.equal(b!['privkey.pem'], r.old[1]!['privkey.pem'], '... and the rest still old: a mix');
    assert.deepEqual(c, r.old[2]);
    assertRolledBack(r);
  });

  it('privd rolls back a run killed after every rename, before it was checked', async () => {
    const r = await crashAt('renamed', install);
    assert.ok(r.atCrash.map(visible).every((files) => JSON.stringify(files) === JSON.stringify(r.fresh)));
    assertRolledBack(r);
  });

  it('privd rolls back a run killed after reloading and reloads the services with the old files', async () => {
    const r = await crashAt('reloaded', installAndReload);
    assertRolledBack(r);
    assert.match(r.repair.message ?? '', /reloaded noop/);
  });

  it('privd completes a run killed while committing (rolls it forward: it was checked and reloaded)', async () => {
    const r = await crashAt('committing', installAndReload);
    assert.ok(r.repaired.every((files) => JSON.stringify(files) === JSON.stringify(r.fresh)), 'every target holds the new set');
    assert.match(r.repair.message ?? '', /completed the interrupted commit of triple \(rolled forward\)/);
    const live = readlinkSync(join(suite.dir, 'state', 'live', 'triple', 'cert.pem'));
    assert.match(live, /cert[0-9]+\.pem$/);
    assert.notEqual(live, '../../archive/triple/cert1.pem', 'live moved to the new version');
  });
});
