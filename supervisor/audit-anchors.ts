// The supervisor's half of audit anchoring (audit/anchor.ts): each daemon writes "<seq> <sha256>"
// for every record it made durable into a pipe, and the supervisor, as root, appends them to
// <auditDir>/anchors/<daemon>.anchors.jsonl, where no daemon can write. The daemon is the one
// whose pipe it came from, never what a line says; a line that is not an anchor is dropped.
import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { ANCHOR_LINE, anchorsFileOf } from '../audit/anchor.ts';
import type { DaemonName } from '../proto/api.ts';
import type { Logger } from '../proto/log.ts';

export { ANCHORS_DIR } from '../audit/anchor.ts';

/** Far above "<16 digits> <64 hex>": a longer line is not an anchor and is not buffered. */
const MAX_LINE_BYTES = 128;

export class AnchorFile {
  private readonly fd: number;

  constructor(auditDir: string, private readonly daemon: DaemonName, private readonly log: Logger) {
    const path = anchorsFileOf(auditDir, daemon);
    // O_NOFOLLOW: root appends here; the directory is root's, but nothing is followed anyway.
    this.fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640);
    if (!fstatSync(this.fd).isFile()) throw new Error(`${path} is not a regular file`);
  }

  /** Appends the anchors that arrive on one run's pipe until it closes. */
  follow(pipe: Readable): void {
    let pending = '';
    let dropped = 0;
    pipe.setEncoding('latin1');
    pipe.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      if (pending.length > MAX_LINE_BYTES) {
        pending = '';
        dropped += 1;
      }
      for (const line of lines) if (!this.append(line)) dropped += 1;
    });
    pipe.once('close', () => {
      if (dropped === 0) return;
      this.log.warn({ daemon: this.daemon, dropped }, 'dropped lines from the audit anchor pipe that were not anchors');
    });
  }

  close(): void {
    closeSync(this.fd);
  }

  private append(line: string): boolean {
    const anchor = ANCHOR_LINE.exec(line);
    if (!anchor) return false;
    const record = JSON.stringify({ time: new Date().toISOString(), seq: Number(anchor[1]), sha256: anchor[2] });
    try {
      writeSync(this.fd, `${record}\n`);
    } catch (err) {
      this.log.error({ daemon: this.daemon, err }, 'cannot append to the audit anchor file');
    }
    return true;
  }
}
