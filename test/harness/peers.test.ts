// Proves the harness drives the REAL peers every other test relies on: Pebble + challtestsrv,
// nginx, and commands run under the daemons' test uids.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { Agent } from 'node:https';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import acme from 'acme-client';
import { makeLocalTls } from './certs.ts';
import { requestText } from './http.ts';
import { startNginx } from './nginx.ts';
import { startPebble, type Pebble } from './pebble.ts';
import { freePort } from './ports.ts';
import { collectResult } from './proc.ts';
import { execAs, spawnAs, TEST_IDS } from './uids.ts';
import { makeTempDir, removeTempDir } from './tmp.ts';

const CAP_NET_ADMIN = 1n << 12n;

function resolverFor(pebble: Pebble): Resolver {
  const resolver = new Resolver({ timeout: 2_000, tries: 1 });
  resolver.setServers([`127.0.0.1:${pebble.dnsPort}`]);
  return resolver;
}

function effectiveCaps(status: string): bigint {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  assert.ok(hex, `no CapEff line in:\n${status}`);
  return BigInt(`0x${hex}`);
}

describe('Pebble and challtestsrv', () => {
  let pebble: Pebble;
  before(async () => { pebble = await startPebble(); });
  after(async () => { await pebble?.stop(); });

  test("Pebble's directory answers over HTTPS trusted through caBundlePath alone", async () => {
    const res = await requestText(pebble.directoryUrl, { ca: readFileSync(pebble.caBundlePath) });
    assert.equal(res.status, 200);
    const directory = JSON.parse(res.body) as Record<string, unknown>;
    assert.match(String(directory.newOrder), /^https:\/\/127\.0\.0\.1:\d+\//);
    await assert.rejects(requestText(pebble.directoryUrl), /certificate/i, 'the system trust store must not know this CA');
  });

  test('fetchRoot returns the issuing root as a self-signed CA certificate in PEM', async () => {
    const pem = await pebble.fetchRoot();
    assert.match(pem, /^-----BEGIN CERTIFICATE-----\n/);
    const root = new X509Certificate(pem);
    assert.equal(root.ca, true);
    assert.equal(root.subject, root.issuer);
  });

  test('rootsPath holds /roots/0 and the root of every alternate chain, for a CA\'s roots: in the config', async () => {
    const withAlternates = await startPebble({ alternateRoots: 2 });
    try {
      const text = readFileSync(withAlternates.rootsPath, 'utf8');
      const pems = text.split(/(?<=-----END CERTIFICATE-----\n)/).filter(Boolean);
      const fingerprints = pems.map((pem) => new X509Certificate(pem).fingerprint256);
      assert.equal(fingerprints.length, 3);
      assert.equal(fingerprints[0], new X509Certificate(await withAlternates.fetchRoot()).fingerprint256);
      assert.equal(new Set(fingerprints).size, 3, 'three different roots');
    } finally {
      await withAlternates.stop();
    }
  });

  test('challtestsrv answers a TXT record set with setTxt until clearTxt removes it', async () => {
    const name = '_acme-challenge.txt.example.com';
    await pebble.setTxt(name, 'token-value-1');
    assert.deepEqual(await resolverFor(pebble).resolveTxt(name), [['token-value-1']]);
    await pebble.clearTxt(name);
    await assert.rejects(resolverFor(pebble).resolveTxt(name));
  });

  test('challtestsrv answers every A query with 127.0.0.1', async () => {
    assert.deepEqual(await resolverFor(pebble).resolve4('any-name.example.net'), ['127.0.0.1']);
  });

  test('a second Pebble with EAB required runs at the same time on other ports', async () => {
    const second = await startPebble({ eabRequired: true, eabKeys: { 'kid-1': 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W' } });
    try {
      assert.notEqual(second.directoryUrl, pebble.directoryUrl);
      assert.notEqual(second.httpPort, pebble.httpPort);
      assert.notEqual(second.dnsPort, pebble.dnsPort);
      const [first, other] = await Promise.all([pebble, second].map(async (p) => {
        const res = await requestText(p.directoryUrl, { ca: readFileSync(p.caBundlePath) });
        assert.equal(res.status, 200);
        return JSON.parse(res.body) as { meta?: { externalAccountRequired?: boolean } };
      }));
      assert.notEqual(first?.meta?.externalAccountRequired, true);
      assert.equal(other?.meta?.externalAccountRequired, true);
      assert.notEqual(await second.fetchRoot(), await pebble.fetchRoot(), 'each Pebble has its own root');
    } finally {
      await second.stop();
    }
  });

  test("Pebble validates http-01 through nginx on httpPort, and another account's order for the name gets a fresh authorization", async () => {
    const webroot = makeTempDir('webroot');
    const nginx = await startNginx({ servers: [{ listen: pebble.httpPort, webroot }] });
    const newClient = async () => new acme.Client({ directoryUrl: pebble.directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey() });
    const agentBefore = acme.axios.defaults.httpsAgent;
    acme.axios.defaults.httpsAgent = new Agent({ ca: readFileSync(pebble.caBundlePath) });
    try {
      const client = await newClient();
      await client.createAccount({ termsOfServiceAgreed: true });
      const identifiers = [{ type: 'dns', value: 'reuse.example.com' }];
      const [authz] = await client.getAuthorizations(await client.createOrder({ identifiers }));
      const challenge = authz?.challenges.find((c) => c.type === 'http-01');
      assert.ok(authz && challenge, 'Pebble offers http-01');
      const dir = join(webroot, '.well-known', 'acme-challenge');
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      writeFileSync(join(dir, challenge.token), await client.getChallengeKeyAuthorization(challenge), { mode: 0o644 });
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
      // Reuse is per account (Pebble 2.4 and 2.10 keep an account's valid authorization about 1 time
      // in 100 even with PEBBLE_AUTHZREUSE=0): for other accounts the name is always unproven.
      for (let i = 0; i < 8; i++) {
        const other = await newClient();
        await other.createAccount({ termsOfServiceAgreed: true });
        const [next] = await other.getAuthorizations(await other.createOrder({ identifiers }));
        assert.equal(next?.status, 'pending', `account ${i + 2} got a fresh authorization`);
        assert.notEqual(next?.url, authz.url);
      }
    } finally {
      acme.axios.defaults.httpsAgent = agentBefore;
      await nginx.stop();
      removeTempDir(webroot);
    }
  });
});

describe('nginx', () => {
  test('nginx serves a webroot file over HTTP and HTTPS, readable by its unprivileged workers', async () => {
    const webroot = makeTempDir('webroot');
    writeFileSync(join(webroot, 'hello.txt'), 'hello from the webroot\n', { mode: 0o644 });
    const tls = await makeLocalTls(webroot);
    const [httpPort, httpsPort] = [await freePort(), await freePort()];
    const nginx = await startNginx({
      servers: [{ listen: httpPort, webroot }, { listen: httpsPort, webroot, tls }],
    });
    try {
      assert.equal((await requestText(`http://127.0.0.1:${httpPort}/hello.txt`)).body, 'hello from the webroot\n');
      const res = await requestText(`https://127.0.0.1:${httpsPort}/hello.txt`, { ca: readFileSync(tls.caPath) });
      assert.equal(res.status, 200);
      assert.equal(res.body, 'hello from the webroot\n');
      assert.ok(nginx.workerPids().length > 0, 'the master has workers');
    } finally {
      await nginx.stop();
      removeTempDir(webroot);
    }
  });

  test('test() passes a valid config and fails a broken one; reload() counts reloads and rejects a broken config', async () => {
    const nginx = await startNginx({ servers: [{ listen: await freePort() }] });
    try {
      assert.deepEqual(nginx.test(), { ok: true, output: '' });
      assert.equal(nginx.reloadCount(), 0);
      const master = nginx.pid();
      await nginx.reload();
      assert.equal(nginx.reloadCount(), 1);
      assert.equal(nginx.pid(), master, 'a reload keeps the master');

      const servers = [{ listen: await freePort(), extra: 'no_such_directive on;' }];
      nginx.writeConfig(servers);
      const broken = nginx.test();
      assert.equal(broken.ok, false);
      assert.match(broken.output, /unknown directive "no_such_directive"/);
      assert.equal(nginx.reloadCount(), 1, 'nginx -t is not a reload');
      await assert.rejects(nginx.reload(), /kept its old configuration/);
      assert.equal(nginx.reloadCount(), 2);
    } finally {
      await nginx.stop();
    }
  });
});

describe('test identities', () => {
  test('execAs runs a command as the test uid with no capabilities', async () => {
    const result = await execAs(TEST_IDS.keyd, 'sh', ['-c', 'id -u; id -g; id -G; cat /proc/self/status']);
    assert.equal(result.code, 0, result.stderr);
    const [uid, gid, groups] = result.stdout.split('\n');
    assert.equal(uid, String(TEST_IDS.keyd.uid));
    assert.equal(gid, String(TEST_IDS.keyd.gid));
    assert.equal(groups, String(TEST_IDS.keyd.gid), 'no supplementary groups');
    assert.equal(effectiveCaps(result.stdout), 0n);
  });

  test('spawnAs starts a long-lived process as the test uid', async () => {
    const child = spawnAs(TEST_IDS.other, 'id', ['-u'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const result = await collectResult(child, 'id -u');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${TEST_IDS.other.uid}\n`);
  });

  test("netd's identity keeps CAP_NET_ADMIN and nothing else", async () => {
    const result = await execAs(TEST_IDS.netd, 'cat', ['/proc/self/status']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(effectiveCaps(result.stdout), CAP_NET_ADMIN);
  });
});
