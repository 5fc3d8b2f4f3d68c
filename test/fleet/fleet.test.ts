// Several hosts over OpenSSH (issue #8), end to end with real peers: Pebble, the central certsep
// (supervisor and its daemons, certsepctl as root), and two remote hosts, each in network and
// mount namespaces of its own with a real sshd, nginx, keyd and privd (remote-host.ts). Central
// and remotes are linked by veth pairs inside namespaces made here: this file re-runs itself inside
// the central namespace (like test/deployd/lease-crash), and bind-mounts a passwd there that names
// deployd's uid (OpenSSH's client refuses to run for a uid without one).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:tls';
import { createNetns, createVethPair, deleteNetns, execInNetns } from '../harness/netns.ts';
import { REPO } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { startCertsep, type CertsepUnderTest } from '../deployd/certsep-under-test.ts';
import { startRemoteHost, TLS_PORT, REMOTE_USER, type RemoteHost } from './remote-host.ts';

const INSIDE = 'CERTSEP_FLEET_NETNS';
const DOMAINS = ['www.fleet.example'];
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
      const inner = await execInNetns(central, process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', fileURLToPath(import.meta.url)], {
        cwd: REPO, env: innerEnv(central, remotes), timeoutMs: 420_000,
      });
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
        remotes[name] = await startRemoteHost(name, remoteNamespaces[i]!, HOSTS[name], DOMAINS, publicKey);
      }
      certsep = await startCertsep({
        testHooks: true,
        sites: [],
        fleet: ({ webroot }) => ({
          hosts: Object.fromEntries((Object.keys(HOSTS) as HostName[]).map((name) => [name, {
            address: HOSTS[name], user: REMOTE_USER, hostKeys: [remotes[name].hostKey()], identityFile: identity, connectTimeoutSeconds: 3,
          }])),
          delivery: { retries: 5, retryIntervalSeconds: 2, maxRetryIntervalSeconds: 4 },
          certificates: [{ name: 'www', domains: DOMAINS, keyTypes: ['ec-p256'], hosts: Object.keys(HOSTS), challenge: { type: 'http-01-webroot', webroot } }],
        }),
      });
      pebbleRoot = await certsep.pebble.fetchRoot();
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
      const served = await Promise.all((Object.keys(HOSTS) as HostName[]).map((name) => servedCertificate(HOSTS[name], pebbleRoot)));
      for (const cert of served) assert.equal(cert.trusted, true, 'the served chain verifies against Pebble');
      assert.notEqual(served[0]!.x509.serialNumber, served[1]!.x509.serialNumber, 'one order per host');
      for (const [i, name] of (Object.keys(HOSTS) as HostName[]).entries()) {
        const keyPem = await remotes[name].readPrivate(join(remotes[name].privateDir, 'targets', 'www', 'privkey.pem'));
        const key = createPrivateKey(keyPem);
        assert.ok(served[i]!.x509.checkPrivateKey(key), `${name} serves the certificate of the key in its own target`);
        const found = searchFileSystem(keyMaterial(key));
        assert.deepEqual(found, [], `${name}'s private key appears on the central host's file system`);
      }
      assert.notEqual(served[0]!.x509.publicKey.export({ type: 'spki', format: 'pem' }), served[1]!.x509.publicKey.export({ type: 'spki', format: 'pem' }), 'each host has its own key');
    });
  });
}

/** The remote namespaces travel in the environment; NODE_TEST_CONTEXT must not (see lease-crash). */
function innerEnv(central: string, remotes: string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [INSIDE]: central, CERTSEP_FLEET_REMOTES: remotes.join(',') };
  delete env['NODE_TEST_CONTEXT'];
  return env;
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
  const pemBody = (der: Buffer) => Buffer.from(der.toString('base64').slice(8, 72));
  return [pkcs8, sec1, d, pemBody(pkcs8), pemBody(sec1)];
}

// Where anything of certsep's or a test's could be written on the central host.
const SEARCHED = ['/var/lib', '/etc', '/run', '/tmp', '/var/tmp', '/var/log', '/root', '/home', '/srv', '/opt', '/work'];
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** Files under SEARCHED (as this mount namespace sees them) that contain any of needles. */
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
        if (path === '/work/.library' || path.endsWith('/node_modules') || path.endsWith('/.git')) continue;
        walk(path);
      } else if (e.isFile()) {
        try {
          if (lstatSync(path).size > MAX_FILE_BYTES) continue;
          const data = readFileSync(path);
          if (needles.some((n) => data.includes(n))) found.push(path);
        } catch {
          // unreadable (a socket's neighbour, gone meanwhile): nothing to find
        }
      }
    }
  };
  for (const root of SEARCHED) if (existsSync(root)) walk(root);
  return found;
}
