// Process helpers for tests: run a command to completion, start a long-lived peer whose output goes
// to a log file, wait for a condition or a port, and kill a process with all its descendants.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { openSync, closeSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  timeoutMs?: number;
}

// Resolves with the exit status whatever it is; rejects only when the command cannot be started
// or outlives timeoutMs (then it is killed), so callers assert on code/stderr themselves.
export function runCommand(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  return collectResult(child, `${cmd} ${args.join(' ')}`, opts);
}

export function collectResult(child: ChildProcess, what: string, opts: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what}: still running after ${timeoutMs} ms, killed`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${what}: cannot start: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    if (child.stdin) {
      // A command that exits without reading its input closes the pipe first: EPIPE is no failure,
      // its exit status says how it went.
      child.stdin.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EPIPE') reject(new Error(`${what}: cannot write its input: ${e.message}`));
      });
      child.stdin.end(opts.input ?? '');
    }
  });
}

// Peers started by tests; terminated when the test process exits, even after a failed assertion
// skipped the test's own stop().
const runningDaemons = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of runningDaemons) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try { process.kill(child.pid, 'SIGTERM'); } catch { /* already gone */ }
    }
  }
});

export interface DaemonOptions {
  logPath: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

// `setpriv --pdeathsig TERM` makes the kernel signal the peer if this test process is killed
// outright (SIGKILL, runner timeout), when no 'exit' handler runs.
export function startDaemon(cmd: string, args: readonly string[], opts: DaemonOptions): ChildProcess {
  const log = openSync(opts.logPath, 'a');
  try {
    const spawnOpts: SpawnOptions = { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', log, log] };
    return trackDaemon(spawn('setpriv', ['--pdeathsig', 'TERM', '--', cmd, ...args], spawnOpts));
  } finally {
    closeSync(log);
  }
}

export function trackDaemon(child: ChildProcess): ChildProcess {
  runningDaemons.add(child);
  child.on('exit', () => runningDaemons.delete(child));
  return child;
}

export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  what = 'condition',
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  await waitFor(() => canConnect(port, host), timeoutMs, `a listener on ${host}:${port}`);
}

function parentPids(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try { stat = readFileSync(`/proc/${entry}/stat`, 'utf8'); } catch { continue; }
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  return children;
}

export function descendantPids(pid: number): number[] {
  const children = parentPids();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie answers signal 0 but has already exited.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// Signals pid and every descendant, then SIGKILLs whatever is still alive after graceMs.
export async function killTree(pid: number, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
  const pids = [pid, ...descendantPids(pid)];
  for (const p of pids) {
    try { process.kill(p, signal); } catch { /* already gone */ }
  }
  try {
    await waitFor(() => pids.every((p) => !isAlive(p)), graceMs, `pid ${pid} and its descendants to exit`);
  } catch {
    for (const p of pids) {
      try { process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}

// Waits for a child started by startDaemon/spawn to be reaped (so its ports are released).
export function waitForExit(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pid ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
  });
}
