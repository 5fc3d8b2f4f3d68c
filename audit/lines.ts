// Line-by-line reading of audit files as raw bytes: the chain hashes exact bytes, so lines are
// never decoded and re-encoded before hashing. Files are read in chunks, so a years-long log
// does not have to fit in memory, and a hostile overlong line cannot make the reader buffer it.
import { closeSync, openSync, readSync } from 'node:fs';

const CHUNK_BYTES = 1024 * 1024;

/** Far above any record the writer produces (params are summarized, messages bounded). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;

export interface LineInfo {
  /** 1-based. */
  number: number;
  /** False for a last line without its '\n' (a torn write). */
  complete: boolean;
  /** True when the line exceeded MAX_LINE_BYTES; its bytes are then not passed. */
  overlong: boolean;
}

/** Calls onLine for every line of the file, without the '\n'; stops early when it returns false. */
export function forEachLine(path: string, onLine: (line: Buffer, info: LineInfo) => boolean | void): void {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(CHUNK_BYTES);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let overlong = false;
    let number = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, CHUNK_BYTES, null);
      if (n === 0) break;
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, start); nl !== -1 && nl < n; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl);
        const line = overlong ? Buffer.alloc(0) : Buffer.concat([...pending, piece]);
        const tooLong = overlong || line.length > MAX_LINE_BYTES;
        if (onLine(tooLong ? Buffer.alloc(0) : line, { number: ++number, complete: true, overlong: tooLong }) === false) return;
        pending = [];
        pendingBytes = 0;
        overlong = false;
        start = nl + 1;
      }
      if (!overlong && start < n) {
        pending.push(Buffer.from(chunk.subarray(start, n)));
        pendingBytes += n - start;
        if (pendingBytes > MAX_LINE_BYTES) {
          overlong = true;
          pending = [];
          pendingBytes = 0;
        }
      }
    }
    if (overlong || pendingBytes > 0) {
      onLine(overlong ? Buffer.alloc(0) : Buffer.concat(pending), { number: ++number, complete: false, overlong });
    }
  } finally {
    closeSync(fd);
  }
}
