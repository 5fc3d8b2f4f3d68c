// A test hook to prove crash safety: with CERTSEP_TEST_HOOKS=1, when deployd reaches a point named
// in <stateDir>/test-crash-at it removes that file and SIGKILLs itself, as a power cut would stop
// it. A file, not an environment variable, so the deployd the supervisor restarts runs through.
// Without CERTSEP_TEST_HOOKS=1 the file is never read, so a stray file cannot break production.
// Points, in the order a run reaches them:
//   csr        the csr step is journaled; keyd not asked yet
//   lease      netd opened the lease and the journal names it; no order asked for yet
//   installed  privd installed the chain (its files replaced, a run pending); not checked yet
//   reload     the reload step is journaled; privd not asked yet
//   queued     a chain ordered for a remote host is in the delivery queue, not offered yet
// And one pause, to take a remote host down in the middle of a run: when <stateDir>/test-pause-at
// names "deliver:<host>", deployd (the chain ordered and queued for that host, not offered yet)
// writes <stateDir>/test-paused-at and waits until the test removes test-pause-at.
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';

export type CrashPoint = 'csr' | 'lease' | 'installed' | 'reload' | 'queued';

let hookFile: string | undefined;
let pauseFile: string | undefined;

export function armCrashHook(stateDir: string): void {
  if (process.env['CERTSEP_TEST_HOOKS'] !== '1') return;
  hookFile = join(stateDir, 'test-crash-at');
  pauseFile = join(stateDir, 'test-pause-at');
}

export async function pausePoint(point: `deliver:${string}`): Promise<void> {
  if (pauseFile === undefined) return;
  try {
    if (readFileSync(pauseFile, 'utf8').trim() !== point) return;
  } catch {
    return;
  }
  writeFileSync(`${pauseFile.slice(0, -'pause-at'.length)}paused-at`, point);
  while (existsSync(pauseFile)) await sleep(50);
}

export function crashPoint(point: CrashPoint): void {
  if (hookFile === undefined) return;
  let armedAt: string;
  try {
    armedAt = readFileSync(hookFile, 'utf8').trim();
  } catch {
    return;
  }
  if (armedAt !== point) return;
  unlinkSync(hookFile);
  process.kill(process.pid, 'SIGKILL');
}
