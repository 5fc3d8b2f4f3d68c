// A real certsep-keyd (the built bundle) under the keyd test uid, with a config holding the given
// certificates, and the ways its peers reach it: deployd's and other uids through setpriv and
// test/harness/raw-call-cli.ts, root (privd's uid) from this test process.
import assert from 'node:assert/strict';
import { chownSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditRecord } from '../../audit/record.ts';
import { REPO, prepareDaemonDirs, startCertsepDaemon, writeTestConfig, type RunningDaemon } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, TEST_IDS, type Identity } from '../harness/uids.ts';
import { rawCall, type RawAnswer } from '../harness/raw-call.ts';

export interface CertificateSpec {
  name: string;
  domains: string[];
  keyTypes?: string[];
  keyPolicy?: 'rotate' | 'reuse';
}

export interface CsrAnswer {
  csrPem: string;
  keyId: string;
  newKey: boolean;
}

export interface KeydUnderTest {
  dir: string;
  daemon: RunningDaemon;
  /** keyd's own state dir, <paths.stateDir>/keyd. */
  stateDir: string;
  auditFile: string;
  /** Calls keyd as uid id from a separate process; pid is that process's, as keyd saw it. */
  callAs(id: Identity, method: string, params: unknown): Promise<{ pid: number; answer: RawAnswer }>;
  callAsRoot(method: string, params: unknown): Promise<RawAnswer>;
  /** csr.create as deployd, which must succeed. */
  createCsr(cert: string, keyType: string): Promise<CsrAnswer>;
  /** key.export as root, which must succeed. */
  exportKey(cert: string, keyType: string, keyId: string): Promise<string>;
  auditRecords(): AuditRecord[];
  /** Stops keyd and starts it again on the same config and state. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartKeydOptions {
  /** Runs after the dirs are prepared as tmpfiles.d would, before keyd starts (to spoil them). */
  prepare?: (dir: string) => void;
}

export async function startKeyd(certificates: CertificateSpec[], options: StartKeydOptions = {}): Promise<KeydUnderTest> {
  const dir = makeTempDir('keyd');
  const configPath = writeTestConfig(dir, {
    certificates: certificates.map((c) => ({
      ...c,
      // keyd never looks at the challenge; dns-01 is the one that allows wildcards.
      challenge: { type: 'dns-01-hook', command: ['/bin/true'] },
    })),
  });
  prepareDaemonDirs(dir, 'keyd', TEST_IDS.keyd);
  // In production systemd creates the socket; here keyd creates it, so it needs its run dir.
  chownSync(join(dir, 'run'), TEST_IDS.keyd.uid, TEST_IDS.keyd.gid);
  options.prepare?.(dir);
  const socketPath = join(dir, 'run', 'keyd.sock');
  const logFile = join(dir, 'keyd.log');
  const start = () => startCertsepDaemon('keyd', { configPath, socketPath, logFile });
  let daemon: RunningDaemon;
  try {
    daemon = await start();
  } catch (e) {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    removeTempDir(dir);
    throw new Error(`${(e as Error).message}\n${log}`);
  }
  const auditFile = join(dir, 'audit', 'keyd.audit.jsonl');

  const callAs = async (id: Identity, method: string, params: unknown) => {
    const run = await execAs(id, process.execPath, ['--import', 'tsx', 'test/harness/raw-call-cli.ts', socketPath, method, JSON.stringify(params)], {
      cwd: REPO,
      timeoutMs: 120_000,
    });
    assert.equal(run.code, 0, `raw-call-cli.ts as uid ${id.uid} failed: ${run.stderr}`);
    return JSON.parse(run.stdout) as { pid: number; answer: RawAnswer };
  };
  const callAsRoot = (method: string, params: unknown) => rawCall(socketPath, method, params);

  return {
    dir,
    get daemon() {
      return daemon;
    },
    stateDir: join(dir, 'state', 'keyd'),
    auditFile,
    callAs,
    callAsRoot,
    async createCsr(cert, keyType) {
      const { answer } = await callAs(TEST_IDS.deployd, 'csr.create', { cert, keyType });
      assert.ok(answer.ok, `csr.create ${cert}/${keyType} failed: ${JSON.stringify(answer)}`);
      return answer.result as unknown as CsrAnswer;
    },
    async exportKey(cert, keyType, keyId) {
      const answer = await callAsRoot('key.export', { cert, keyType, keyId });
      assert.ok(answer.ok, `key.export ${cert}/${keyType}/${keyId} failed: ${JSON.stringify(answer)}`);
      return String(answer.result['keyPem']);
    },
    auditRecords() {
      return readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as AuditRecord);
    },
    async restart() {
      await daemon.stop();
      daemon = await start();
    },
    async stop() {
      await daemon.stop();
      removeTempDir(dir);
    },
  };
}
