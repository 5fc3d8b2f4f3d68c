// Audit failures are never swallowed: a daemon that cannot record what it did must not do it.

export type AuditErrorCode =
  | 'E_AUDIT_OPEN' // the log file cannot be opened or is not a regular file
  | 'E_AUDIT_WRITE' // a write or fsync failed (now or earlier on this handle)
  | 'E_AUDIT_CLOSED'; // record() after close()

export class AuditError extends Error {
  override readonly name = 'AuditError';
  readonly code: AuditErrorCode;

  constructor(code: AuditErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
