// A file appears whole or not at all, even across a crash or power loss: write a temp file in the
// same directory, fsync it, rename it over the name, fsync the directory so the rename is durable.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Temp files are ".<name>.<random>.tmp"; one left over means a crash happened mid-write. */
export const TEMP_FILE = /^\..+\.[0-9a-f]{16}\.tmp$/;

export function writeFileAtomically(dir: string, name: string, data: string, mode: number): void {
  const temp = join(dir, `.${name}.${randomBytes(8).toString('hex')}.tmp`);
  // O_EXCL|O_NOFOLLOW: never write through something that already sits at the temp name.
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(temp);
    throw e;
  }
  closeSync(fd);
  renameSync(temp, join(dir, name));
  fsyncDirectory(dir);
}

export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
