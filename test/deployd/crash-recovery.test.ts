// kill -9 of deployd, acmed or privd in the middle of a renewal: the certificate nginx serves stays
// the old one until a later run completes; that run finishes the job (installing the chain the
// interrupted run was already issued, when there was one, instead of ordering again); no lease is
// left open; the lineage advances exactly once. Daemons run under certsep-supervisor, which
// restarts the killed one. nginx's check is slowed by a second so a kill can land inside it.
// A kill from outside lands when the journal shows the step; deployd's own crash points
// (CERTSEP_TEST_HOOKS=1, deployd/crash-hook.ts) land exactly where a step's effect is not yet
// recorded: before keyd makes the CSR, after privd installed (files replaced, not checked), and
// before privd is asked to reload.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DaemonName } from '../../proto/api.ts';
import { waitFor } from '../harness/proc.ts';
import { startCertsep, type CertsepUnderTest, type Site } from './certsep-under-test.ts';

interface Case {
  daemon: DaemonName;
  step: 'csr' | 'order' | 'install' | 'check' | 'reload';
  site: Site;
  /** The chain was issued before the kill, so the next run must install it, not order again. */
  resumesOrder: boolean;
  /** deployd kills itself at this crash point instead of being killed when the journal shows the step. */
  crashPoint?: 'csr' | 'installed' | 'reload';
}

const CASES: Case[] = [
  { daemon: 'deployd', step: 'order', site: 'ec', resumesOrder: false },
  { daemon: 'acmed', step: 'order', site: 'rsa', resumesOrder: false },
  { daemon: 'deployd', step: 'check', site: 'san', resumesOrder: true },
  { daemon: 'privd', step: 'check', site: 'ec', resumesOrder: true },
  { daemon: 'deployd', step: 'csr', site: 'rsa', resumesOrder: false, crashPoint: 'csr' },
  { daemon: 'deployd', step: 'install', site: 'san', resumesOrder: true, crashPoint: 'installed' },
  { daemon: 'deployd', step: 'reload', site: 'ec', resumesOrder: true, crashPoint: 'reload' },
];

describe('a daemon killed with SIGKILL during a renewal', () => {
  let certsep: CertsepUnderTest;

  before(async () => {
    certsep = await startCertsep({ slowCheckSeconds: 1, testHooks: true });
    const first = await certsep.ctl(['renew', '--all']);
    assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
    // After a reload nginx's old workers (still holding the placeholders) may answer for a moment:
    // "the old certificate" is only defined once they are gone.
    await certsep.nginx.oldWorkersGone();
  });
  after(async () => {
    await certsep?.stop();
  });

  for (const { daemon, step, site, resumesOrder, crashPoint } of CASES) {
    test(`kill -9 of ${daemon} at the ${step} step${crashPoint ? ` (its crash point ${crashPoint})` : ''}: the old certificate keeps serving, the next run completes ${resumesOrder ? 'with the already issued chain' : ''}`, async () => {
      const oldSerial = await certsep.servedSerial(site);
      const renewalsBefore = certsep.journal().certs[site]!.renewals;
      const versionBefore = await installedVersion(certsep, site);
      const servedDuring = new Set<string>();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          servedDuring.add(await certsep.servedSerial(site));
          await sleep(25);
        }
      })();

      const hookFile = join(certsep.dir, 'state', 'deployd', 'test-crash-at');
      const pid = certsep.pidOf(daemon);
      const auditMark = { keyd: auditLines(certsep, 'keyd').length, privd: auditLines(certsep, 'privd').length };
      if (crashPoint) writeFileSync(hookFile, crashPoint);
      const interrupted = certsep.ctl(['renew', '--force', site]);
      let journaledSerial = crashPoint ? undefined : await waitForStep(certsep, site, step);
      if (!crashPoint) process.kill(pid, 'SIGKILL');
      const killedRun = await interrupted;
      assert.equal(killedRun.code, 1, `the interrupted run reports failure:\n${killedRun.stdout}\n${killedRun.stderr}`);
      if (crashPoint) {
        assert.equal(existsSync(hookFile), false, 'deployd reached its crash point');
        // Where it died, in the words of the daemons it had (or had not yet) asked.
        const calls = auditedCalls(certsep, site, auditMark);
        const expected = { csr: [[], ['keyd.csr.create']], installed: [['privd.deploy.install'], ['privd.deploy.check']], reload: [['privd.deploy.check'], ['privd.deploy.reload']] }[crashPoint];
        for (const call of expected[0]!) assert.ok(calls.includes(call), `${call} was made: ${calls.join(' ')}`);
        for (const call of expected[1]!) assert.ok(!calls.includes(call), `${call} was not made: ${calls.join(' ')}`);
        journaledSerial = journaledSerialOf(certsep, site);
      }
      await waitFor(async () => certsep.pidOf(daemon) !== pid, 20_000, `the supervisor to restart ${daemon}`);
      await certsep.waitForDaemons();
      sampling = false;
      await sampler;
      assert.deepEqual([...servedDuring], [oldSerial], 'nginx served the old certificate throughout');
      assert.equal(await certsep.servedSerial(site), oldSerial);

      const next = await certsep.ctl(['renew', '--force', site]);
      assert.equal(next.code, 0, `${next.stdout}\n${next.stderr}`);
      const newSerial = await certsep.servedSerialOtherThan(site, oldSerial);
      assert.doesNotMatch(newSerial, /^untrusted/);
      if (resumesOrder) {
        assert.match(next.stdout, /\(resumed\)/, 'the next run reused the chain instead of ordering again');
        assert.equal(newSerial, journaledSerial);
      }
      assert.equal(certsep.journal().certs[site]!.renewals, renewalsBefore + 1, 'the lineage advanced exactly once');
      assert.equal(await installedVersion(certsep, site), versionBefore + 1, 'privd committed exactly one new version');
      assert.equal(certsep.journal().certs[site]!.inFlight, undefined, 'nothing left in flight');
      const leases = await certsep.ctl(['leases']);
      assert.equal(leases.code, 0, leases.stderr);
      assert.match(leases.stdout, /no open leases/);
      const status = await certsep.ctl(['status', site]);
      assert.equal(status.code, 0, `${status.stdout}${status.stderr}`);
      assert.doesNotMatch(status.stdout, /install pending|DIFFER/);
    });
  }
});

/** Polls deployd's journal until the certificate's run reaches step; answers the journaled serial, if any. */
async function waitForStep(certsep: CertsepUnderTest, site: Site, step: string): Promise<string | undefined> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const inFlight = certsep.journal().certs[site]?.inFlight as { keyTypes: Record<string, { step: string; serial?: string }> } | undefined;
    const reached = Object.values(inFlight?.keyTypes ?? {}).find((k) => k.step === step);
    if (reached) return reached.serial;
    await sleep(2);
  }
  throw new Error(`${site} never reached the ${step} step`);
}

/** The serial of the chain the interrupted run had been issued, from deployd's journal. */
function journaledSerialOf(certsep: CertsepUnderTest, site: Site): string | undefined {
  const inFlight = certsep.journal().certs[site]?.inFlight as { keyTypes: Record<string, { serial?: string }> } | undefined;
  return Object.values(inFlight?.keyTypes ?? {}).find((k) => k.serial !== undefined)?.serial;
}

/** The lineage version privd has committed for the site's (first) key type. */
async function installedVersion(certsep: CertsepUnderTest, site: Site): Promise<number> {
  const status = await certsep.ctl(['status', '--json']);
  assert.equal(status.code, 0, status.stderr);
  const cert = (JSON.parse(status.stdout) as { certs: { cert: string; keyTypes: { installed?: { version: number } }[] }[] }).certs.find((c) => c.cert === site);
  const version = cert?.keyTypes[0]?.installed?.version;
  assert.ok(version !== undefined, `${site} has an installed version`);
  return version;
}

function auditLines(certsep: CertsepUnderTest, daemon: 'keyd' | 'privd'): string[] {
  return readFileSync(join(certsep.dir, 'audit', `${daemon}.audit.jsonl`), 'utf8').split('\n').filter(Boolean);
}

/** The successful calls keyd and privd audited for the site since the mark, as daemon.method. */
function auditedCalls(certsep: CertsepUnderTest, site: Site, mark: { keyd: number; privd: number }): string[] {
  return (['keyd', 'privd'] as const).flatMap((daemon) => auditLines(certsep, daemon).slice(mark[daemon])
    .map((line) => JSON.parse(line) as { method: string; outcome: string; params?: { cert?: string; certs?: string[] } })
    .filter((r) => r.outcome === 'ok' && (r.params?.cert === site || r.params?.certs?.includes(site)))
    .map((r) => `${daemon}.${r.method}`));
}
