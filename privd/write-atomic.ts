// The one way privd writes a file: a new temp file in the same directory (O_EXCL, so never an
// existing file or a planted symlink; 0600 from creation, so no one reads it half-written), the
// bytes, owner and mode set through the open descriptor, fsync, then rename over the final name
// and fsync the directory. A reader sees the old file or the new one, never a mix.
import { closeSync, constants, fchmodSync, fchownSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface Ownership {
  uid: number;
  gid: number;
  mode: number;
}

/** The temp name beside finalPath for a run (hidden, so globbing services ignore it). */
export function tempPathFor(finalPath: string, runId: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.certsep-${runId}.tmp`);
}

export function stageFile(tempPath: string, data: string | Buffer, own: Ownership): void {
  const fd = openSync(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  let written = false;
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    fchownSync(fd, own.uid, own.gid);
    fchmodSync(fd, own.mode);
    fsyncSync(fd);
    written = true;
  } finally {
    closeSync(fd);
    if (!written) rmSync(tempPath, { force: true });
  }
}

export function renameIntoPlace(tempPath: string, finalPath: string): void {
  renameSync(tempPath, finalPath);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** stageFile + rename + directory fsync, for a single file. */
export function writeFileAtomic(finalPath: string, data: string | Buffer, own: Ownership, tempPath: string): void {
  stageFile(tempPath, data, own);
  renameIntoPlace(tempPath, finalPath);
  fsyncDir(dirname(finalPath));
}

/** For privd's own files (journal, lineage), whose temp name is fixed: a temp left by a crash is stale. */
export function writePrivateFileAtomic(finalPath: string, data: string | Buffer, mode = 0o600): void {
  const temp = `${finalPath}.tmp`;
  rmSync(temp, { force: true });
  writeFileAtomic(finalPath, data, { uid: 0, gid: 0, mode }, temp);
}
