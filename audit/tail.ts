// Finding where a log's chain left off without reading the whole file: scan backwards from the
// end for the last line, and notice a torn last line (a crash or full disk mid-write).
import { readSync } from 'node:fs';
import { MAX_LINE_BYTES } from './lines.ts';

const CHUNK_BYTES = 64 * 1024;

export interface LogTail {
  /** Bytes of the last line that ends in '\n', or null when there is none. */
  lastCompleteLine: Buffer | null;
  /** Bytes after the last '\n' (empty when the file ends with a newline). */
  tornLine: Buffer;
}

export function readLogTail(fd: number, size: number): LogTail {
  const lastNewline = lastNewlineBefore(fd, size);
  const tornLine = readRange(fd, lastNewline + 1, size);
  if (lastNewline === -1) return { lastCompleteLine: null, tornLine };
  const start = lastNewlineBefore(fd, lastNewline) + 1;
  return { lastCompleteLine: readRange(fd, start, lastNewline), tornLine };
}

/** Offset of the last '\n' strictly before `end`, or -1. */
function lastNewlineBefore(fd: number, end: number): number {
  const chunk = Buffer.alloc(CHUNK_BYTES);
  for (let chunkEnd = end; chunkEnd > 0 && end - chunkEnd <= MAX_LINE_BYTES; ) {
    const chunkStart = Math.max(0, chunkEnd - CHUNK_BYTES);
    const n = readSync(fd, chunk, 0, chunkEnd - chunkStart, chunkStart);
    const at = chunk.subarray(0, n).lastIndexOf(0x0a);
    if (at !== -1) return chunkStart + at;
    chunkEnd = chunkStart;
  }
  if (end > MAX_LINE_BYTES) throw new RangeError(`no line break in the last ${MAX_LINE_BYTES} bytes`);
  return -1;
}

function readRange(fd: number, start: number, end: number): Buffer {
  const bytes = Buffer.alloc(end - start);
  let done = 0;
  while (done < bytes.length) {
    const n = readSync(fd, bytes, done, bytes.length - done, start + done);
    if (n === 0) break;
    done += n;
  }
  return bytes.subarray(0, done);
}
