// Running a configured command (a check or a reload) as root: argv from the config only, no
// shell, a fixed PATH and an empty environment, its own process group so a timeout kills
// everything it started, and only the tail of its output kept (enough for the error message).
import { spawn } from 'node:child_process';

const FIXED_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const TAIL_BYTES = 2048;

export interface CommandOutcome {
  ok: boolean;
  /** "exit 1", "killed after 60 s (timeout)", "cannot start: ENOENT". */
  status: string;
  /** The last bytes of stdout and stderr together. */
  tail: string;
}

export function runCommand(argv: readonly string[], timeoutMs: number): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    let tail = Buffer.alloc(0);
    const keep = (chunk: Buffer) => {
      tail = Buffer.concat([tail, chunk]);
      if (tail.length > TAIL_BYTES) tail = tail.subarray(tail.length - TAIL_BYTES);
    };
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { PATH: FIXED_PATH, LANG: 'C.UTF-8' },
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, status: `cannot start: ${e.code ?? e.message}`, tail: '' });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const status = timedOut ? `killed after ${Math.round(timeoutMs / 1000)} s (timeout)` : signal ? `killed by ${signal}` : `exit ${code}`;
      resolve({ ok: code === 0 && !timedOut, status, tail: tail.toString('utf8').trim() });
    });
  });
}

/** "service nginx: `nginx -t` exit 1: <output>", for error messages and the audit log. */
export function describeFailure(service: string, argv: readonly string[], outcome: CommandOutcome): string {
  return `service ${service}: \`${argv.join(' ')}\` ${outcome.status}${outcome.tail ? `: ${outcome.tail}` : ''}`;
}
