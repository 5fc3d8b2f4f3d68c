// kill -9 of deployd, acmed or privd in the middle of a renewal: the certificate nginx serves stays
// the old one until a later run completes; that run finishes the job (installing the chain the
// interrupted run was already issued, when there was one, instead of ordering again); no lease is
// left open; the lineage advances exactly once. Daemons run under certsep-supervisor, which
// restarts the killed one. nginx's check is slowed by a second so a kill can land inside it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DaemonName } from '../../proto/api.ts';
import { waitFor } from '../harness/proc.ts';
import { startCertsep, type CertsepUnderTest, type Site } from './certsep-under-test.ts';

interface Case {
  daemon: DaemonName;
  step: 'order' | 'install' | 'check';
  site: Site;
  /** The chain was issued before the kill, so the next run must install it, not order again. */
  resumesOrder: boolean;
}

const CASES: Case[] = [
  { daemon: 'deployd', step: 'order', site: 'ec', resumesOrder: false },
  { daemon: 'acmed', step: 'order', site: 'rsa', resumesOrder: false },
  { daemon: 'deployd', step: 'check', site: 'san', resumesOrder: true },
  { daemon: 'privd', step: 'check', site: 'ec', resumesOrder: true },
];

describe('a daemon killed with SIGKILL during a renewal', () => {
  let certsep: CertsepUnderTest;

  before(async () => {
    certsep = await startCertsep({ slowCheckSeconds: 1 });
    const first = await certsep.ctl(['renew', '--all']);
    assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
    // After a reload nginx's old workers (still holding the placeholders) may answer for a moment:
    // "the old certificate" is only defined once they are gone.
    await waitFor(() => certsep.nginx.workerPids().length === 1, 15_000, 'old nginx workers to exit');
  });
  after(async () => {
    await certsep?.stop();
  });

  for (const { daemon, step, site, resumesOrder } of CASES) {
    test(`kill -9 of ${daemon} at the ${step} step: the old certificate keeps serving, the next run completes ${resumesOrder ? 'with the already issued chain' : ''}`, async () => {
      const oldSerial = await certsep.servedSerial(site);
      const renewalsBefore = certsep.journal().certs[site]!.renewals;
      const servedDuring = new Set<string>();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          servedDuring.add(await certsep.servedSerial(site));
          await sleep(25);
        }
      })();

      const interrupted = certsep.ctl(['renew', '--force', site]);
      const journaledSerial = await waitForStep(certsep, site, step);
      process.kill(certsep.pidOf(daemon), 'SIGKILL');
      const killedRun = await interrupted;
      assert.equal(killedRun.code, 1, `the interrupted run reports failure:\n${killedRun.stdout}\n${killedRun.stderr}`);
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
