// A test hook to prove crash safety: with CERTSEP_TEST_HOOKS=1 and CERTSEP_PRIVD_CRASH_AT=<point>,
// privd SIGKILLs itself when it reaches that point, as a power cut would stop it. Without
// CERTSEP_TEST_HOOKS=1 the variable is ignored, so a stray environment cannot break production.
// Points, in the order a run reaches them:
//   journal-written  the run's files are in the journal; nothing staged yet
//   staged           every new file is a temp beside its final name
//   backed-up        every old file is copied to the run's backup dir; no final name replaced
//   mid-target       the first file of the second target (the only one, if just one) renamed
//   renamed          every final name replaced; the journal still says installing
//   reloaded         services reloaded with the new files; the run not committed
//   committing       the journal says committing; the lineage not switched yet
export const CRASH_POINTS = ['journal-written', 'staged', 'backed-up', 'mid-target', 'renamed', 'reloaded', 'committing'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

const armedAt = process.env['CERTSEP_TEST_HOOKS'] === '1' ? process.env['CERTSEP_PRIVD_CRASH_AT'] : undefined;

export function crashPoint(point: CrashPoint): void {
  if (armedAt === point) process.kill(process.pid, 'SIGKILL');
}
