// A real certsep-netd (the built bundle) under the netd test uid with CAP_NET_ADMIN alone, run
// INSIDE a test network namespace (`ip netns exec NS setpriv …`), so its nft tables, sysctls and
// UPnP traffic are the namespace's and never the machine's. Its socket is a path, reachable from
// the test process in the host namespace.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditRecord } from '../../audit/record.ts';
import { callOnce } from '../../proto/client.ts';
import { RpcError } from '../../proto/errors.ts';
import { netdApi, type Lease } from '../../netd/api.ts';
import { execInNetns, startDaemonInNetns } from '../harness/netns.ts';
import { trackDaemon, waitFor, waitForExit } from '../harness/proc.ts';
import { assertBuilt, canConnectUnix, prepareDaemonDirs, REPO } from '../harness/suite.ts';
import { execAs, setprivArgs, TEST_IDS, type Identity } from '../harness/uids.ts';

export type Answer = { pid: number; ok: true; result: Record<string, unknown> } | { pid: number; ok: false; code: string; message: string };

export class NetdInNetns {
  readonly socketPath: string;
  readonly auditFile: string;
  private child: ChildProcess | null = null;

  constructor(readonly ns: string, readonly dir: string, readonly configPath: string) {
    prepareDaemonDirs(dir, 'netd', TEST_IDS.netd);
    // In production systemd makes the socket; here netd makes it in a dir of its own.
    const sockets = join(dir, 'netd-run');
    mkdirSync(sockets, { recursive: true, mode: 0o755 });
    chownSync(sockets, TEST_IDS.netd.uid, TEST_IDS.netd.gid);
    this.socketPath = join(sockets, 'netd.sock');
    this.auditFile = join(dir, 'audit', 'netd.audit.jsonl');
  }

  private logTail(): string {
    return readFileSync(join(this.dir, 'netd.log'), 'utf8').slice(-2000);
  }

  get pid(): number {
    assert.ok(this.child?.pid, 'netd is not running');
    return this.child.pid;
  }

  /** Starts netd (extra: more command-line arguments, e.g. --idle-exit) and waits until it listens. */
  async start(extra: readonly string[] = []): Promise<void> {
    const bundle = assertBuilt('netd');
    const args = [bundle, '--config', this.configPath, '--socket', this.socketPath, '--socket-mode', '0666', ...extra];
    const log = openSync(join(this.dir, 'netd.log'), 'a');
    const child = trackDaemon(spawn('ip', ['netns', 'exec', this.ns, 'setpriv', ...setprivArgs(TEST_IDS.netd, process.execPath, args)], { stdio: ['ignore', log, log] }));
    closeSync(log);
    this.child = child;
    let exited = false;
    child.once('exit', (code, signal) => {
      exited = true;
      // Kept in its log: a netd that died unexpectedly says how.
      appendFileSync(join(this.dir, 'netd.log'), `# certsep-netd pid ${child.pid} exited: code ${code} signal ${signal}\n`);
    });
    try {
      await waitFor(async () => {
        if (exited) throw new Error(`certsep-netd exited during start-up:\n${this.logTail()}`);
        return canConnectUnix(this.socketPath);
      }, 30_000, 'certsep-netd to listen');
    } catch (e) {
      // A netd stuck in its start-up must not outlive this failure and confuse the next test.
      this.child = null;
      child.kill('SIGKILL');
      await waitForExit(child, 10_000);
      throw e;
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await waitForExit(child, 15_000);
  }

  /** Starts netd again (with no extra arguments) unless it is running. */
  async ensureRunning(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return;
    await this.start();
  }

  /** Waits for netd to exit by itself (idle exit), within timeoutMs. */
  async exitedByItself(timeoutMs: number): Promise<void> {
    const child = this.child;
    assert.ok(child, 'netd is not running');
    await waitForExit(child, timeoutMs);
    this.child = null;
  }

  async kill9(): Promise<void> {
    const child = this.child;
    this.child = null;
    assert.ok(child, 'netd is not running');
    child.kill('SIGKILL');
    await waitForExit(child, 10_000);
  }

  /** Calls netd as uid id from a separate process (pid is that process's, as netd saw it). */
  async callAs(id: Identity, method: string, params: unknown): Promise<Answer> {
    const run = await execAs(id, process.execPath, ['--import', 'tsx', 'test/netd/call.ts', this.socketPath, method, JSON.stringify(params)], { cwd: REPO, timeoutMs: 90_000 });
    assert.equal(run.code, 0, `call.ts as uid ${id.uid} failed: ${run.stderr}`);
    return JSON.parse(run.stdout) as Answer;
  }

  /** lease.open as deployd, which must succeed. */
  async openLease(cert: string, exposure: string, ttlSeconds: number): Promise<Lease> {
    const answer = await this.callAs(TEST_IDS.deployd, 'lease.open', { cert, exposure, ttlSeconds });
    assert.ok(answer.ok, `lease.open failed: ${JSON.stringify(answer)}`);
    return answer.result as unknown as Lease;
  }

  /** As root (an admin), from this process. */
  async closeLease(id: string): Promise<void> {
    await callOnce(netdApi, this.socketPath, 'lease.close', { id }, { timeoutMs: 60_000 });
  }

  async listLeases(): Promise<Lease[]> {
    return (await callOnce(netdApi, this.socketPath, 'lease.list', {}, { timeoutMs: 10_000 })).leases;
  }

  /** The code of a call as root that must fail. */
  async refusalAsRoot(method: 'lease.open' | 'lease.close', params: object): Promise<RpcError> {
    try {
      await callOnce(netdApi, this.socketPath, method, params as never, { timeoutMs: 60_000 });
    } catch (e) {
      if (e instanceof RpcError) return e;
      throw e;
    }
    throw new Error(`${method} ${JSON.stringify(params)} succeeded`);
  }

  auditRecords(): AuditRecord[] {
    return readFileSync(this.auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditRecord);
  }

  /** /proc/<pid>/status of the running netd: its real uid and effective capabilities. */
  identity(): { uid: number; capEff: string } {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    return { uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]), capEff: /^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? '' };
  }
}

/**
 * The http-01 listener netd exposes, inside ns on address:port, answering `body`; resolves once
 * it answers from inside ns (generous: a loaded CI machine starts node slowly).
 */
export async function startChallengeListener(ns: string, address: string, port: number, body: string, logPath: string): Promise<ChildProcess> {
  const args = ['--import', 'tsx', join(REPO, 'test/netd/challenge-listener.ts'), address, String(port), body];
  const child = startDaemonInNetns(ns, process.execPath, args, { logPath, cwd: REPO });
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}/`;
  await waitFor(async () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the listener exited:\n${readFileSync(logPath, 'utf8').slice(-2000)}`);
    return (await fetchFrom(ns, url)) === `${body}\n`;
  }, 30_000, `the listener on ${url} in ${ns}`, 200);
  return child;
}

/** The body of http://url fetched with curl from inside ns, or null if nothing answered. */
export async function fetchFrom(ns: string, url: string): Promise<string | null> {
  const r = await execInNetns(ns, 'curl', ['-sf', '-m', '3', url], { timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout : null;
}

/** Runs an nft command inside ns and returns its stdout (it must succeed). */
export async function nftIn(ns: string, args: string[], input?: string): Promise<string> {
  const r = await execInNetns(ns, 'nft', args, { ...(input === undefined ? {} : { input }), timeoutMs: 10_000 });
  assert.equal(r.code, 0, `nft ${args.join(' ')} in ${ns}: ${r.stderr}`);
  return r.stdout;
}

/** Seconds since start, for the per-test timing line. */
export function secondsSince(startedMs: number): string {
  return ((Date.now() - startedMs) / 1000).toFixed(1);
}
