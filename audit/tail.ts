// Finding where a log's chain left off without reading the whole file: scan backwards from the
// end, notice a torn last line (a crash or full disk mid-write), and find the last line that is a
// record even when lines that are not (torn writes ended by earlier starts) come after it.
import { readSync } from 'node:fs';
import { MAX_LINE_BYTES } from './lines.ts';

const CHUNK_BYTES = 64 * 1024;
/** How many complete lines back a start looks for the last record before it gives up. */
const MAX_LINES_BACK = 64;

/** Bytes after the last '\n' (empty when the file ends with a newline), and where they start. */
export function readTornLine(fd: number, size: number): { tornLine: Buffer; start: number } {
  const start = lastNewlineBefore(fd, size) + 1;
  return { tornLine: readRange(fd, start, size), start };
}

/**
 * The last complete line (before `end`, which follows a '\n') that `accept` takes, with the
 * newest complete line whatever it is; null when there is no such line within MAX_LINES_BACK.
 */
export function findLastLine(
  fd: number, end: number, accept: (line: Buffer) => boolean,
): { found: Buffer | null; newest: Buffer | null } {
  let newest: Buffer | null = null;
  let lineEnd = end - 1; // the '\n' that ends the line
  for (let n = 0; n < MAX_LINES_BACK && lineEnd >= 0; n++) {
    const start = lastNewlineBefore(fd, lineEnd) + 1;
    const line = readRange(fd, start, lineEnd);
    newest ??= line;
    if (accept(line)) return { found: line, newest };
    lineEnd = start - 1;
  }
  return { found: null, newest };
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
  const bytes = Buffer.alloc(Math.max(0, end - start));
  let done = 0;
  while (done < bytes.length) {
    const n = readSync(fd, bytes, done, bytes.length - done, start + done);
    if (n === 0) break;
    done += n;
  }
  return bytes.subarray(0, done);
}
