// privd under test with its real peers: the built certsep-keyd under its test uid and the built
// certsep-privd as root, sharing one config; a test CA signs the CSRs keyd makes (asked for as
// deployd's uid, as in production). Helpers snapshot directories and read privd's audit log.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import {
  chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { AuditRecord } from '../../audit/record.ts';
import type { Nginx } from '../harness/nginx.ts';
import { REPO, prepareDaemonDirs, startCertsepDaemon, writeTestConfig, type RunningDaemon } from '../harness/suite.ts';
import { waitFor } from '../harness/proc.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, TEST_IDS, type Identity } from '../harness/uids.ts';
import { rawCall, type RawAnswer } from '../harness/raw-call.ts';
import { TestCa, type CryptoKey, type IssueOptions } from './test-ca.ts';

export interface Issued {
  chainPem: string;
  keyId: string;
  keyPem: string;
  leafPem: string;
  fingerprint: string;
}

export type SuiteIssueOptions = Omit<IssueOptions, 'publicKey'> & {
  publicKey?: CryptoKey;
  chain?: (leaf: string) => string;
  by?: TestCa;
};

type ConfigSections = Record<string, unknown>;

export interface PrivdSuite {
  dir: string;
  configPath: string;
  socketPath: string;
  ca: TestCa;
  /** The running privd (replaced by restartPrivd). */
  privd(): RunningDaemon;
  /** Stops privd (SIGTERM, or waits if it already died) and starts it again with env. */
  restartPrivd(env?: NodeJS.ProcessEnv): Promise<void>;
  call(method: string, params: unknown): Promise<RawAnswer>;
  callAs(id: Identity, method: string, params: unknown): Promise<{ pid: number; answer: RawAnswer }>;
  /** A CSR from keyd (as deployd) for cert/keyType, signed by the test CA (or by `by`). */
  issue(cert: string, keyType: string, opts: SuiteIssueOptions): Promise<Issued>;
  /** deploy.install of an issued chain; asserts success. */
  install(cert: string, keyType: string, issued: Issued): Promise<Record<string, unknown>>;
  auditRecords(): AuditRecord[];
  /** The seq of the last audit record so far (0 when none). */
  auditMark(): number;
  /**
   * The first record after mark that matches. privd answers a request before it appends the
   * outcome to the audit log, so a test that has its answer may still have to wait for the record.
   */
  awaitAudit(mark: number, matches: (r: AuditRecord) => boolean): Promise<AuditRecord>;
  stop(): Promise<void>;
}

/**
 * build gets the suite's dir (for target dirs and service files), the CA and the file holding its
 * root, and returns config sections. Unless they name their own `cas`, the default CA trusts the
 * test CA's root (roots: that file), as an admin configures a private CA.
 */
export async function startPrivdSuite(
  build: (dir: string, ca: TestCa, rootsPath: string) => ConfigSections | Promise<ConfigSections>,
): Promise<PrivdSuite> {
  const dir = makeTempDir('privd');
  const ca = await TestCa.create();
  const rootsPath = join(dir, 'ca-roots.pem');
  writeFileSync(rootsPath, ca.rootPem, { mode: 0o644 });
  const sections = await build(dir, ca, rootsPath);
  const trustingTestCa = { default: { directory: 'letsencrypt', roots: rootsPath } };
  const configPath = writeTestConfig(dir, { cas: trustingTestCa, ...sections });
  prepareDaemonDirs(dir, 'keyd', TEST_IDS.keyd);
  prepareDaemonDirs(dir, 'privd', null);
  // keyd creates its own socket here in tests (systemd would in production).
  chownSync(join(dir, 'run'), TEST_IDS.keyd.uid, TEST_IDS.keyd.gid);
  const keydSocket = join(dir, 'run', 'keyd.sock');
  const socketPath = join(dir, 'run', 'privd.sock');
  const startPrivd = (env: NodeJS.ProcessEnv = {}) => startCertsepDaemon('privd', { configPath, socketPath, logFile: join(dir, 'privd.log'), env });
  let keyd: RunningDaemon | undefined;
  let privd: RunningDaemon | undefined;
  try {
    keyd = await startCertsepDaemon('keyd', { configPath, socketPath: keydSocket, logFile: join(dir, 'keyd.log') });
    privd = await startPrivd();
  } catch (e) {
    await keyd?.stop();
    removeTempDir(dir);
    throw e;
  }

  const callAs = async (id: Identity, method: string, params: unknown, socket = socketPath) => {
    const run = await execAs(id, process.execPath, ['--import', 'tsx', 'test/harness/raw-call-cli.ts', socket, method, JSON.stringify(params)], { cwd: REPO, timeoutMs: 120_000 });
    assert.equal(run.code, 0, `raw-call-cli.ts as uid ${id.uid} failed: ${run.stderr}`);
    return JSON.parse(run.stdout) as { pid: number; answer: RawAnswer };
  };
  const call = (method: string, params: unknown) => rawCall(socketPath, method, params);
  const auditRecords = (): AuditRecord[] =>
    readFileSync(join(dir, 'audit', 'privd.audit.jsonl'), 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditRecord);

  return {
    dir,
    configPath,
    socketPath,
    ca,
    privd: () => privd!,
    async restartPrivd(env = {}) {
      if (privd!.child.exitCode === null && privd!.child.signalCode === null) await privd!.stop();
      privd = await startPrivd(env);
    },
    call,
    callAs,
    async issue(cert, keyType, opts) {
      const { answer } = await callAs(TEST_IDS.deployd, 'csr.create', { cert, keyType }, keydSocket);
      assert.ok(answer.ok, `csr.create ${cert}/${keyType} failed: ${JSON.stringify(answer)}`);
      const { csrPem, keyId } = answer.result as { csrPem: string; keyId: string };
      const exported = await rawCall(keydSocket, 'key.export', { cert, keyType, keyId });
      assert.ok(exported.ok, `key.export failed: ${JSON.stringify(exported)}`);
      const signer = opts.by ?? ca;
      const leaf = await signer.issue(csrPem, opts);
      const leafPem = `${leaf.toString('pem')}\n`;
      return {
        chainPem: opts.chain ? opts.chain(leafPem) : signer.chainPem(leaf),
        keyId,
        keyPem: String(exported.result['keyPem']),
        leafPem,
        fingerprint: new X509Certificate(leafPem).fingerprint256,
      };
    },
    async install(cert, keyType, issued) {
      const answer = await call('deploy.install', { cert, keyType, chainPem: issued.chainPem, keyId: issued.keyId });
      assert.ok(answer.ok, `deploy.install ${cert} failed: ${JSON.stringify(answer)}`);
      return answer.result;
    },
    auditRecords,
    auditMark() {
      return auditRecords().at(-1)?.seq ?? 0;
    },
    awaitAudit(mark, matches) {
      return waitFor(() => auditRecords().find((r) => r.seq > mark && matches(r)), 10_000, 'an audit record');
    },
    async stop() {
      await privd?.stop();
      await keyd?.stop();
      removeTempDir(dir);
    },
  };
}

/**
 * deploy.install of issued for cert must fail with code and a message matching message, write
 * nothing (in the target dirs `watched` and privd's state), and be audited with that code.
 */
export async function assertInstallRefused(
  suite: PrivdSuite,
  cert: string,
  issued: Issued,
  code: string,
  message: RegExp,
  watched: readonly string[],
): Promise<void> {
  const state = ['live', 'archive', 'privd'].map((d) => join(suite.dir, 'state', d));
  const everything = () => snapshot(...watched, ...state);
  const before = everything();
  const mark = suite.auditMark();
  const params = { cert, keyType: 'ec-p256', chainPem: issued.chainPem, keyId: issued.keyId };
  const answer = await suite.call('deploy.install', params);
  assert.equal(answer.ok, false, `deploy.install of ${cert} succeeded`);
  assert.equal(answer.error.code, code, `expected ${code}, got ${answer.error.code}: ${answer.error.message}`);
  assert.match(answer.error.message, message);
  assert.deepEqual(everything(), before, 'nothing was written');
  const record = await suite.awaitAudit(mark, (r) => r.method === 'deploy.install');
  assert.equal(record.code, code);
  assert.equal(record.peer?.uid, 0);
}

/** A privd service for the test nginx: `nginx -t`, then `nginx -s reload`. */
export function nginxService(nginx: Nginx): ConfigSections {
  return {
    check: [['nginx', '-t', '-q', ...nginx.args]],
    reload: { command: ['nginx', '-s', 'reload', ...nginx.args] },
  };
}

/** Makes a root-owned 0755 target directory. */
export function targetDir(dir: string, name: string): string {
  const path = join(dir, 'targets', name);
  mkdirSync(path, { recursive: true, mode: 0o755 });
  return path;
}

/** Every entry under the given roots: file → sha256+owner+mode, symlink → its target, dir → 'dir'. */
export function snapshot(...roots: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string) => {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) out[path] = `-> ${readlinkSync(path)}`;
    else if (st.isDirectory()) {
      out[path] = 'dir';
      for (const name of readdirSync(path)) walk(join(path, name));
    } else out[path] = `${createHash('sha256').update(readFileSync(path)).digest('hex')} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
  };
  for (const root of roots) if (existsSync(root)) walk(root);
  return out;
}

/** The files of a target dir by name → content. */
export function readTarget(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name), 'utf8')]));
}
