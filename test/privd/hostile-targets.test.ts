// What a user can do to privd through a target directory that stopped being root's after an
// install — an admin handed it (or a directory above it) to the web server's user, as happens —
// and what privd must then refuse: hanging on a FIFO where a file was, following a symlink put
// there, and writing or deleting through a directory swapped for a symlink when it rolls back or
// repairs a run. Every attack runs as a real other uid (setpriv).
import assert from 'node:assert/strict';
import {
  chownSync, closeSync, constants, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitForExit } from '../harness/proc.ts';
import { rawCall } from '../harness/raw-call.ts';
import { execAs, TEST_IDS } from '../harness/uids.ts';
import { snapshot, startPrivdSuite, targetDir, type PrivdSuite } from './privd-suite.ts';

const NAMES = { web: ['web.certsep.test'], swap1: ['swap1.certsep.test'], swap2: ['swap2.certsep.test'] };
const VICTIM_TEXT = 'a file of root that no certificate install may touch\n';

interface TargetStatus { dir: string; matches: boolean; differing: string[] }
const pendingIn = (status: Record<string, unknown>) => (status['certs'] as { pending: boolean }[])[0]!.pending;

describe('privd and target directories a user took over after the install', () => {
  let suite: PrivdSuite;
  let webDir: string;
  /** swapN: the target <dir>/srvN/certs, and the root-owned directory the attacker points it at. */
  const swap: Record<'swap1' | 'swap2', { parent: string; target: string; victim: string }> = {} as never;

  before(async () => {
    suite = await startPrivdSuite((dir) => {
      webDir = targetDir(dir, 'web');
      for (const name of ['swap1', 'swap2'] as const) {
        const parent = join(dir, `srv-${name}`);
        const victim = join(dir, `victim-${name}`);
        mkdirSync(join(parent, 'certs'), { recursive: true, mode: 0o755 });
        mkdirSync(victim, { mode: 0o755 });
        for (const file of ['cert.pem', 'fullchain.pem']) {
          writeFileSync(join(victim, file), VICTIM_TEXT, { mode: 0o600 });
        }
        swap[name] = { parent, target: join(parent, 'certs'), victim };
      }
      const certificate = (name: keyof typeof NAMES, dir: string) => ({
        name,
        domains: NAMES[name],
        challenge: { type: 'dns-01-hook', command: ['/bin/true'] },
        targets: [{ dir, files: ['cert', 'fullchain', 'privkey'] }],
      });
      const swapped = (['swap1', 'swap2'] as const).map((name) => certificate(name, swap[name].target));
      return { certificates: [certificate('web', webDir), ...swapped] };
    });
    const issued = await suite.issue('web', 'ec-p256', { names: NAMES.web });
    await suite.install('web', 'ec-p256', issued);
    assert.ok((await suite.call('deploy.reload', { certs: ['web'] })).ok);
  });

  after(async () => {
    await suite?.stop();
  });

  const asOther = async (script: string) => {
    const r = await execAs(TEST_IDS.other, '/bin/sh', ['-c', script]);
    assert.equal(r.code, 0, `${script} as uid ${TEST_IDS.other.uid}: ${r.stderr}`);
  };
  const webStatus = async (): Promise<TargetStatus> => {
    const answer = await rawCall(suite.socketPath, 'status', { certs: ['web'] }, 20_000);
    assert.ok(answer.ok, JSON.stringify(answer));
    return (answer.result['certs'] as { keyTypes: { targets: TargetStatus[] }[] }[])[0]!.keyTypes[0]!.targets[0]!;
  };
  /** Hands the target dir to the other uid for the attack, and back to root after it. */
  const handedOver = async (dir: string, attack: () => Promise<void>) => {
    chownSync(dir, TEST_IDS.other.uid, TEST_IDS.other.gid);
    try {
      await attack();
    } finally {
      chownSync(dir, 0, 0);
    }
  };

  it('a FIFO planted where a target file is does not hang privd: status answers, the file differing', async () => {
    const fifo = join(webDir, 'cert.pem');
    const saved = readFileSync(fifo);
    await handedOver(webDir, async () => {
      await asOther(`rm -f ${fifo} && mkfifo -m 0644 ${fifo}`);
      try {
        const target = await webStatus();
        assert.equal(target.matches, false);
        assert.deepEqual(target.differing, ['cert.pem']);
        assert.ok((await rawCall(suite.socketPath, 'status', {}, 20_000)).ok, 'privd still answers everyone');
      } finally {
        // A privd blocked opening the FIFO for reading gets a writer, then end of file.
        try { closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)); } catch { /* nobody was reading */ }
        rmSync(fifo);
        writeFileSync(fifo, saved, { mode: 0o644 });
      }
    });
    assert.equal((await webStatus()).matches, true);
  });

  it('status does not follow a symlink planted where a target file is, even to the right bytes', async () => {
    const key = join(webDir, 'privkey.pem');
    const archived = join(suite.dir, 'state', 'archive', 'web', 'privkey1.pem');
    const saved = readFileSync(key);
    await handedOver(webDir, async () => {
      // The user can read neither file; the link makes nginx read root's copy through a path the user controls.
      await asOther(`rm -f ${key} && ln -s ${archived} ${key}`);
      try {
        const target = await webStatus();
        assert.equal(target.matches, false, 'a symlink is not the file privd installed');
        assert.deepEqual(target.differing, ['privkey.pem']);
      } finally {
        rmSync(key);
        writeFileSync(key, saved, { mode: 0o640 });
      }
    });
    assert.equal((await webStatus()).matches, true);
  });

  /** Installs name (pending), then as the other uid swaps its target dir for a symlink to the victim. */
  const installThenSwap = async (name: 'swap1' | 'swap2', beforeSwap: () => Promise<void> = async () => undefined) => {
    const { parent, target, victim } = swap[name];
    const issued = await suite.issue(name, 'ec-p256', { names: NAMES[name] });
    await beforeSwap();
    const params = { cert: name, keyType: 'ec-p256', chainPem: issued.chainPem, keyId: issued.keyId };
    const installed = await suite.call('deploy.install', params);
    chownSync(parent, TEST_IDS.other.uid, TEST_IDS.other.gid);
    await asOther(`mv ${target} ${target}.taken && ln -s ${victim} ${target}`);
    return { installed, before: snapshot(victim) };
  };
  const undoSwap = (name: 'swap1' | 'swap2') => {
    const { parent, target } = swap[name];
    rmSync(target);
    renameSync(`${target}.taken`, target);
    chownSync(parent, 0, 0);
  };

  it('deploy.rollback does not write or delete through a target directory swapped for a symlink', async () => {
    const { installed, before } = await installThenSwap('swap1');
    assert.ok(installed.ok, JSON.stringify(installed));
    try {
      const mark = suite.auditMark();
      const answer = await suite.call('deploy.rollback', { certs: ['swap1'] });
      assert.deepEqual(snapshot(swap.swap1.victim), before, 'nothing in the directory the symlink points at changed');
      assert.equal(answer.ok, false);
      assert.equal(answer.error.code, 'E_ROLLBACK_FAILED');
      assert.match(answer.error.message, /srv-swap1\/certs is a symbolic link|srv-swap1 is owned by uid 61009/);
      const record = await suite.awaitAudit(mark, (r) => r.method === 'deploy.rollback');
      assert.equal(record.code, 'E_ROLLBACK_FAILED');
      const status = await suite.call('status', { certs: ['swap1'] });
      assert.ok(status.ok);
      assert.equal(pendingIn(status.result), true, 'the run stays journaled for the next try');
    } finally {
      undoSwap('swap1');
    }
    const retried = await suite.call('deploy.rollback', { certs: ['swap1'] });
    assert.ok(retried.ok, 'once the directory is root\'s again the rollback goes through');
  });

  it('repair at start does not write or delete through a target directory swapped for a symlink', async () => {
    const dieAfterRenames = () => suite.restartPrivd({ CERTSEP_TEST_HOOKS: '1', CERTSEP_PRIVD_CRASH_AT: 'renamed' });
    const { installed, before } = await installThenSwap('swap2', dieAfterRenames);
    assert.equal(installed.ok ? 'answered' : installed.error.code, 'E_CLOSED', 'privd died after the renames');
    await waitForExit(suite.privd().child);
    try {
      const mark = suite.auditMark();
      await suite.restartPrivd();
      assert.deepEqual(snapshot(swap.swap2.victim), before, 'nothing in the directory the symlink points at changed');
      const repair = await suite.awaitAudit(mark, (r) => r.method === 'run.repair');
      assert.equal(repair.outcome, 'error');
      assert.match(repair.message ?? '', /srv-swap2/);
      assert.ok((await suite.call('status', {})).ok, 'privd serves the other certificates');
    } finally {
      undoSwap('swap2');
    }
    await suite.restartPrivd();
    const status = await suite.call('status', { certs: ['swap2'] });
    assert.ok(status.ok);
    assert.equal(pendingIn(status.result), false, 'the next start repairs the run');
  });
});
