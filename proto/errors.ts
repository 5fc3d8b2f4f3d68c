// Stable error codes: they cross the wire and appear in the audit log, so sysadmins and scripts
// can match on them. A daemon may add codes of its own; they must keep the E_ shape.
export const ErrorCode = {
  /** A request or response did not match the schema (or carried a forbidden key). */
  SCHEMA: 'E_SCHEMA',
  /** The connecting process's uid may not call this method. */
  PEER: 'E_PEER',
  /** A frame's length prefix exceeds the limit. */
  TOO_LARGE: 'E_TOO_LARGE',
  /** The bytes on the wire are not a frame of UTF-8 JSON. */
  FRAME: 'E_FRAME',
  UNKNOWN_METHOD: 'E_UNKNOWN_METHOD',
  TIMEOUT: 'E_TIMEOUT',
  /** The connection closed before an answer arrived. */
  CLOSED: 'E_CLOSED',
  /** The daemon could not be reached at all. */
  UNAVAILABLE: 'E_UNAVAILABLE',
  /** This peer uid holds as many connections as it may (or the daemon as many as it takes). */
  TOO_MANY_CONNECTIONS: 'E_TOO_MANY_CONNECTIONS',
  /** The audit log cannot be written (a full disk): privileged requests wait until it can. */
  AUDIT_UNAVAILABLE: 'E_AUDIT_UNAVAILABLE',
  /** The server is shutting down and takes no new requests. */
  SHUTTING_DOWN: 'E_SHUTTING_DOWN',
  INTERNAL: 'E_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode] | `E_${string}`;

export const ERROR_CODE_PATTERN = /^E_[A-Z0-9_]{1,40}$/;

/** An error that is meant to reach the caller as `{code, message}`. */
export class RpcError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RpcError';
    this.code = code;
  }

  toWire(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isRpcError(e: unknown): e is RpcError {
  return e instanceof RpcError;
}

/** Turns anything thrown into a wire error; unexpected errors keep their text out of the reply. */
export function toRpcError(e: unknown): RpcError {
  if (e instanceof RpcError) return e;
  return new RpcError(ErrorCode.INTERNAL, 'internal error (see the daemon log)', { cause: e });
}
