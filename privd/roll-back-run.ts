// Ending a run either way. Rolling back puts every file the run touched back as it was before the
// run (from its backup, with its old owner and mode; a file that did not exist is removed) — used
// for a failed install, check or reload, for deploy.rollback and for repair on start. Committing
// points the lineage at the new version. Both drop the journal entry only once the files are
// right, and the backups only after that, so a crash at any point leaves a repairable state.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RpcError } from '../proto/errors.ts';
import { PrivdErrorCode } from './api.ts';
import { crashPoint } from './crash-hook.ts';
import type { InstallStores } from './install-targets.ts';
import type { JournalFile, RunRecord } from './journal.ts';
import { assertRootControlledDir } from './target-dir.ts';
import { fsyncDir, writeFileAtomic } from './write-atomic.ts';

/**
 * Restores every target of the run; returns the target directories. Throws E_ROLLBACK_FAILED if
 * a file could not be restored (the journal keeps the run for the next try). Each directory is
 * checked again first: it was root's at install time, but if someone took it (or one above it)
 * over since, a path through it may now lead anywhere, and root neither writes nor deletes there.
 */
export function rollBackRun(stores: InstallStores, run: RunRecord): string[] {
  const problems: string[] = [];
  const dirs = [...new Set(run.files.map((f) => f.dir))];
  for (const dir of dirs) {
    try {
      assertRootControlledDir(dir);
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    for (const file of run.files.filter((f) => f.dir === dir)) restoreFile(file, problems);
    try {
      fsyncDir(dir);
    } catch (e) {
      problems.push(`${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (problems.length > 0) {
    const what = `the previous files of ${run.cert} (run ${run.runId})`;
    throw new RpcError(PrivdErrorCode.ROLLBACK_FAILED, `cannot restore ${what}: ${problems.join('; ')}`);
  }
  for (const { version, suffix } of Object.values(run.versions)) stores.lineage.dropVersion(run.cert, suffix, version);
  stores.journal.remove(run);
  rmSync(join(stores.backupRoot, run.runId), { recursive: true, force: true });
  return dirs;
}

function restoreFile(file: JournalFile, problems: string[]): void {
  try {
    rmSync(file.temp, { force: true });
    if (file.backup === null) rmSync(file.path, { force: true });
    // No backup file yet means the run died before backing it up, so before any rename: the
    // final file is still the old one.
    else if (existsSync(file.backup.path)) {
      writeFileAtomic(file.path, readFileSync(file.backup.path), file.backup, file.temp);
    }
  } catch (e) {
    problems.push(`${file.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function commitRun(stores: InstallStores, run: RunRecord): void {
  stores.journal.setState(run, 'committing');
  crashPoint('committing');
  finishCommit(stores, run);
}

/** The part of a commit that repair redoes after a crash: idempotent. */
export function finishCommit(stores: InstallStores, run: RunRecord): void {
  for (const { version, suffix } of Object.values(run.versions)) stores.lineage.pointLiveAt(run.cert, suffix, version);
  stores.journal.remove(run);
  rmSync(join(stores.backupRoot, run.runId), { recursive: true, force: true });
}
