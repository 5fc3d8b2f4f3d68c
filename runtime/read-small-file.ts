// Reading a file that someone else may have put in place of the one expected (a target file a
// user could reach, a state file of a compromised daemon) without letting it be anything but a
// small regular file. O_NOFOLLOW: a symlink is refused, never followed. O_NONBLOCK: opening a
// FIFO returns at once instead of blocking the daemon until a writer appears. fstat on the open
// descriptor: what is checked is what is read. The size cap holds even for a file still growing.
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';

/** The path is there but is not a small regular file; `reason` says what it is instead. */
export class NotASmallFileError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path} ${reason}`);
  }
}

const CHUNK_BYTES = 64 * 1024;

/** The file's bytes; ENOENT and other errno errors are thrown as they are, for the caller to judge. */
export function readSmallRegularFile(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new NotASmallFileError(path, 'is a symbolic link');
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotASmallFileError(path, `is not a regular file (${kindOf(st)})`);
    if (st.size > maxBytes) {
      throw new NotASmallFileError(path, `is ${st.size} bytes, more than the ${maxBytes} allowed`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(CHUNK_BYTES);
      const n = readSync(fd, chunk, 0, CHUNK_BYTES, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) {
        throw new NotASmallFileError(path, `grew past the ${maxBytes} bytes allowed while being read`);
      }
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}
