// The shape of one audit line, shared by the writer, the verifier and the reader. Each line
// carries the sha256 of the line before it, so editing, deleting or reordering a record breaks
// the chain at the next line.
import { createHash } from 'node:crypto';
import { z } from 'zod';

export const AUDIT_FILE_SUFFIX = '.audit.jsonl';

/** The prev of a log's first record: there is no line before it. */
export const GENESIS_HASH = '0'.repeat(64);

export function auditFileName(daemon: string): string {
  return `${daemon}${AUDIT_FILE_SUFFIX}`;
}

/** sha256 hex of a line's exact bytes, without its newline. */
export function hashLine(line: Uint8Array | string): string {
  return createHash('sha256').update(line).digest('hex');
}

export const AuditOutcome = z.enum(['ok', 'refused', 'error']);

// Loose: a newer writer may add fields; readers keep them and the chain covers them anyway.
export const AuditRecord = z.looseObject({
  seq: z.number().int().positive(),
  time: z.string(),
  daemon: z.string(),
  peer: z.strictObject({ uid: z.number().int(), gid: z.number().int(), pid: z.number().int() }).nullable(),
  method: z.string(),
  params: z.unknown().optional(),
  outcome: AuditOutcome,
  code: z.string().optional(),
  message: z.string().optional(),
  durationMs: z.number().optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
  prev: z.string().regex(/^[0-9a-f]{64}$/),
});
export type AuditRecord = z.infer<typeof AuditRecord>;
