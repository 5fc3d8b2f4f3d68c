// Several hosts over OpenSSH (issue #8), end to end with real peers: Pebble, the central certsep
// (supervisor and its daemons, certsepctl as root), and two remote hosts, each in network and
// mount namespaces of its own with a real sshd, nginx, keyd and privd (remote-host.ts). Central
// and remotes are linked by veth pairs inside namespaces made here: this file re-runs itself inside
// the central namespace (like test/deployd/lease-crash), and bind-mounts a passwd there that names
// deployd's uid (OpenSSH's client refuses to run for a uid without one).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { readSmallRegularFile } from '../../runtime/read-small-file.ts';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duplex } from 'node:stream';
import { connect } from 'node:tls';
import { z } from 'zod';
import { defineApi } from '../../proto/api.ts';
import { RpcClient } from '../../proto/client.ts';
import type { RpcError } from '../../proto/errors.ts';
import { runCommand, waitFor } from '../harness/proc.ts';
import { createNetns, createVethPair, deleteNetns, runTestFileInNetns } from '../harness/netns.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, setprivArgs, TEST_IDS } from '../harness/uids.ts';
import { startCertsep, type CertsepUnderTest } from '../deployd/certsep-under-test.ts';
import { startRemoteHost, TLS_PORT, REMOTE_USER, type RemoteHost } from './remote-host.ts';

const INSIDE = 'CERTSEP_FLEET_NETNS';
const DOMAINS = ['www.fleet.example'];
/** A second certificate, for web1 alone. */
const API_DOMAINS = ['api.fleet.example'];
const HOSTS = { web1: '10.89.1.2', web2: '10.89.2.2' } as const;
type HostName = keyof typeof HOSTS;

if (process.env[INSIDE] === undefined) {
  test('several hosts over OpenSSH (the suite runs in namespaces of its own)', async () => {
    const central = await createNetns('fleet-central');
    const remotes: string[] = [];
    try {
      for (const [i, name] of Object.keys(HOSTS).entries()) {
        const ns = await createNetns(`fleet-${name}`);
        remotes.push(ns);
        await createVethPair({ ns: central, ifname: `to-${name}`, address: `10.89.${i + 1}.1/24` }, { ns, ifname: 'eth0', address: `10.89.${i + 1}.2/24` });
      }
      const inner = await runTestFileInNetns(central, fileURLToPath(import.meta.url), { [INSIDE]: central, CERTSEP_FLEET_REMOTES: remotes.join(',') }, 420_000);
      console.log(inner.stdout);
      assert.equal(inner.code, 0, `the run inside ${central} failed:\n${inner.stdout}\n${inner.stderr}`);
    } finally {
      for (const ns of [...remotes, central]) await deleteNetns(ns);
    }
  });
} else {
  const remoteNamespaces = (process.env['CERTSEP_FLEET_REMOTES'] ?? '').split(',');

  describe(`inside ${process.env[INSIDE]}: a central host and two remote hosts`, () => {
    let keysDir: string;
    let identity: string;
    let certsep: CertsepUnderTest;
    const remotes = {} as Record<HostName, RemoteHost>;
    let pebbleRoot: string;

    before(async () => {
      keysDir = makeTempDir('fleet-central-key');
      givePasswdEntry(keysDir, 'certsep-deploy', TEST_IDS.deployd);
      identity = makeDeploydKey(keysDir);
      const publicKey = readFileSync(`${identity}.pub`, 'utf8').trim();
      for (const [i, name] of (Object.keys(HOSTS) as HostName[]).entries()) {
        remotes[name] = await startRemoteHost(name, remoteNamespaces[i]!, HOSTS[name], name === 'web1' ? { www: DOMAINS, api: API_DOMAINS } : { www: DOMAINS }, publicKey);
      }
      certsep = await startCertsep({
        testHooks: true,
        sites: [],
        fleet: ({ webroot }) => ({
          hosts: Object.fromEntries((Object.keys(HOSTS) as HostName[]).map((name) => [name, {
            address: HOSTS[name], user: REMOTE_USER, hostKeys: [remotes[name].hostKey()], identityFile: identity, connectTimeoutSeconds: 3,
          }])),
          delivery: { retries: 5, retryIntervalSeconds: 5, maxRetryIntervalSeconds: 10 },
          certificates: [
            { name: 'www', domains: DOMAINS, keyTypes: ['ec-p256'], hosts: Object.keys(HOSTS), challenge: { type: 'http-01-webroot', webroot } },
            { name: 'api', domains: API_DOMAINS, keyTypes: ['ec-p256'], hosts: ['web1'], challenge: { type: 'http-01-webroot', webroot } },
          ],
        }),
      });
      pebbleRoot = await certsep.pebble.fetchRoot();
      for (const host of Object.values(remotes)) host.trustRoots(certsep.pebble.rootsPath);
    });
    after(async () => {
      await certsep?.stop();
      for (const host of Object.values(remotes)) await host?.stop();
      for (const host of Object.values(remotes)) if (host) removeTempDir(host.dir);
      if (keysDir) removeTempDir(keysDir);
    });

    test('one renew --all issues for both hosts; each serves a certificate whose key was made on it and exists nowhere else', async (t) => {
      const run = await certsep.ctl(['renew', '--all']);
      assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
      t.diagnostic(run.stdout);
      // `nginx -s reload` returns once the master has the signal; its new workers take over moments
      // later (longer on a loaded machine), and until then the old ones serve the placeholder.
      const served = await Promise.all((Object.keys(HOSTS) as HostName[]).map((name) => waitFor(async () => {
        const cert = await servedCertificate(HOSTS[name], pebbleRoot);
        return cert.trusted ? cert : undefined;
      }, 15_000, `${name} to serve the issued certificate`)));
      assert.notEqual(served[0]!.x509.serialNumber, served[1]!.x509.serialNumber, 'one order per host');
      for (const [i, name] of (Object.keys(HOSTS) as HostName[]).entries()) {
        const keyPem = await remotes[name].readPrivate(join(remotes[name].privateDir, 'targets', 'www', 'privkey.pem'));
        const key = createPrivateKey(keyPem);
        assert.ok(served[i]!.x509.checkPrivateKey(key), `${name} serves the certificate of the key in its own target`);
        const found = searchFileSystem(keyMaterial(key));
        assert.deepEqual(found, [], `${name}'s private key appears on the central host's file system`);
      }
      assert.notEqual(served[0]!.x509.publicKey.export({ type: 'spki', format: 'pem' }), served[1]!.x509.publicKey.export({ type: 'spki', format: 'pem' }), 'each host has its own key');
      // The search works: the central host does hold the certificates it delivered (public).
      assert.ok(searchFileSystem([pemLine(served[0]!.x509.raw)]).some((p) => p.endsWith('deliveries.json')), "the delivered chain is found in deployd's queue");

      // Audit on both sides: the central host says what it sent to whom, the remote what it installed for which key.
      const fingerprint = keyFingerprint(`${identity}.pub`);
      for (const name of Object.keys(HOSTS) as HostName[]) {
        const forWww = (r: Record<string, unknown>) => (r['params'] as { cert?: string } | undefined)?.cert === 'www';
        const installed = remotes[name].auditLines('remote').filter((r) => r.method === 'deploy.install' && r.outcome === 'ok' && forWww(r));
        assert.equal(installed.length, 1, `${name} audited one install`);
        const ssh = (installed[0]!.detail as { ssh: { keyFingerprint: string; client: string } }).ssh;
        assert.equal(ssh.keyFingerprint, fingerprint, `${name} names the central key's fingerprint`);
        assert.match(ssh.client, /^10\.89\.\d\.1:\d+$/);
        const sent = deploydAudit(certsep).filter((r) => r.method === 'remote.deploy.install' && r.outcome === 'ok' && (r.detail as { host: string }).host === name && forWww(r));
        assert.equal(sent.length, 1, `the central host audited one install sent to ${name}`);
        assert.deepEqual((sent[0]!.params as { chainPem: unknown }).chainPem, (installed[0]!.params as { chainPem: unknown }).chainPem, 'both sides name the same chain (sha256)');
        const privd = remotes[name].auditLines('privd').filter((r) => r.method === 'deploy.install' && r.outcome === 'ok' && forWww(r));
        assert.equal((privd[0]!.peer as { uid: number }).uid, TEST_IDS.remote.uid, `${name}'s privd installed for the remote user`);
      }
      const status = await statusOf(certsep);
      assert.deepEqual(status.hosts.map((h) => [h.host, h.state]), [['web1', 'delivered'], ['web2', 'delivered']]);

      // Each host is due by what it serves: a second run orders nothing and touches no host.
      const orders = ordersIssued(certsep);
      const again = await certsep.ctl(['renew', '--all']);
      assert.equal(again.code, 2, `${again.stdout}\n${again.stderr}`);
      assert.match(again.stdout, /@web1\s+not-due/);
      assert.match(again.stdout, /@web2\s+not-due/);
      assert.equal(ordersIssued(certsep), orders, 'no order');
      for (const name of Object.keys(HOSTS) as HostName[]) {
        assert.equal(remotes[name].auditLines('privd').filter((r) => r.method === 'deploy.reload').length, name === 'web1' ? 2 : 1, `${name} was not reloaded again`);
      }
    });

    test('the forced command refuses anything but its protocol: no shell, no other command, no forwarding, no other method', async () => {
      const web1 = remotes.web1;
      const knownHosts = join(keysDir, 'known_hosts');
      writeFileSync(knownHosts, `${web1.address} ${web1.hostKey()}\n`);
      chownSync(knownHosts, TEST_IDS.deployd.uid, TEST_IDS.deployd.gid);
      const sshOptions = ['-F', 'none', '-i', identity, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-l', REMOTE_USER];
      const ssh = (args: string[]) => execAs(TEST_IDS.deployd, 'ssh', [...sshOptions, ...args], { timeoutMs: 30_000 });
      const auditMark = web1.auditLines('remote').length;

      const id = await ssh([web1.address, 'id']);
      assert.notEqual(id.code, 0);
      assert.doesNotMatch(id.stdout, /uid=/);
      assert.match(id.stderr, /may only speak certsep's remote protocol/);
      const shell = await ssh([web1.address, '/bin/sh', '-c', 'touch /tmp/certsep-fleet-pwned']);
      assert.notEqual(shell.code, 0);
      assert.notEqual((await web1.exec('test', ['-e', '/tmp/certsep-fleet-pwned'])).code, 0, 'the command did not run');
      const sftp = await ssh(['-s', web1.address, 'sftp']);
      assert.notEqual(sftp.code, 0, 'no sftp subsystem');
      const tty = await ssh(['-tt', web1.address, 'touch /tmp/certsep-fleet-pwned-tty']);
      assert.notEqual(tty.code, 0, 'no terminal, no shell');
      assert.notEqual((await web1.exec('test', ['-e', '/tmp/certsep-fleet-pwned-tty'])).code, 0, 'nor its command');
      const forward = await ssh(['-W', '127.0.0.1:22', web1.address]);
      assert.equal(forward.code, 255, `stdio forwarding refused: ${forward.stderr}`);
      assert.match(forward.stderr, /prohibited|open failed/i);
      const refusedCommands = web1.auditLines('remote').slice(auditMark).filter((r) => r.method === 'ssh.exec' && r.outcome === 'refused');
      const byCommand = new Map(refusedCommands.map((r) => [(r.params as { command: string }).command, (r.detail as { ssh: { keyFingerprint: string | null } }).ssh.keyFingerprint]));
      // (The -tt attempt is refused by sshd's PermitTTY and the forced command alike; whether its
      // session lives long enough to be audited depends on how fast the client hangs up.)
      assert.equal(byCommand.get('id'), keyFingerprint(`${identity}.pub`), `the refusal is audited and names the key that asked: ${JSON.stringify([...byCommand])}`);
      assert.equal(byCommand.get('/bin/sh -c touch /tmp/certsep-fleet-pwned'), keyFingerprint(`${identity}.pub`));

      // Inside the protocol: only the six methods, only their exact params.
      const child = spawn('setpriv', setprivArgs(TEST_IDS.deployd, 'ssh', [...sshOptions, web1.address, 'certsep-remote-serve']), { stdio: ['pipe', 'pipe', 'ignore'] });
      const client = RpcClient.over(anyMethodApi, Duplex.from({ readable: child.stdout, writable: child.stdin }));
      try {
        const refusedWith = (code: string) => (e: unknown) => (e as RpcError).code === code;
        await assert.rejects(client.call('key.export', { cert: 'www', keyType: 'ec-p256', keyId: '0'.repeat(64) }), refusedWith('E_UNKNOWN_METHOD'));
        await assert.rejects(client.call('key.import', { cert: 'www', keyType: 'ec-p256', keyPem: 'x' }), refusedWith('E_UNKNOWN_METHOD'));
        await assert.rejects(client.call('deploy.install', { cert: 'www', keyType: 'ec-p256', chainPem: 'x', keyId: '0'.repeat(64), dir: '/etc' }), refusedWith('E_SCHEMA'));
        await assert.rejects(client.call('csr.create', { cert: '../../etc', keyType: 'ec-p256' }), refusedWith('E_SCHEMA'));
        const status = (await client.call('status', { certs: ['www'] })) as { certs: { cert: string }[] };
        assert.equal(status.certs[0]!.cert, 'www', 'the same session still answers its methods');
      } finally {
        client.close();
        child.kill();
      }
      const refused = web1.auditLines('remote').slice(auditMark).filter((r) => r.outcome === 'refused').map((r) => `${r.method}:${r.code}`);
      for (const expected of ['key.export:E_UNKNOWN_METHOD', 'key.import:E_UNKNOWN_METHOD', 'deploy.install:E_SCHEMA', 'csr.create:E_SCHEMA']) {
        assert.ok(refused.includes(expected), `${expected} is audited on the remote: ${refused.join(' ')}`);
      }
    });

    test('a remote whose nginx -t fails rolls back there and reports it; the other remote is not affected; push delivers once fixed', async () => {
      const before = await Promise.all([servedCertificate(HOSTS.web1, pebbleRoot), servedCertificate(HOSTS.web2, pebbleRoot)]);
      const orders = ordersIssued(certsep);
      remotes.web2.breakNginx(true);
      const run = await certsep.ctl(['renew', '--force', 'www']);
      remotes.web2.breakNginx(false);
      // At once, before the queue's own retry (retryIntervalSeconds: 5) gets there.
      const push = await certsep.ctl(['push', 'web2']);
      assert.equal(run.code, 1, `${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, /@web1\s+renewed/);
      assert.match(run.stdout, /@web2\s+pending\s+ec-p256:[0-9A-F]+\s+check: E_CHECK_FAILED/);
      const issuedForWeb2 = /@web2\s+pending\s+ec-p256:([0-9A-F]+)/.exec(run.stdout)![1]!;
      // Before ordering, acmed was asked for the CA's renewal window of the leaf web1 served (Pebble 2.4 has no ARI).
      const queue = JSON.parse(readFileSync(join(certsep.dir, 'state', 'deployd', 'deliveries.json'), 'utf8')) as { hosts: Record<string, { ari?: { serial: string; supported: boolean } }> };
      assert.deepEqual(queue.hosts['www@web1']?.ari && [queue.hosts['www@web1'].ari.serial, queue.hosts['www@web1'].ari.supported], [before[0]!.x509.serialNumber.replace(/^0+/, ''), false]);
      const web2Checks = remotes.web2.auditLines('privd').filter((r) => r.method === 'deploy.check').map((r) => r.code ?? 'ok');
      assert.deepEqual(web2Checks.slice(-2), ['E_CHECK_FAILED', 'ok'], "web2's privd failed the check (nginx -t) in the run and passed it in the push");
      await waitForServedOtherThan(HOSTS.web1, before[0]!.x509.serialNumber, pebbleRoot);

      assert.equal(push.code, 0, `${push.stdout}\n${push.stderr}`);
      assert.match(push.stdout, /web2\s+delivered/);
      const served = await waitForServedOtherThan(HOSTS.web2, before[1]!.x509.serialNumber, pebbleRoot);
      assert.ok(served.startsWith(issuedForWeb2), `web2 serves the chain ordered for it in the run (${issuedForWeb2}…), got ${served}`);
      assert.equal(ordersIssued(certsep), orders + 2, 'two orders in the run (one per host), none for the push');
    });

    test('a remote host down during the run: the other gets its certificate, the queue delivers when it returns, without a new order', async () => {
      const web2 = remotes.web2;
      const web2Namespace = remoteNamespaces[1]!;
      const pauseAt = join(certsep.dir, 'state', 'deployd', 'test-pause-at');
      const pausedAt = join(certsep.dir, 'state', 'deployd', 'test-paused-at');
      rmSync(pausedAt, { force: true });
      writeFileSync(pauseAt, 'deliver:web2');
      const before = await servedCertificate(HOSTS.web2, pebbleRoot);
      const orders = ordersIssued(certsep);
      const running = certsep.ctl(['renew', '--force', 'www']);
      await waitFor(() => existsSync(pausedAt), 60_000, 'deployd to pause before delivering to web2');
      await web2.stopSshd();
      assert.equal((await runCommand('ip', ['-n', web2Namespace, 'link', 'set', 'eth0', 'down'])).code, 0);
      rmSync(pauseAt);
      const run = await running;
      assert.equal(run.code, 1, `${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, /@web1\s+renewed/);
      assert.match(run.stdout, /@web2\s+pending\s+ec-p256:[0-9A-F]+\s+install: E_HOST_UNREACHABLE/);
      const issuedForWeb2 = /@web2\s+pending\s+ec-p256:([0-9A-F]+)/.exec(run.stdout)![1]!;

      const meanwhile = await certsep.ctl(['status']);
      assert.equal(meanwhile.code, 1, 'status fails while a host waits for its certificate');
      assert.match(meanwhile.stdout, /www\s+web1\s+10\.89\.1\.2\s+DELIVERED/);
      assert.match(meanwhile.stdout, /www\s+web2\s+10\.89\.2\.2\s+PENDING/);
      assert.equal(await servedCertificate(HOSTS.web2, pebbleRoot).catch(() => null), null, 'web2 is unreachable');
      const metrics = () => readFileSync(join(certsep.dir, 'state', 'deployd', 'certsep.prom'), 'utf8');
      assert.match(metrics(), /^certsep_host_delivery_pending\{cert="www",host="web2"\} 1$/m, 'the metrics say a chain waits for web2');
      assert.match(metrics(), /^certsep_host_delivery_pending\{cert="www",host="web1"\} 0$/m);

      assert.equal((await runCommand('ip', ['-n', web2Namespace, 'link', 'set', 'eth0', 'up'])).code, 0);
      await web2.startSshd();
      await waitFor(async () => (await statusOf(certsep)).hosts.find((h) => h.host === 'web2')?.state === 'delivered', 60_000, 'the queue to deliver to web2');
      const served = await waitForServedOtherThan(HOSTS.web2, before.x509.serialNumber, pebbleRoot);
      assert.ok(served.startsWith(issuedForWeb2), `web2 serves the chain ordered for it during the run (${issuedForWeb2}…), got ${served}`);
      assert.equal(ordersIssued(certsep), orders + 2, 'no order after the run: the queued chain was delivered');
      await waitFor(() => /^certsep_host_delivery_pending\{cert="www",host="web2"\} 0$/m.test(metrics()), 10_000, 'the metrics to show the delivery');
      assert.match(metrics(), /^certsep_host_certificate_expiry_timestamp_seconds\{cert="www",host="web2"\} [1-9]\d{9}$/m);
      const settled = await certsep.ctl(['status']);
      assert.equal(settled.code, 0, settled.stdout);
    });

    test('deployd killed with a chain queued for a host: the restarted deployd delivers it, without a new order', async () => {
      const hookFile = join(certsep.dir, 'state', 'deployd', 'test-crash-at');
      const pid = certsep.pidOf('deployd');
      const orders = ordersIssued(certsep);
      const installsBefore = remotes.web1.auditLines('privd').filter((r) => r.method === 'deploy.reload' && r.outcome === 'ok').length;
      writeFileSync(hookFile, 'queued');
      const killed = await certsep.ctl(['renew', '--force', 'api']);
      assert.equal(killed.code, 1, `the interrupted run reports failure:\n${killed.stdout}\n${killed.stderr}`);
      assert.equal(existsSync(hookFile), false, 'deployd reached its crash point');
      assert.equal(ordersIssued(certsep), orders + 1, 'the order was made before deployd died');
      await waitFor(async () => certsep.pidOf('deployd') !== pid, 20_000, 'the supervisor to restart deployd');
      await waitFor(async () => {
        const out = await certsep.ctl(['status', '--json', 'api']);
        return out.code === 0 && (JSON.parse(out.stdout) as { certs: { hosts: { state: string }[] }[] }).certs[0]!.hosts[0]!.state === 'delivered';
      }, 60_000, 'the restarted deployd to deliver the queued chain to web1');
      assert.equal(ordersIssued(certsep), orders + 1, 'delivered from the queue: no second order');
      assert.equal(remotes.web1.auditLines('privd').filter((r) => r.method === 'deploy.reload' && r.outcome === 'ok').length, installsBefore + 1, 'web1 committed it once');
    });

    test('an unknown or changed remote host key is refused and audited, and nothing is sent', async () => {
      const web1 = remotes.web1;
      const before = await servedCertificate(HOSTS.web1, pebbleRoot);
      await web1.stopSshd();
      await web1.regenerateHostKey();
      await web1.startSshd();
      const remoteMark = web1.auditLines('remote').length;
      const centralMark = deploydAudit(certsep).length;
      const run = await certsep.ctl(['renew', '--force', 'www']);
      assert.equal(run.code, 1, `${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, /@web1\s+failed\s+-\s+connect: E_HOST_KEY/);
      assert.match(run.stdout, /@web2\s+renewed/);
      const refused = deploydAudit(certsep).slice(centralMark).filter((r) => r.outcome === 'refused');
      assert.deepEqual(refused.map((r) => [r.method, r.code, (r.detail as { host: string }).host]), [['remote.status', 'E_HOST_KEY', 'web1']]);
      assert.equal(web1.auditLines('remote').length, remoteMark, "nothing reached web1's forced command");
      assert.equal((await servedCertificate(HOSTS.web1, pebbleRoot)).x509.serialNumber, before.x509.serialNumber, 'web1 keeps serving its certificate');
    });
  });
}

/** OpenSSH's client needs a passwd entry for its uid: one in this mount namespace only. */
function givePasswdEntry(dir: string, user: string, id: { uid: number; gid: number }): void {
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, `${readFileSync('/etc/passwd', 'utf8').trimEnd()}\n${user}:x:${id.uid}:${id.gid}::/nonexistent:/usr/sbin/nologin\n`, { mode: 0o644 });
  const mounted = spawnSync('mount', ['--bind', passwd, '/etc/passwd'], { encoding: 'utf8' });
  assert.equal(mounted.status, 0, `bind-mount passwd: ${mounted.stderr}`);
}

/** deployd's ssh identity, as install --fleet makes it: its own 0700 directory, the key 0600. */
function makeDeploydKey(dir: string): string {
  const sshDir = join(dir, 'ssh');
  mkdirSync(sshDir, { mode: 0o700 });
  const path = join(sshDir, 'id_ed25519');
  const made = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'certsep-deployd@central', '-f', path], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  for (const p of [sshDir, path, `${path}.pub`]) chownSync(p, TEST_IDS.deployd.uid, TEST_IDS.deployd.gid);
  chmodSync(path, 0o600);
  return path;
}

interface Served {
  x509: X509Certificate;
  trusted: boolean;
}

function servedCertificate(address: string, rootPem: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port: TLS_PORT, servername: DOMAINS[0], ca: rootPem, rejectUnauthorized: false }, () => {
      const x509 = socket.getPeerX509Certificate();
      const trusted = socket.authorized;
      socket.destroy();
      if (!x509) reject(new Error(`${address} sent no certificate`));
      else resolve({ x509, trusted });
    });
    socket.once('error', reject);
  });
}

/** The forms a key could be stored in: PKCS#8 and SEC1 DER and PEM bodies, and the raw private scalar. */
function keyMaterial(key: KeyObject): Buffer[] {
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const sec1 = key.export({ type: 'sec1', format: 'der' });
  const d = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
  // The second line of the PEM: contiguous in a PEM file and in a JSON string holding one.
  const pemBody = (der: Buffer) => Buffer.from(der.toString('base64').slice(64, 128));
  return [pkcs8, sec1, d, pemBody(pkcs8), pemBody(sec1)];
}

// Where the central suite (its daemons, certsepctl, the tests' trees, ssh) writes or could write:
// state, runtime, temporary and log directories, config, home directories and the repository.
// Not /opt, /usr or root's caches: read-only software and gigabytes no process here writes to.
const SEARCHED = ['/var/lib', '/var/cache/certsep-test', '/etc', '/run', '/tmp', '/var/tmp', '/var/log', '/home', '/srv', '/work/main'];
// A key, a PEM file, a journal or an audit log is far smaller; larger files are packages and images.
const MAX_FILE_BYTES = 4 * 1024 * 1024;

// proc and sysfs (mounted inside a container another test boots under /var/lib): their files
// claim size 0 and some read without end (/proc/<pid>/pagemap); no key is ever written there.
const PSEUDO_FILE_SYSTEMS = new Set([0x9fa0, 0x62656572]);

function onPseudoFileSystem(dir: string): boolean {
  try {
    return PSEUDO_FILE_SYSTEMS.has(statfsSync(dir).type);
  } catch {
    return true; // gone meanwhile: nothing to search
  }
}

/**
 * Files under SEARCHED (as this mount namespace sees them) that contain any of needles; each read
 * is capped, whatever size a file claims.
 */
function searchFileSystem(needles: Buffer[]): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (path.endsWith('/node_modules') || path.endsWith('/.git') || path === '/var/cache/certsep-test/rootfs-bookworm') continue;
        if (!onPseudoFileSystem(path)) walk(path);
      } else if (e.isFile()) {
        try {
          const data = readSmallRegularFile(path, MAX_FILE_BYTES);
          if (needles.some((n) => data.includes(n))) found.push(path);
        } catch {
          // unreadable, larger than any key file, or gone meanwhile: nothing to find
        }
      }
    }
  };
  for (const root of SEARCHED) if (existsSync(root)) walk(root);
  return found;
}

function pemLine(der: Buffer): Buffer {
  return Buffer.from(der.toString('base64').slice(64, 128));
}

function keyFingerprint(publicKeyFile: string): string {
  const out = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicKeyFile], { encoding: 'utf8' }).stdout;
  return out.split(' ')[1]!;
}

type AuditRecord = Record<string, unknown> & { method: string; outcome: string; code?: string };

function deploydAudit(certsep: CertsepUnderTest): AuditRecord[] {
  return readFileSync(join(certsep.dir, 'audit', 'deployd.audit.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditRecord);
}

/** Certificates Pebble issued through the central acmed: its successful order.issue records. */
function ordersIssued(certsep: CertsepUnderTest): number {
  return readFileSync(join(certsep.dir, 'audit', 'acmed.audit.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord).filter((r) => r.method === 'order.issue' && r.outcome === 'ok').length;
}

async function statusOf(certsep: CertsepUnderTest): Promise<{ hosts: { host: string; state: string }[] }> {
  const out = await certsep.ctl(['status', '--json', 'www']);
  return (JSON.parse(out.stdout) as { certs: { hosts: { host: string; state: string }[] }[] }).certs[0]!;
}

/** The serial a host serves once it is not `old` (nginx's new workers take over moments after a reload). */
function waitForServedOtherThan(address: string, old: string, rootPem: string): Promise<string> {
  return waitFor(async () => {
    const served = await servedCertificate(address, rootPem);
    return served.trusted && served.x509.serialNumber !== old ? served.x509.serialNumber.replace(/^0+/, '') : undefined;
  }, 15_000, `${address} to serve a new certificate`);
}

/** A client that may send anything the remote might not offer (the remote must refuse it). */
const anything = { params: z.any(), result: z.any(), callers: [] };
const anyMethodApi = defineApi('remote', { 'key.export': anything, 'key.import': anything, 'deploy.install': anything, 'csr.create': anything, status: anything });
