// A test hook to prove crash safety: with CERTSEP_TEST_HOOKS=1, when deployd reaches a point named
// in <stateDir>/test-crash-at it removes that file and SIGKILLs itself, as a power cut would stop
// it. A file, not an environment variable, so the deployd the supervisor restarts runs through.
// Without CERTSEP_TEST_HOOKS=1 the file is never read, so a stray file cannot break production.
// Points, in the order a run reaches them:
//   csr        the csr step is journaled; keyd not asked yet
//   lease      netd opened the lease and the journal names it; no order asked for yet
//   installed  privd installed the chain (its files replaced, a run pending); not checked yet
//   reload     the reload step is journaled; privd not asked yet
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export type CrashPoint = 'csr' | 'lease' | 'installed' | 'reload';

let hookFile: string | undefined;

export function armCrashHook(stateDir: string): void {
  if (process.env['CERTSEP_TEST_HOOKS'] === '1') hookFile = join(stateDir, 'test-crash-at');
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
