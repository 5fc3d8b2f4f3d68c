// Replacing the files of every target of one certificate, crash safe per target. Order:
//   plan      check every target dir and existing file, resolve owners — refuse before any write
//   journal   record every final path, its temp and its backup path (repair can undo from here)
//   archive   write the lineage version (not live yet)
//   stage     write every new file as a temp beside its final name
//   back up   copy every old file to <stateDir>/backups/<runId>/ (root 0700)
//   rename    temp over final, target by target; fsync each directory
//   installed journal says so; the run waits for check and reload
// Any error on the way rolls the whole run back (roll-back-run.ts) before it is reported.
import { existsSync, lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CertificateConfig } from '../config/schema.ts';
import { resolveGid, resolveUid } from '../config/users.ts';
import type { KeyType } from '../keyd/api.ts';
import { RpcError } from '../proto/errors.ts';
import { NotASmallFileError, readSmallRegularFile } from '../runtime/read-small-file.ts';
import { MAX_TARGET_FILE_BYTES, PrivdErrorCode } from './api.ts';
import { type CertificateMaterial, contentOf, fileName, keyTypeSuffix, modeOf } from './certificate-files.ts';
import { crashPoint } from './crash-hook.ts';
import type { Journal, RunRecord } from './journal.ts';
import type { Lineage } from './lineage.ts';
import { assertRootControlledDir } from './target-dir.ts';
import { fsyncDir, type Ownership, renameIntoPlace, stageFile, tempPathFor, writePrivateFileAtomic } from './write-atomic.ts';

export interface InstallStores {
  journal: Journal;
  lineage: Lineage;
  /** <stateDir>/backups: one directory per run. */
  backupRoot: string;
}

interface PlannedFile {
  dir: string;
  path: string;
  data: string;
  own: Ownership;
  old: Ownership | null;
}

export function planTargetFiles(cert: CertificateConfig, keyType: KeyType, material: CertificateMaterial): PlannedFile[] {
  const suffix = keyTypeSuffix(cert, keyType);
  return cert.targets.flatMap((target) => {
    assertRootControlledDir(target.dir);
    let uid: number;
    let gid: number;
    try {
      uid = resolveUid(target.owner);
      gid = resolveGid(target.group);
    } catch (e) {
      throw new RpcError(PrivdErrorCode.TARGET, `target directory ${target.dir}: ${(e as Error).message}`);
    }
    return target.files.map((kind): PlannedFile => {
      const path = join(target.dir, fileName(kind, suffix));
      return { dir: target.dir, path, data: contentOf(kind, material), own: { uid, gid, mode: modeOf(kind, target.mode) }, old: existingFile(path) };
    });
  });
}

function existingFile(path: string): Ownership | null {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  // A symlink or directory where a certificate file belongs is a misconfiguration or an attack.
  if (!st.isFile()) throw new RpcError(PrivdErrorCode.TARGET, `${path} exists and is not a regular file; remove it`);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

/** Adds this install's files to the run (a file installed earlier in the run keeps its first backup). */
export function recordInJournal(stores: InstallStores, run: RunRecord, planned: PlannedFile[]): void {
  run.state = 'installing';
  planned.forEach((file) => {
    if (run.files.some((f) => f.path === file.path)) return;
    const backup = file.old === null ? null : { path: join(stores.backupRoot, run.runId, String(run.files.length)), ...file.old };
    run.files.push({ dir: file.dir, path: file.path, temp: tempPathFor(file.path, run.runId), backup });
  });
  stores.journal.save(run);
  crashPoint('journal-written');
}

export function replaceTargetFiles(stores: InstallStores, run: RunRecord, planned: PlannedFile[]): void {
  const entryOf = (path: string) => run.files.find((f) => f.path === path)!;
  for (const file of planned) stageFile(entryOf(file.path).temp, file.data, file.own);
  crashPoint('staged');

  const backupDir = join(stores.backupRoot, run.runId);
  mkdirSync(backupDir, { recursive: true, mode: 0o700 });
  for (const file of planned) {
    const backup = entryOf(file.path).backup;
    if (backup !== null && !existsSync(backup.path)) writePrivateFileAtomic(backup.path, readRegularFile(file.path));
  }
  fsyncDir(backupDir);
  crashPoint('backed-up');

  const dirs = [...new Set(planned.map((f) => f.dir))];
  const crashDir = dirs[Math.min(1, dirs.length - 1)];
  for (const dir of dirs) {
    planned.filter((f) => f.dir === dir).forEach((file, i) => {
      renameIntoPlace(entryOf(file.path).temp, file.path);
      if (dir === crashDir && i === 0) crashPoint('mid-target');
    });
    fsyncDir(dir);
  }
  crashPoint('renamed');
  stores.journal.setState(run, 'installed');
}

function readRegularFile(path: string): Buffer {
  try {
    return readSmallRegularFile(path, MAX_TARGET_FILE_BYTES);
  } catch (e) {
    if (e instanceof NotASmallFileError) throw new RpcError(PrivdErrorCode.TARGET, `${e.message}; remove it`);
    throw e;
  }
}
