// deploy.reload is a root action on a real service: privd takes it from deployd (and a remote
// host's forced command) only within a run that installed something and passed its check; an
// admin may reload at any time, and is audited. And privd's one queue of mutating requests takes
// callers in turns, so deployd queuing long checks cannot keep an admin waiting behind all of them.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { startNginx, type Nginx } from '../harness/nginx.ts';
import { freePort } from '../harness/ports.ts';
import { trackDaemon, waitFor } from '../harness/proc.ts';
import type { RawAnswer } from '../harness/raw-call.ts';
import { REPO } from '../harness/suite.ts';
import { setprivArgs, TEST_IDS, type Identity } from '../harness/uids.ts';
import { nginxService, startPrivdSuite, targetDir, type PrivdSuite } from './privd-suite.ts';

const NAMES = ['reload.certsep.test'];
const QUEUED_CHECKS = 4;
const DNS_HOOK = { type: 'dns-01-hook', command: ['/bin/true'] };
const SLOW_NAME = 'slow.certsep.test';

describe('privd deploy.reload and its queue', () => {
  let suite: PrivdSuite;
  let nginx: Nginx;
  let gate: string;
  let marks: string;

  before(async () => {
    suite = await startPrivdSuite(async (dir, ca) => {
      const webDir = targetDir(dir, 'web');
      const slowDir = targetDir(dir, 'slow');
      const webTarget = { dir: webDir, files: ['fullchain', 'privkey'], services: ['nginx'] };
      const bootstrap = await ca.issueWithNewKey(NAMES);
      writeFileSync(join(webDir, 'fullchain.pem'), bootstrap.chainPem);
      writeFileSync(join(webDir, 'privkey.pem'), bootstrap.keyPem, { mode: 0o600 });
      const tls = { certPath: join(webDir, 'fullchain.pem'), keyPath: join(webDir, 'privkey.pem') };
      nginx = await startNginx({ servers: [{ listen: await freePort(), tls }] });
      // A check that runs until the test opens its gate: each run notes that it started, then
      // waits for one line on a FIFO.
      gate = join(dir, 'gate');
      marks = join(dir, 'checks-started');
      execFileSync('mkfifo', ['-m', '0600', gate]);
      return {
        services: {
          nginx: nginxService(nginx),
          gated: {
            check: [['/bin/sh', '-c', `echo started >> ${marks} && read line < ${gate}`]],
            reload: { command: ['true'] },
            timeoutSeconds: 600,
          },
        },
        certificates: [
          { name: 'web', domains: NAMES, challenge: DNS_HOOK, targets: [webTarget] },
          { name: 'slow', domains: [SLOW_NAME], challenge: DNS_HOOK, targets: [{ dir: slowDir, services: ['gated'] }] },
        ],
      };
    });
  });

  after(async () => {
    await nginx?.stop();
    await suite?.stop();
  });

  const asDeployd = async (method: string, params: unknown) =>
    (await suite.callAs(TEST_IDS.deployd, method, params)).answer;
  const assertRefusedReload = async (why: string) => {
    const reloads = nginx.reloadCount();
    const mark = suite.auditMark();
    const answer = await asDeployd('deploy.reload', { certs: ['web'] });
    assert.equal(answer.ok ? 'reloaded' : answer.error.code, 'E_NOT_CHECKED', why);
    const record = await suite.awaitAudit(mark, (r) => r.method === 'deploy.reload');
    assert.equal(record.code, 'E_NOT_CHECKED');
    assert.equal(record.peer?.uid, TEST_IDS.deployd.uid);
    assert.equal(nginx.reloadCount(), reloads, `nginx was not reloaded (${why})`);
  };

  it('deployd cannot make privd reload nginx without a run that installed something and passed its check', async () => {
    await assertRefusedReload('no run at all');
    const issued = await suite.issue('web', 'ec-p256', { names: NAMES });
    const installed = await asDeployd('deploy.install', {
      cert: 'web', keyType: 'ec-p256', chainPem: issued.chainPem, keyId: issued.keyId,
    });
    assert.ok(installed.ok, JSON.stringify(installed));
    await assertRefusedReload('installed, not checked');

    const reloads = nginx.reloadCount();
    assert.ok((await asDeployd('deploy.check', { certs: ['web'] })).ok);
    const reloaded = await asDeployd('deploy.reload', { certs: ['web'] });
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
    await waitFor(() => nginx.reloadCount() === reloads + 1, 10_000, 'nginx to reload once');
    await assertRefusedReload('the run was committed by that reload');
  });

  it('an admin may reload without a run, and the reload is audited with the admin\'s uid', async () => {
    const reloads = nginx.reloadCount();
    const mark = suite.auditMark();
    const answer = await suite.call('deploy.reload', { certs: ['web'] });
    assert.ok(answer.ok, JSON.stringify(answer));
    assert.deepEqual(answer.result['reloaded'], ['nginx']);
    const record = await suite.awaitAudit(mark, (r) => r.method === 'deploy.reload');
    assert.equal(record.outcome, 'ok');
    assert.equal(record.peer?.uid, 0);
    await waitFor(() => nginx.reloadCount() === reloads + 1, 10_000, 'nginx to reload once');
  });

  it(`an admin's reload waits for at most two of ${QUEUED_CHECKS} long checks deployd queued before it`, async () => {
    const started = () => (existsSync(marks) ? readFileSync(marks, 'utf8').split('\n').filter(Boolean).length : 0);
    let released = 0;
    /**
     * Lets the next gated check finish. Waiting until it noted its start means the one before it
     * has exited, so the line cannot go to a reader that is already done.
     */
    const releaseNext = async () => {
      const n = released + 1;
      await waitFor(() => started() >= n, 30_000, `gated check ${n} to start`);
      await waitFor(() => {
        try {
          const fd = openSync(gate, constants.O_WRONLY | constants.O_NONBLOCK);
          writeSync(fd, 'go\n');
          closeSync(fd);
          return true;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENXIO') return false; // not reading yet
          throw e;
        }
      }, 30_000, `gated check ${n} to read its gate`, 20);
      released = n;
    };
    const queued = Array.from({ length: QUEUED_CHECKS }, () => ['deploy.check', { certs: ['slow'] }] as const);
    const checks = pipelined(suite.socketPath, TEST_IDS.deployd, [...queued, ['status', { certs: ['slow'] }]]);
    // status is not queued: once it is answered, every check before it on the connection is.
    await waitFor(() => checks.answers.has(QUEUED_CHECKS) && started() >= 1, 30_000, 'deployd\'s checks to be queued');
    const admin = pipelined(suite.socketPath, null, [['deploy.reload', { certs: ['web'] }], ['status', {}]]);
    await waitFor(() => admin.answers.has(1), 30_000, 'the admin\'s reload to be queued');
    const adminAnswered = () => admin.answers.has(0);
    try {
      await releaseNext();
      await waitFor(() => adminAnswered() || started() >= 2, 30_000, 'the next request to run');
      if (!adminAnswered()) await releaseNext();
      await waitFor(adminAnswered, 30_000, `the admin's reload, deployd's checks 3..${QUEUED_CHECKS} still queued`);
      assert.ok(admin.answers.get(0)!.ok, JSON.stringify(admin.answers.get(0)));
    } finally {
      while (released < QUEUED_CHECKS) await releaseNext();
    }
    await waitFor(() => checks.answers.size === QUEUED_CHECKS + 1, 30_000, 'every queued request to finish');
    for (let id = 0; id < QUEUED_CHECKS; id++) {
      assert.ok(checks.answers.get(id)?.ok, `check ${id}: ${JSON.stringify(checks.answers.get(id))}`);
    }
  });
});

/** Sends requests on one connection at once, as id (null: root); answers by index as they arrive. */
function pipelined(
  socket: string,
  id: Identity | null,
  requests: ReadonlyArray<readonly [string, unknown]>,
): { answers: Map<number, RawAnswer> } {
  const args = ['--import', 'tsx', 'test/privd/pipelined-calls.ts', socket, JSON.stringify(requests)];
  const [cmd, argv] = id === null ? [process.execPath, args] : ['setpriv', setprivArgs(id, process.execPath, args)];
  const client = trackDaemon(spawn(cmd, argv, { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] }));
  const answers = new Map<number, RawAnswer>();
  createInterface({ input: client.stdout! }).on('line', (line) => {
    const { id: index, ...answer } = JSON.parse(line) as RawAnswer & { id: number };
    answers.set(index, answer);
  });
  return { answers };
}
