// An nft lease to a listener on 127.0.0.1 needs route_localnet=1 on the external interface, and
// that sysctl alone lets a neighbour reach every loopback-only service of the host (the
// CVE-2020-8558 class): here "peer" is such a neighbour, routing 127.0.0.1 to host's eth0 as any
// machine on the LAN can. Only the lease's DNAT'd traffic may reach loopback from eth0; netd stays
// up while a lease lives, puts route_localnet back when the last one ends and when it starts
// again after a crash, and caps the leases one exposure may hold. A lease store netd cannot read
// (a FIFO, an oversized file) must not keep it from starting.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { chownSync, rmSync, statSync, type Stats } from 'node:fs';
import type { AuditRecord } from '../../audit/record.ts';
import { callOnce } from '../../proto/client.ts';
import { RpcError } from '../../proto/errors.ts';
import { MAX_LEASES_PER_EXPOSURE, netdApi } from '../../netd/api.ts';
import { createNetns, createVethPair, deleteNetns, execInNetns } from '../harness/netns.ts';
import { killTree, waitFor } from '../harness/proc.ts';
import { writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { fetchFrom, NetdInNetns, secondsSince, startChallengeListener } from './netd-in-netns.ts';

const LOOPBACK = '127.0.0.1';
const HOST_ADDRESS = '10.79.0.2';
const PEER_ADDRESS = '10.79.0.1';
const LISTENER_PORT = 8402;
const PRIVATE_PORT = 9090;
const ROUTE_LOCALNET = '/proc/sys/net/ipv4/conf/eth0/route_localnet';
const SITE_LEASE = { cert: 'site', exposure: 'web' };
// 127.0.0.1 is the nft exposure's default internalAddress.
const SITE = { name: 'site', domains: ['site.example'], exposure: 'web', challenge: { type: 'http-01-listener' } };

/**
 * What a neighbour does to send packets for 127.0.0.1 to the host: its own loopback routes give
 * way to a route via the host's address, and it accepts replies from 127.0.0.1 on eth0.
 */
async function routeLoopbackToHost(peer: string): Promise<void> {
  const steps = [
    ['sysctl', '-qw', 'net.ipv4.conf.eth0.route_localnet=1'],
    ['ip', 'rule', 'add', 'pref', '10', 'to', '127.0.0.1/32', 'iif', 'lo', 'lookup', '100'],
    ['ip', 'rule', 'del', 'pref', '0', 'lookup', 'local'],
    ['ip', 'rule', 'add', 'pref', '1000', 'lookup', 'local'],
    ['ip', 'route', 'add', '127.0.0.1/32', 'via', HOST_ADDRESS, 'dev', 'eth0', 'src', PEER_ADDRESS, 'table', '100'],
  ];
  for (const [cmd, ...args] of steps) {
    const r = await execInNetns(peer, cmd!, args);
    assert.equal(r.code, 0, `${cmd} ${args.join(' ')} in ${peer}: ${r.stderr}`);
  }
}

describe('netd nft leases to loopback and the rest of loopback', () => {
  const suiteStarted = Date.now();
  let dir: string;
  let host: string;
  let peer: string;
  const listeners: ChildProcess[] = [];
  let netd: NetdInNetns;

  const routeLocalnet = async () => (await execInNetns(host, 'cat', [ROUTE_LOCALNET])).stdout.trim();
  const viaExposure = () => fetchFrom(peer, `http://${HOST_ADDRESS}/`);
  const privateService = () => fetchFrom(peer, `http://127.0.0.1:${PRIVATE_PORT}/`);
  const listenerDirectly = () => fetchFrom(peer, `http://127.0.0.1:${LISTENER_PORT}/`);

  before(async () => {
    dir = makeTempDir('netd-loopback');
    host = await createNetns('lo-host');
    peer = await createNetns('lo-peer');
    const hostEnd = { ns: host, ifname: 'eth0', address: `${HOST_ADDRESS}/24` };
    await createVethPair(hostEnd, { ns: peer, ifname: 'eth0', address: `${PEER_ADDRESS}/24` });
    const listen = async (port: number, body: string) =>
      listeners.push(await startChallengeListener(host, LOOPBACK, port, body, join(dir, `listener-${port}.log`)));
    await listen(LISTENER_PORT, 'challenge-ok');
    // An admin interface bound to loopback because it must not be reachable from the network.
    await listen(PRIVATE_PORT, 'private-admin-panel');
    await routeLoopbackToHost(peer);
    const configPath = writeTestConfig(dir, {
      exposures: {
        web: { method: 'nft', interface: 'eth0', externalPort: 80, internalPort: LISTENER_PORT },
      },
      certificates: [SITE],
    });
    netd = new NetdInNetns(host, dir, configPath);
    await netd.start();
  });

  // Each test starts from a running netd with no leases, whatever the one before it left.
  beforeEach(async () => {
    await netd.ensureRunning();
    for (const lease of await netd.listLeases()) await netd.closeLease(lease.id);
  });

  after(async () => {
    await netd?.stop();
    for (const l of listeners) if (l.pid) await killTree(l.pid);
    for (const ns of [host, peer]) if (ns) await deleteNetns(ns);
    if (dir) removeTempDir(dir);
    console.log(`loopback namespace suite took ${secondsSince(suiteStarted)} s`);
  });

  test('while a lease is open a neighbour reaches only the lease, not other services on 127.0.0.1', async (t) => {
    const started = Date.now();
    assert.equal(await privateService(), null, 'with route_localnet 0 loopback is unreachable from eth0');
    const lease = await netd.openLease('site', 'web', 120);
    assert.equal(await routeLocalnet(), '1');
    assert.equal(await viaExposure(), 'challenge-ok\n', 'the lease itself works');
    assert.equal(await privateService(), null, 'a service on 127.0.0.1 the lease does not name stays unreachable');
    assert.equal(await listenerDirectly(), null, 'the listener is reachable through the lease\'s DNAT only');
    await netd.closeLease(lease.id);
    assert.equal(await routeLocalnet(), '0');
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('netd does not exit idle while a lease is open, and restores route_localnet when it expires', async (t) => {
    const started = Date.now();
    await netd.stop();
    // Opened from this process at once (not from a uid's new process, which takes seconds to
    // start), well inside the idle time: only the lease may then keep netd from exiting.
    await netd.start(['--idle-exit', '4']);
    const lease = await callOnce(netdApi, netd.socketPath, 'lease.open', { ...SITE_LEASE, ttlSeconds: 10 });
    assert.equal(await routeLocalnet(), '1');
    // The expiry is audited once its changes are made: the record comes after the restore.
    const expired = (r: AuditRecord) =>
      r.method === 'lease.expire' && (r.params as { id?: string } | undefined)?.id === lease.id;
    const afterDeadline = Math.max(0, Date.parse(lease.deadline) - Date.now()) + 30_000;
    const expiry = await waitFor(() => netd.auditRecords().find(expired), afterDeadline, 'netd to end the lease', 200);
    assert.equal(expiry.outcome, 'ok');
    assert.deepEqual(expiry.detail?.['routeLocalnet'], ['eth0 route_localnet restored to 0']);
    assert.equal(await routeLocalnet(), '0');
    await netd.exitedByItself(30_000);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('a netd killed with a lease open and restarted without its store still puts route_localnet back', async (t) => {
    const started = Date.now();
    await netd.openLease('site', 'web', 300);
    assert.equal(await routeLocalnet(), '1');
    await netd.kill9();
    rmSync(join(dir, 'state', 'netd', 'leases.json'));
    await netd.start();
    assert.equal(await routeLocalnet(), '0', 'the lease is forgotten, so nothing needs route_localnet');
    assert.deepEqual(await netd.listLeases(), []);
    assert.equal(await viaExposure(), null);
    const reconcile = netd.auditRecords().findLast((r) => r.method === 'reconcile');
    assert.deepEqual(reconcile?.detail?.['routeLocalnet'], ['eth0 route_localnet restored to 0']);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  for (const [kind, plant, isPlanted] of [
    ['a FIFO', (path: string) => execInNetns(host, 'mkfifo', ['-m', '0600', path]), (st: Stats) => st.isFIFO()],
    [
      'a 2 MiB file',
      (path: string) => execInNetns(host, 'truncate', ['-s', '2M', path]),
      (st: Stats) => st.size === 2 ** 21,
    ],
  ] as const) {
    test(`netd with ${kind} for a lease store starts, moves it aside, audits it, closes what it opened`, async (t) => {
      const started = Date.now();
      await netd.openLease('site', 'web', 300);
      await netd.kill9();
      const store = join(dir, 'state', 'netd', 'leases.json');
      rmSync(store);
      assert.equal((await plant(store)).code, 0);
      chownSync(store, TEST_IDS.netd.uid, TEST_IDS.netd.gid);
      try {
        await netd.start();
        assert.ok(isPlanted(statSync(`${store}.unreadable`)), 'the unreadable store is kept aside for a post-mortem');
        assert.ok(!isPlanted(statSync(store)) && statSync(store).isFile(), 'and a new store replaces it');
        const load = netd.auditRecords().findLast((r) => r.method === 'state.load');
        assert.equal(load?.outcome, 'error');
        assert.equal(load?.code, 'E_STATE');
        assert.match(load?.message ?? '', /moved to .*leases\.json\.unreadable/);
        assert.deepEqual(await netd.listLeases(), []);
        assert.equal(await viaExposure(), null, 'the forgotten lease\'s port is closed');
        assert.equal(await routeLocalnet(), '0');
      } finally {
        const planted = (path: string) => !statSync(path, { throwIfNoEntry: false })?.isFile();
        for (const path of [store, `${store}.unreadable`]) if (planted(path)) rmSync(path, { force: true });
        rmSync(`${store}.unreadable`, { force: true });
      }
      t.diagnostic(`took ${secondsSince(started)} s`);
    });
  }

  test(`netd refuses more than ${MAX_LEASES_PER_EXPOSURE} open leases on one exposure, audited`, async (t) => {
    const started = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < MAX_LEASES_PER_EXPOSURE; i++) {
      ids.push((await callOnce(netdApi, netd.socketPath, 'lease.open', { ...SITE_LEASE, ttlSeconds: 300 })).id);
    }
    const refused = await netd.refusalAsRoot('lease.open', { cert: 'site', exposure: 'web', ttlSeconds: 300 });
    assert.ok(refused instanceof RpcError);
    assert.equal(refused.code, 'E_TOO_MANY_LEASES');
    assert.match(refused.message, new RegExp(`${MAX_LEASES_PER_EXPOSURE} leases`));
    assert.equal((await netd.listLeases()).length, MAX_LEASES_PER_EXPOSURE);
    const record = netd.auditRecords().findLast((r) => r.method === 'lease.open');
    assert.equal(record?.code, 'E_TOO_MANY_LEASES');
    for (const id of ids) await netd.closeLease(id);
    assert.equal(await routeLocalnet(), '0');
    t.diagnostic(`took ${secondsSince(started)} s`);
  });
});
