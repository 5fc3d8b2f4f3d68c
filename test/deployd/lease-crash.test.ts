// kill -9 of deployd while it holds a real netd lease: a certificate with an nft exposure, deployd
// killed by its crash point `lease` (netd opened the lease, the journal names it, no order yet).
// The lease it left behind must be closed when deployd comes back, the next run must complete,
// the old certificate must be served throughout, and the lineage must advance exactly once.
// netd really changes nftables, so the whole suite (Pebble, nginx, the supervisor and its daemons,
// certsepctl) runs inside a network namespace made here: this file re-runs itself inside it with
// `ip netns exec` (a process cannot move itself into a namespace), and the outer test only
// creates the namespace with a veth pair (both ends in it; this kernel has no dummy
// links) whose one end is the exposure's interface, and reports the inner run.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNetns, deleteNetns, runTestFileInNetns } from '../harness/netns.ts';
import { runCommand, waitFor } from '../harness/proc.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { startCertsep, type CertsepUnderTest } from './certsep-under-test.ts';

const INSIDE = 'CERTSEP_LEASE_CRASH_NETNS';
const SITE = 'ec';
const INTERFACE = 'ext0';

if (process.env[INSIDE] === undefined) {
  test('deployd killed while holding an nft lease recovers (the suite runs in its own network namespace)', async () => {
    const ns = await createNetns('lease-crash');
    try {
      for (const args of [['link', 'add', INTERFACE, 'type', 'veth', 'peer', 'name', `${INTERFACE}-peer`], ['addr', 'add', '10.79.0.2/24', 'dev', INTERFACE], ['link', 'set', INTERFACE, 'up'], ['link', 'set', `${INTERFACE}-peer`, 'up']]) {
        const r = await runCommand('ip', ['-n', ns, ...args]);
        assert.equal(r.code, 0, `ip -n ${ns} ${args.join(' ')}: ${r.stderr}`);
      }
      const inner = await runTestFileInNetns(ns, fileURLToPath(import.meta.url), { [INSIDE]: ns }, 240_000);
      console.log(inner.stdout);
      assert.equal(inner.code, 0, `the run inside ${ns} failed:\n${inner.stdout}\n${inner.stderr}`);
    } finally {
      await deleteNetns(ns);
    }
  });
} else {
  describe(`inside network namespace ${process.env[INSIDE]}: deployd killed right after netd opened its lease`, () => {
    let certsep: CertsepUnderTest;

    before(async () => {
      certsep = await startCertsep({
        testHooks: true,
        exposure: { site: SITE, config: { method: 'nft', interface: INTERFACE, externalPort: 80, internalPort: 8402, internalAddress: '127.0.0.1', maxTtlSeconds: 600 } },
      });
      const first = await certsep.ctl(['renew', SITE]);
      assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
      await certsep.nginx.oldWorkersGone();
    });
    after(async () => {
      await certsep?.stop();
    });

    test('the lease deployd left open is closed when it comes back, and the next run renews exactly once', async (t) => {
      const oldSerial = await certsep.servedSerial(SITE);
      const renewalsBefore = certsep.journal().certs[SITE]!.renewals;
      const versionBefore = await installedVersion(certsep);
      const netdAuditMark = netdAudit(certsep).length;
      const servedDuring = new Set<string>();
      const elementsSeen = new Set<string>();
      let sampling = true;
      const servedSampler = (async () => {
        while (sampling) {
          servedDuring.add(await certsep.servedSerial(SITE));
          await sleep(25);
        }
      })();
      const setSampler = (async () => {
        while (sampling) {
          for (const element of await exposedElements()) elementsSeen.add(element);
          await sleep(10);
        }
      })();

      const hookFile = join(certsep.dir, 'state', 'deployd', 'test-crash-at');
      const pid = certsep.pidOf('deployd');
      writeFileSync(hookFile, 'lease');
      const killedRun = await certsep.ctl(['renew', '--force', SITE]);
      assert.equal(killedRun.code, 1, `the interrupted run reports failure:\n${killedRun.stdout}\n${killedRun.stderr}`);
      // Read at once: the journal names the lease until the restarted deployd has closed it.
      const leftOpen = (certsep.journal().certs[SITE]?.inFlight as { leaseId?: string } | undefined)?.leaseId;
      assert.equal(existsSync(hookFile), false, 'deployd reached its crash point');
      assert.ok(leftOpen !== undefined, 'the journal names the lease deployd left open');
      const opened = netdAudit(certsep).slice(netdAuditMark).filter((r) => r.method === 'lease.open' && r.outcome === 'ok');
      assert.equal(opened.length, 1, 'netd opened one lease before deployd died');
      assert.equal(opened[0]!.peer?.uid, TEST_IDS.deployd.uid);

      await waitFor(async () => certsep.pidOf('deployd') !== pid, 20_000, 'the supervisor to restart deployd');
      await certsep.waitForDaemons();
      // Recovery at deployd's start closes the lease; wait for that before stopping the samplers.
      await waitFor(async () => (await exposedElements()).length === 0, 20_000, 'the exposure to be gone');
      sampling = false;
      await Promise.all([servedSampler, setSampler]);
      assert.ok([...elementsSeen].some((e) => e.includes(INTERFACE) && e.includes('80')), `the lease was a real set element while open: ${[...elementsSeen].join(' ')}`);
      assert.deepEqual([...servedDuring], [oldSerial], 'nginx served the old certificate throughout');

      const next = await certsep.ctl(['renew', '--force', SITE]);
      assert.equal(next.code, 0, `${next.stdout}\n${next.stderr}`);
      const newSerial = await certsep.servedSerialOtherThan(SITE, oldSerial);
      assert.doesNotMatch(newSerial, /^untrusted/);
      assert.equal(certsep.journal().certs[SITE]!.renewals, renewalsBefore + 1, 'the lineage advanced exactly once');
      assert.equal(await installedVersion(certsep), versionBefore + 1, 'privd committed exactly one new version');
      assert.equal(certsep.journal().certs[SITE]!.inFlight, undefined, 'nothing left in flight');

      const leases = await certsep.ctl(['leases']);
      assert.equal(leases.code, 0, leases.stderr);
      assert.match(leases.stdout, /no open leases/);
      assert.deepEqual(await exposedElements(), [], "netd's nft set has no element");

      // Which way the left-behind lease ended, in netd's words.
      const ended = netdAudit(certsep).slice(netdAuditMark).filter((r) => (r.method === 'lease.close' || r.method === 'lease.expire') && r.params?.id === leftOpen);
      assert.equal(ended.length, 1, `the left-behind lease ended once: ${JSON.stringify(ended)}`);
      assert.equal(ended[0]!.method, 'lease.close', 'closed by deployd on recovery, not left to expire');
      assert.equal(ended[0]!.outcome, 'ok');
      assert.equal(ended[0]!.peer?.uid, TEST_IDS.deployd.uid);
      t.diagnostic(`lease ${leftOpen} ended by ${ended[0]!.method} from uid ${ended[0]!.peer?.uid}; set elements seen while open: ${[...elementsSeen].join(' ')}`);
    });
  });
}

interface NetdAuditRecord {
  method: string;
  outcome: string;
  peer?: { uid: number; pid: number } | null;
  params?: { id?: string };
}

function netdAudit(certsep: CertsepUnderTest): NetdAuditRecord[] {
  const path = join(certsep.dir, 'audit', 'netd.audit.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as NetdAuditRecord);
}

/** The elements of netd's nft set in this namespace (none before netd made its table). */
async function exposedElements(): Promise<string[]> {
  const r = await runCommand('nft', ['-j', 'list', 'set', 'inet', 'certsep', 'exposed'], { timeoutMs: 10_000 });
  if (r.code !== 0) return [];
  const out = JSON.parse(r.stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  return (out.nftables.find((o) => o.set)?.set?.elem ?? []).map((e) => JSON.stringify(e));
}

/** The lineage version privd has committed for the site's key type. */
async function installedVersion(certsep: CertsepUnderTest): Promise<number> {
  const status = await certsep.ctl(['status', '--json']);
  assert.equal(status.code, 0, status.stderr);
  const cert = (JSON.parse(status.stdout) as { certs: { cert: string; keyTypes: { installed?: { version: number } }[] }[] }).certs.find((c) => c.cert === SITE);
  const version = cert?.keyTypes[0]?.installed?.version;
  assert.ok(version !== undefined, `${SITE} has an installed version`);
  return version;
}
