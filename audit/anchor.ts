// A hash chain proves the order of what is in a log, not that nothing was cut or rewritten by the
// one who writes it: a compromised daemon owns its own audit file. So every record's seq and
// hash also goes where that daemon cannot reach afterwards, and `certsepctl audit verify`
// checks the file against it:
//  - under certsep-supervisor: a pipe (fd CERTSEP_AUDIT_ANCHOR_FD) whose other end the root
//    supervisor appends to <auditDir>/anchors/<daemon>.anchors.jsonl, naming the daemon by the
//    pipe it came from;
//  - under systemd (journald's socket exists): one journal entry per record, sent with the
//    native protocol, which journald stamps with the sender's unit and uid (trusted fields).
// A daemon can still add anchors, never remove or change those already sent: history up to a
// compromise stays provable.
import { existsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sendNotify } from '../proto/peercred.ts';

export interface AuditAnchor {
  /** Where the anchors go, for messages ("the supervisor", "the journal"). */
  readonly where: string;
  /** Anchors one record that is on disk. Best effort: a record is never held back for it. */
  anchor(seq: number, hash: string): void;
}

export const ANCHOR_FD_VARIABLE = 'CERTSEP_AUDIT_ANCHOR_FD';
/** Under <auditDir>: root's directory of the supervisor's anchor files. */
export const ANCHORS_DIR = 'anchors';
export const JOURNAL_SOCKET = '/run/systemd/journal/socket';
/** SYSLOG_IDENTIFIER of the journal's anchor entries, which verify looks for. */
export const JOURNAL_IDENTIFIER = 'certsep-audit';

export function anchorsFileOf(auditDir: string, daemon: string): string {
  return join(auditDir, ANCHORS_DIR, `${daemon}.anchors.jsonl`);
}

/** One line of the pipe, "<seq> <sha256>". */
export const ANCHOR_LINE = /^([1-9][0-9]{0,15}) ([0-9a-f]{64})$/;

export function anchorFromEnvironment(daemon: string, env: NodeJS.ProcessEnv = process.env): AuditAnchor | null {
  const fd = env[ANCHOR_FD_VARIABLE];
  if (fd !== undefined && /^[0-9]{1,4}$/.test(fd)) return new ReportingAnchor(daemon, pipeAnchor(Number(fd)));
  if (existsSync(JOURNAL_SOCKET)) return new ReportingAnchor(daemon, journalAnchor(daemon));
  return null;
}

function pipeAnchor(fd: number): AuditAnchor {
  return {
    where: 'the supervisor',
    anchor: (seq, hash) => {
      const line = Buffer.from(`${seq} ${hash}\n`);
      // Far below PIPE_BUF, so the write is atomic: whole lines or nothing.
      if (writeSync(fd, line) !== line.length) throw new Error('short write to the anchor pipe');
    },
  };
}

function journalAnchor(daemon: string): AuditAnchor {
  return {
    where: 'the journal',
    anchor: (seq, hash) => sendNotify(JOURNAL_SOCKET, [
      `MESSAGE=certsep audit anchor: ${daemon} seq ${seq} sha256 ${hash}`,
      `SYSLOG_IDENTIFIER=${JOURNAL_IDENTIFIER}`,
      'PRIORITY=6',
      `CERTSEP_AUDIT_DAEMON=${daemon}`,
      `CERTSEP_AUDIT_SEQ=${seq}`,
      `CERTSEP_AUDIT_SHA256=${hash}`,
    ].map((field) => `${field}\n`).join('')), // journald drops a field whose line does not end in \n
  };
}

/** Says once on stderr (the daemon's log) that anchoring fails, then keeps trying. */
class ReportingAnchor implements AuditAnchor {
  private reported = false;

  constructor(private readonly daemon: string, private readonly inner: AuditAnchor) {}

  get where(): string {
    return this.inner.where;
  }

  anchor(seq: number, hash: string): void {
    try {
      this.inner.anchor(seq, hash);
      this.reported = false;
    } catch (err) {
      if (this.reported) return;
      this.reported = true;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      process.stderr.write(`certsep-${this.daemon}: cannot anchor audit record ${seq} in ${this.inner.where}: ` +
        `${code}; certsepctl audit verify shows the records it misses as not anchored\n`);
    }
  }
}
