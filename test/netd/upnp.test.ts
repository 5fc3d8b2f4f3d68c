// netd's UPnP exposures against a real miniupnpd (Debian 12, nftables backend) in a "router"
// namespace, netd and the listener in "host", and the outside world in "wan". The external side
// is 11.77.0.0/24: miniupnpd refuses to forward from a private address, and this network exists
// only inside these namespaces. An edit that drops an exposure deletes the mapping it had made.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNetns, createVethPair, deleteNetns, execInNetns, startDaemonInNetns } from '../harness/netns.ts';
import { killTree, waitFor } from '../harness/proc.ts';
import { writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { fetchFrom, nftIn, NetdInNetns, secondsSince, startChallengeListener } from './netd-in-netns.ts';

// The skeleton miniupnpd 2.3.1 expects (Debian's nft_init.sh is broken: it needs iptables).
const ROUTER_TABLES = `table inet filter {
  chain forward { type filter hook forward priority 0; policy drop; ct state established,related accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
`;

describe('netd with a real miniupnpd in network namespaces', () => {
  const suiteStarted = Date.now();
  let dir: string;
  let router: string;
  let host: string;
  let wan: string;
  let miniupnpd: ChildProcess;
  let listener: ChildProcess;
  let netd: NetdInNetns;

  const mappings = async () => (await execInNetns(host, 'upnpc', ['-u', 'http://10.77.0.1:5000/rootDesc.xml', '-l'], { timeoutMs: 20_000 })).stdout.split('\n').filter((l) => /^ +\d+ TCP/.test(l));

  before(async () => {
    dir = makeTempDir('netd-upnp');
    router = await createNetns('upnp-router');
    host = await createNetns('upnp-host');
    wan = await createNetns('upnp-wan');
    await createVethPair({ ns: router, ifname: 'lan0', address: '10.77.0.1/24' }, { ns: host, ifname: 'eth0', address: '10.77.0.2/24' });
    await createVethPair({ ns: router, ifname: 'wan0', address: '11.77.0.1/24' }, { ns: wan, ifname: 'eth0', address: '11.77.0.2/24' });
    await execInNetns(host, 'ip', ['route', 'add', 'default', 'via', '10.77.0.1']);
    await execInNetns(router, 'ip', ['route', 'add', 'default', 'via', '11.77.0.2']);
    await execInNetns(router, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await nftIn(router, ['-f', '-'], ROUTER_TABLES);
    // A mapping of someone else's, restored by miniupnpd from its lease file at start.
    writeFileSync(join(dir, 'upnp.leases'), `TCP:8080:10.77.0.9:8080:${Math.floor(Date.now() / 1000) + 3600}:someone-else\n`);
    writeFileSync(join(dir, 'miniupnpd.conf'), [
      'ext_ifname=wan0', 'listening_ip=lan0', 'port=5000', 'enable_natpmp=no', 'enable_upnp=yes', 'secure_mode=yes',
      'system_uptime=yes', `lease_file=${join(dir, 'upnp.leases')}`, 'uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b',
      // Short leases must stay short: the default minimum would stretch an 8 s lease to 120 s.
      'min_lifetime=1', 'max_lifetime=86400', 'allow 1-65535 10.77.0.0/24 1-65535', 'deny 0-65535 0.0.0.0/0 0-65535', '',
    ].join('\n'));
    miniupnpd = startDaemonInNetns(router, 'miniupnpd', ['-f', join(dir, 'miniupnpd.conf'), '-d', '-4', '-P', join(dir, 'miniupnpd.pid')], { logPath: join(dir, 'miniupnpd.log') });
    await waitFor(() => readFileSync(join(dir, 'miniupnpd.log'), 'utf8').includes('HTTP listening'), 30_000, 'miniupnpd', 100);
    listener = await startChallengeListener(host, '10.77.0.2', 8402, 'upnp-challenge-ok', join(dir, 'listener.log'));
    const configPath = writeTestConfig(dir, {
      exposures: {
        wan: { method: 'upnp', interface: 'eth0', externalPort: 80, internalPort: 8402 },
        taken: { method: 'upnp', interface: 'eth0', externalPort: 8080, internalPort: 8402 },
      },
      certificates: [
        { name: 'site', domains: ['site.example'], challenge: { type: 'http-01-listener' }, exposure: 'wan' },
        { name: 'other', domains: ['other.example'], challenge: { type: 'http-01-listener' }, exposure: 'taken' },
      ],
    });
    netd = new NetdInNetns(host, dir, configPath);
    await netd.start();
  });

  after(async () => {
    await netd?.stop();
    for (const child of [listener, miniupnpd]) if (child?.pid) await killTree(child.pid);
    for (const ns of [router, host, wan]) if (ns) await deleteNetns(ns);
    if (dir) removeTempDir(dir);
    console.log(`upnp namespace suite took ${secondsSince(suiteStarted)} s`);
  });

  test('a UPnP lease maps the router port to this host until it is closed', async (t) => {
    const started = Date.now();
    assert.equal(await fetchFrom(wan, 'http://11.77.0.1/'), null);
    const lease = await netd.openLease('site', 'wan', 120);
    assert.equal(lease.method, 'upnp');
    assert.equal(lease.internalAddress, '10.77.0.2', 'the LAN address found with ip route get');
    assert.equal(lease.externalAddress, '11.77.0.1');
    assert.equal(await fetchFrom(wan, 'http://11.77.0.1/'), 'upnp-challenge-ok\n');
    const mapped = (await mappings()).find((l) => l.includes("'certsep:wan'"));
    assert.ok(mapped, 'upnpc -l lists the mapping');
    assert.ok(Number(mapped.trim().split(/\s+/).pop()) <= 120, `lease duration in ${mapped}`);
    await netd.closeLease(lease.id);
    assert.equal((await mappings()).some((l) => l.includes("'certsep:wan'")), false, 'the mapping is gone');
    assert.equal(await fetchFrom(wan, 'http://11.77.0.1/'), null);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('netd refuses to take over a router port mapped to another internal client', async (t) => {
    const started = Date.now();
    const answer = await netd.callAs({ uid: 61004, gid: 61004 }, 'lease.open', { cert: 'other', exposure: 'taken', ttlSeconds: 60 });
    assert.equal(answer.ok ? 'ok' : answer.code, 'E_CONFLICT');
    assert.ok((await mappings()).some((l) => l.includes('10.77.0.9:8080') && l.includes("'someone-else'")), 'the other mapping is untouched');
    t.diagnostic(`took ${secondsSince(started)} s`);
  });

  test('the router drops a short lease by itself after netd is killed', async (t) => {
    const started = Date.now();
    // Long enough that a loaded machine still lists the mapping before the deadline.
    const lease = await netd.openLease('site', 'wan', 8);
    assert.ok((await mappings()).some((l) => l.includes("'certsep:wan'")));
    await netd.kill9();
    const deadline = Date.parse(lease.deadline);
    await waitFor(async () => !(await mappings()).some((l) => l.includes("'certsep:wan'")), 60_000, 'miniupnpd to drop the expired mapping', 500);
    t.diagnostic(`miniupnpd dropped the mapping ${((Date.now() - deadline) / 1000).toFixed(1)} s after the deadline, netd dead`);
    assert.ok(Date.now() >= deadline - 1000, 'not before the deadline');
    assert.equal(await fetchFrom(wan, 'http://11.77.0.1/'), null);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });
  test('an edit that removes every UPnP exposure deletes an open lease\'s mapping, without a restart', async (t) => {
    const started = Date.now();
    await netd.start();
    const lease = await netd.openLease('site', 'wan', 120);
    assert.ok((await mappings()).some((l) => l.includes("'certsep:wan'")));
    const pid = netd.pid;
    const site = { name: 'site', domains: ['site.example'], challenge: { type: 'http-01-listener' } };
    writeTestConfig(dir, { certificates: [site] });
    // Any request makes netd look at the file; the reconcile that follows the switch does the rest.
    await netd.listLeases();
    const mapped = async () => (await mappings()).some((l) => l.includes("'certsep:wan'"));
    await waitFor(async () => !(await mapped()), 30_000, 'the old exposure\'s mapping to be deleted', 200);
    assert.ok((await mappings()).some((l) => l.includes("'someone-else'")), 'another client\'s mapping is untouched');
    assert.deepEqual(await netd.listLeases(), []);
    assert.equal(netd.pid, pid);
    const reconcile = netd.auditRecords().findLast((r) => r.method === 'reconcile');
    assert.deepEqual(reconcile?.params, { reason: 'reload' });
    assert.deepEqual(reconcile?.detail?.['dropped'], [`${lease.id} site on wan (deadline ${lease.deadline})`]);
    assert.equal((reconcile?.detail?.['upnpStale'] as string[] | undefined)?.length, 1);
    t.diagnostic(`took ${secondsSince(started)} s`);
  });
});
