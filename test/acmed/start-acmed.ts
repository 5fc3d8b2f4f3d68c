// A real certsep-acmed (the built bundle) under the acmed test uid, beside a real certsep-keyd
// under its own uid on the same config (acmed orders only for the key keyd holds now), plus what
// its tests need: keyd's CSRs asked for as deployd, CSRs made with openssl (a key keyd never saw),
// calls as root (an admin) or as another uid, and a check that a chain leads to Pebble's root.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chownSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { acmedApi, type IssueResult } from '../../acmed/api.ts';
import type { AuditRecord } from '../../audit/record.ts';
import { RpcClient } from '../../proto/client.ts';
import { runCommand } from '../harness/proc.ts';
import { REPO, prepareDaemonDirs, startCertsepDaemon, writeTestConfig, type RunningDaemon } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, TEST_IDS, type Identity } from '../harness/uids.ts';

export type AcmedClient = RpcClient<(typeof acmedApi)['methods']>;
type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';
export interface KeydCsr {
  csrPem: string;
  keyId: string;
  newKey: boolean;
}

export interface AcmedUnderTest {
  dir: string;
  stateDir: string;
  client: AcmedClient;
  keydSocket: string;
  log(): string;
  /** acmed's (or keyd's) audit trail, oldest first. */
  auditRecords(daemon?: 'acmed' | 'keyd'): AuditRecord[];
  /** CSRs keyd makes (asked for as deployd, in one process), in the order asked. */
  keydCsrs(requests: { cert: string; keyType: KeyType }[]): Promise<KeydCsr[]>;
  /** One CSR from keyd for cert (ec-p256 unless said otherwise). */
  keydCsr(cert: string, keyType?: KeyType): Promise<string>;
  /** order.issue (as root) of keyd's CSR for cert; `replaces` as order.issue takes it. */
  orderKeydCsr(cert: string, keyType?: KeyType, replaces?: string): Promise<IssueResult>;
  /** The running acmed's pid (a new one after restart). */
  pid(): number | undefined;
  callAs(id: Identity, method: string, params: unknown): Promise<{ ok: boolean; code?: string; message?: string; result?: unknown }>;
  /** Stops acmed and starts it again on the same config and state dir; `client` is the new connection. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface AcmedSetup {
  /** Config sections merged over the test config (cas, certificates, acme). */
  config: Record<string, unknown>;
  /** Called with the scratch dir before acmed starts, to create webroots, key files, hooks. */
  prepare?: (dir: string) => void;
}

export async function startAcmed(setup: AcmedSetup | ((dir: string) => AcmedSetup)): Promise<AcmedUnderTest> {
  const dir = makeTempDir('acmed');
  let daemon: RunningDaemon;
  let keyd: RunningDaemon | undefined;
  let client: AcmedClient;
  let configPath: string;
  const socketPath = join(dir, 'run', 'acmed.sock');
  const keydSocket = join(dir, 'run', 'keyd.sock');
  const logFile = join(dir, 'acmed.log');
  try {
    const { config, prepare } = typeof setup === 'function' ? setup(dir) : setup;
    configPath = writeTestConfig(dir, config);
    prepareDaemonDirs(dir, 'keyd', TEST_IDS.keyd);
    prepareDaemonDirs(dir, 'acmed', TEST_IDS.acmed);
    prepare?.(dir);
    // Each daemon creates its own socket in the run dir here (systemd would in production), so
    // the dir is keyd's while keyd binds, then acmed's.
    chownSync(join(dir, 'run'), TEST_IDS.keyd.uid, TEST_IDS.keyd.gid);
    keyd = await startCertsepDaemon('keyd', { configPath, socketPath: keydSocket, logFile: join(dir, 'keyd.log') });
    chownSync(join(dir, 'run'), TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);
    daemon = await startCertsepDaemon('acmed', { configPath, socketPath, logFile });
    client = await RpcClient.connect(acmedApi, socketPath, { timeoutMs: 600_000 });
  } catch (e) {
    await keyd?.stop();
    removeTempDir(dir);
    throw e;
  }
  const under: AcmedUnderTest = {
    dir,
    stateDir: join(dir, 'state', 'acmed'),
    client,
    keydSocket,
    log: () => readFileSync(logFile, 'utf8'),
    auditRecords: (daemon = 'acmed') => readFileSync(join(dir, 'audit', `${daemon}.audit.jsonl`), 'utf8')
      .split('\n').filter(Boolean).map((line) => JSON.parse(line) as AuditRecord),
    async keydCsrs(requests) {
      const args = ['--import', 'tsx', 'test/acmed/keyd-csrs.ts', keydSocket, JSON.stringify(requests)];
      const run = await execAs(TEST_IDS.deployd, process.execPath, args, { cwd: REPO, timeoutMs: 300_000 });
      assert.equal(run.code, 0, `keyd-csrs.ts as deployd failed: ${run.stderr}`);
      return JSON.parse(run.stdout) as KeydCsr[];
    },
    async keydCsr(cert, keyType = 'ec-p256') {
      return (await under.keydCsrs([{ cert, keyType }]))[0]!.csrPem;
    },
    async orderKeydCsr(cert, keyType = 'ec-p256', replaces) {
      const csrPem = await under.keydCsr(cert, keyType);
      return under.client.call('order.issue', {
        cert, csrPem, keyType, ...(replaces === undefined ? {} : { replaces }),
      });
    },
    pid: () => daemon.child.pid,
    async callAs(id, method, params) {
      const run = await execAs(id, process.execPath, ['--import', 'tsx', 'test/acmed/call.ts', socketPath, method, JSON.stringify(params)], {
        cwd: REPO,
        timeoutMs: 600_000,
      });
      assert.equal(run.code, 0, `call.ts as uid ${id.uid} failed: ${run.stderr}`);
      return JSON.parse(run.stdout) as { ok: boolean; code?: string; message?: string; result?: unknown };
    },
    async restart() {
      under.client.close();
      await daemon.stop();
      daemon = await startCertsepDaemon('acmed', { configPath, socketPath, logFile });
      under.client = await RpcClient.connect(acmedApi, socketPath, { timeoutMs: 600_000 });
    },
    async stop() {
      under.client.close();
      await Promise.all([daemon.stop(), keyd?.stop()]);
      removeTempDir(dir);
    },
  };
  return under;
}

/** A CSR for `names` with a fresh key keyd never saw, made with openssl (the key is thrown away). */
export async function makeCsr(names: string[], keyType: 'ec-p256' | 'rsa-2048' = 'ec-p256'): Promise<string> {
  const key = keyType === 'ec-p256' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  const run = await runCommand('openssl', ['req', '-new', ...key, '-nodes', '-keyout', '/dev/null', '-subj', `/CN=${names[0]}`,
    '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`]);
  assert.equal(run.code, 0, run.stderr);
  return run.stdout;
}

export function splitPem(chainPem: string): X509Certificate[] {
  return (chainPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
}

/** Every certificate in the chain is signed by the next, and the last by rootPem. */
export function assertChainsToRoot(chainPem: string, rootPem: string): X509Certificate {
  const certs = splitPem(chainPem);
  assert.ok(certs.length >= 2, 'a chain holds the leaf and at least one intermediate');
  const root = new X509Certificate(rootPem);
  [...certs, root].forEach((cert, i, all) => {
    const issuer = all[i + 1] ?? root;
    assert.ok(cert.checkIssued(issuer), `${cert.subject} is issued by ${issuer.subject}`);
    assert.ok(cert.verify(issuer.publicKey), `${cert.subject}'s signature verifies with ${issuer.subject}'s key`);
  });
  return certs[0]!;
}

/** The DNS names in a certificate's subjectAltName. */
export function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4)).sort();
}
