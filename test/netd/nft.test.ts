// netd's nftables exposures against the real kernel, in network namespaces made here: "host" runs
// netd (uid 61003, CAP_NET_ADMIN only) and a listener on 127.0.0.1; "peer" is the outside world
// that connects to host's eth0. Each lease is an element of netd's set with a kernel timeout; an
// exposure removed from the config closes at netd's next look at the file.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createNetns, createVethPair, deleteNetns, execInNetns } from '../harness/netns.ts';
import { killTree, waitFor } from '../harness/proc.ts';
import { writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { rawCall } from '../harness/raw-call.ts';
import { fetchFrom, nftIn, NetdInNetns, secondsSince, startChallengeListener } from './netd-in-netns.ts';

const HOST_ADDRESS = '10.78.0.2';
const LISTENER_PORT = 8402;
// Another table, made before netd starts: netd must never change it.
const BYSTANDER = `table ip bystander {
  set watched { type ipv4_addr; elements = { 192.0.2.7 } }
  chain input { type filter hook input priority 0; policy accept; ip saddr @watched drop; }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; tcp dport 9999 dnat to 10.78.0.2:9; }
}
`;

describe('netd with nftables in a network namespace', () => {
  const suiteStarted = Date.now();
  let dir: string;
  let host: string;
  let peer: string;
  let listener: ChildProcess;
  let netd: NetdInNetns;
  let bystanderBefore: string;

  const exposedElements = async () => {
    const out = JSON.parse(await nftIn(host, ['-j', 'list', 'set', 'inet', 'certsep', 'exposed'])) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
    return JSON.stringify(out.nftables.find((o) => o.set)?.set?.elem ?? []);
  };
  const routeLocalnet = async () => (await execInNetns(host, 'cat', ['/proc/sys/net/ipv4/conf/eth0/route_localnet'])).stdout.trim();
  const viaExposure = () => fetchFrom(peer, `http://${HOST_ADDRESS}/`);

  before(async () => {
    dir = makeTempDir('netd-nft');
    host = await createNetns('nft-host');
    peer = await createNetns('nft-peer');
    await createVethPair({ ns: host, ifname: 'eth0', address: `${HOST_ADDRESS}/24` }, { ns: peer, ifname: 'eth0', address: '10.78.0.1/24' });
    listener = await startChallengeListener(host, '127.0.0.1', LISTENER_PORT, 'challenge-ok', join(dir, 'listener.log'));
    await nftIn(host, ['-f', '-'], BYSTANDER);
    bystanderBefore = await nftIn(host, ['list', 'table', 'ip', 'bystander']);
    const configPath = writeTestConfig(dir, {
      exposures: {
        web: { method: 'nft', interface: 'eth0', externalPort: 80, internalPort: LISTENER_PORT, internalAddress: '127.0.0.1', maxTtlSeconds: 600 },
        alt: { method: 'nft', interface: 'eth0', externalPort: 81, internalPort: LISTENER_PORT, internalAddress: '127.0.0.1' },
      },
      certificates: [
        { name: 'site', domains: ['site.example'], challenge: { type: 'http-01-listener' }, exposure: 'web' },
        { name: 'plain', domains: ['plain.example'], challenge: { type: 'http-01-listener' } },
      ],
    });
    netd = new NetdInNetns(host, dir, configPath);
    await netd.start();
  });

  after(async () => {
    await netd?.stop();
    if (listener?.pid) await killTree(listener.pid);
    for (const ns of [host, peer]) if (ns) await deleteNetns(ns);
    if (dir) removeTempDir(dir);
    console.log(`nft namespace suite took ${secondsSince(suiteStarted)} s`);
  });

  test('netd runs as a non-root uid whose only effective capability is CAP_NET_ADMIN', () => {
    const { uid, capEff } = netd.identity();
    assert.equal(uid, TEST_IDS.netd.uid);
    assert.equal(BigInt(`0x${capEff}`), 0x1000n, `CapEff ${capEff}`);
  });

  test('a lease DNATs the external port to the loopback listener until it is closed', async (t) => {
    const started = Date.now();
    assert.equal(await viaExposure(), null, 'the port must be closed before any lease');
    assert.equal(await routeLocalnet(), '0');
    const lease = await netd.openLease('site', 'web', 60);
    assert.equal(lease.method, 'nft');
    assert.equal(lease.externalPort, 80);
    assert.ok(Date.parse(lease.deadline) - Date.now() > 50_000 && Date.parse(lease.deadline) - Date.now() <= 60_000);
    assert.equal(await viaExposure(), 'challenge-ok\n');
    assert.equal(await routeLocalnet(), '1', 'DNAT to 127.0.0.1 needs route_localnet on eth0');
    assert.match(await exposedElements(), /"eth0",\s*80/);
    assert.deepEqual((await netd.listLeases()).map((l) => l.id), [lease.id]);

    await netd.closeLease(lease.id);
    assert.equal(await viaExposure(), null);
    assert.equal(await exposedElements(), '[]');
    assert.equal(await routeLocalnet(), '0', 'route_localnet is put back when no lease needs it');
    assert.deepEqual(await netd.listLeases(), []);
    const closeRecord = netd.auditRecords().find((r) => r.method === 'lease.close' && r.outcome === 'ok');
    assert.equal(closeRecord?.peer?.uid, 0);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('netd refuses callers other than deployd and root and audits them with their uid and pid', async (t) => {
    const started = Date.now();
    for (const id of [TEST_IDS.other, TEST_IDS.acmed, TEST_IDS.netd]) {
      const answer = await netd.callAs(id, 'lease.open', { cert: 'site', exposure: 'web', ttlSeconds: 60 });
      assert.equal(answer.ok, false);
      assert.equal(answer.ok === false && answer.code, 'E_PEER');
      const record = netd.auditRecords().find((r) => r.outcome === 'refused' && r.peer?.pid === answer.pid);
      assert.ok(record, `no audit record of the refusal of pid ${answer.pid}`);
      assert.equal(record.peer?.uid, id.uid);
      assert.equal(record.code, 'E_PEER');
    }
    assert.equal(await exposedElements(), '[]');
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('netd refuses a TTL above the maximum, an unknown exposure and an exposure the certificate may not use', async (t) => {
    const started = Date.now();
    const cases: Array<[object, string]> = [
      [{ cert: 'site', exposure: 'web', ttlSeconds: 601 }, 'E_TTL'],
      [{ cert: 'site', exposure: 'nope', ttlSeconds: 60 }, 'E_UNKNOWN_EXPOSURE'],
      [{ cert: 'site', exposure: 'alt', ttlSeconds: 60 }, 'E_EXPOSURE_NOT_ALLOWED'],
      [{ cert: 'plain', exposure: 'web', ttlSeconds: 60 }, 'E_EXPOSURE_NOT_ALLOWED'],
      [{ cert: 'unknown', exposure: 'web', ttlSeconds: 60 }, 'E_EXPOSURE_NOT_ALLOWED'],
    ];
    for (const [params, code] of cases) {
      const answer = await netd.callAs(TEST_IDS.deployd, 'lease.open', params);
      assert.equal(answer.ok ? 'ok' : answer.code, code, `${JSON.stringify(params)}: ${JSON.stringify(answer)}`);
      const record = netd.auditRecords().find((r) => r.peer?.pid === answer.pid);
      assert.ok(record && record.outcome !== 'ok' && record.code === code, `audit record for ${JSON.stringify(params)}`);
    }
    // Ports are not part of the API at all: a request naming one is malformed (sent raw, as the
    // typed client would refuse to send it).
    const withPort = await rawCall(netd.socketPath, 'lease.open', { cert: 'site', exposure: 'web', ttlSeconds: 60, externalPort: 22 });
    assert.equal(withPort.ok ? 'ok' : withPort.error.code, 'E_SCHEMA');
    assert.equal((await netd.refusalAsRoot('lease.close', { id: '0'.repeat(32) })).code, 'E_NO_LEASE');
    assert.equal(await exposedElements(), '[]', 'a refused request changes nothing');
    assert.equal(await viaExposure(), null);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('the kernel ends a lease at its deadline after netd is killed, and a restarted netd reconciles stale elements away', async (t) => {
    const started = Date.now();
    // Long enough that a loaded machine still fetches through it before the deadline.
    const lease = await netd.openLease('site', 'web', 8);
    assert.equal(await viaExposure(), 'challenge-ok\n');
    await netd.kill9();
    const deadline = Date.parse(lease.deadline);
    // The element's timeout is the rest of the lease in ms, rounded up, so the kernel must not
    // drop it before the deadline; after it, generous polling for a loaded machine.
    await waitFor(async () => (await exposedElements()) === '[]', Math.max(0, deadline - Date.now()) + 30_000, 'the kernel to drop the expired element', 100);
    const closedAfterMs = Date.now() - deadline;
    assert.ok(closedAfterMs >= -1000, `the element vanished ${-closedAfterMs} ms before the deadline`);
    assert.equal(await viaExposure(), null, 'no traffic passes after the deadline with netd dead');
    assert.equal(await routeLocalnet(), '1', 'route_localnet stays raised while netd is dead');
    t.diagnostic(`port closed by the kernel ${(closedAfterMs / 1000).toFixed(1)} s after the deadline, netd dead`);

    // An element nobody leased, with a long timeout (e.g. added by hand or by a netd that lost its state).
    await nftIn(host, ['add', 'element', 'inet', 'certsep', 'exposed', '{ "eth0" . 81 timeout 1h }']);
    assert.equal((await fetchFrom(peer, `http://${HOST_ADDRESS}:81/`)), 'challenge-ok\n', 'the stale element opens port 81');
    await netd.start();
    assert.equal(await exposedElements(), '[]');
    assert.equal(await fetchFrom(peer, `http://${HOST_ADDRESS}:81/`), null);
    assert.equal(await routeLocalnet(), '0', 'reconcile put route_localnet back');
    const records = netd.auditRecords();
    const expiry = records.find((r) => r.method === 'lease.expire' && (r.params as { id?: string })?.id === lease.id);
    assert.equal(expiry?.outcome, 'ok', 'the expiry is audited by the restarted netd');
    assert.deepEqual(expiry?.detail?.['routeLocalnet'], ['eth0 route_localnet restored to 0'], 'the expiry of the last loopback lease restores route_localnet');
    const reconcile = records.findLast((r) => r.method === 'reconcile');
    assert.equal(reconcile?.outcome, 'ok');
    assert.deepEqual(reconcile?.detail?.['nftStale'], ['eth0 . 81'], 'reconcile reports the stale element it removed');
    assert.deepEqual(reconcile?.detail?.['expired'], [`${lease.id} site on web (deadline ${lease.deadline})`]);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('netd leaves a table it does not own unchanged through open, close, expiry and reconcile', async (t) => {
    const started = Date.now();
    const lease = await netd.openLease('site', 'web', 30);
    await netd.closeLease(lease.id);
    assert.equal(await nftIn(host, ['list', 'table', 'ip', 'bystander']), bystanderBefore);
    const tables = await nftIn(host, ['list', 'tables']);
    assert.deepEqual(tables.trim().split('\n').sort(), ['table inet certsep', 'table ip bystander']);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('an exposure removed with its lease open closes without a restart: element, route_localnet', async (t) => {
    const started = Date.now();
    const pid = netd.pid;
    const lease = await netd.openLease('site', 'web', 120);
    assert.equal(await viaExposure(), 'challenge-ok\n');
    assert.equal(await routeLocalnet(), '1');
    writeTestConfig(dir, {
      exposures: { alt: { method: 'nft', interface: 'eth0', externalPort: 81, internalPort: LISTENER_PORT } },
      certificates: [{ name: 'plain', domains: ['plain.example'], challenge: { type: 'http-01-listener' } }],
    });
    // Any request makes netd look at the file; the reconcile that follows the switch does the rest.
    await netd.listLeases();
    await waitFor(async () => (await exposedElements()) === '[]', 10_000, 'the removed exposure\'s element to go');
    assert.equal(await viaExposure(), null);
    assert.equal(await routeLocalnet(), '0', 'route_localnet is put back once no configured lease needs it');
    assert.deepEqual(await netd.listLeases(), []);
    assert.equal(netd.pid, pid, 'no restart');
    const reconcile = netd.auditRecords().findLast((r) => r.method === 'reconcile');
    assert.deepEqual(reconcile?.params, { reason: 'reload' });
    assert.deepEqual(reconcile?.detail?.['dropped'], [`${lease.id} site on web (deadline ${lease.deadline})`]);
    assert.equal(await nftIn(host, ['list', 'table', 'ip', 'bystander']), bystanderBefore);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });
});
