// acmed's error codes, and how an ACME problem document (RFC 8555 section 6.7) becomes one.
// The caller (deployd) decides from the code alone whether to retry, when, and what to tell the
// sysadmin, so every CA failure lands in one of a few stable codes with the CA's detail kept.
import { RpcError, type ErrorCode } from '../proto/errors.ts';

export const AcmedError = {
  UNKNOWN_CERT: 'E_UNKNOWN_CERT',
  UNKNOWN_CA: 'E_UNKNOWN_CA',
  /** The CSR is unreadable, or its names or key type differ from the config. Nothing was ordered. */
  CSR: 'E_CSR',
  /** The CSR's key is not the one keyd holds now for that certificate and key type. Nothing was ordered. */
  CSR_NOT_KEYD: 'E_CSR_NOT_KEYD',
  /** The certificate given (renewal.info, replaces) is unreadable or lacks what ARI needs. */
  CERT: 'E_CERT',
  NO_STAGING: 'E_NO_STAGING',
  ACCOUNT: 'E_ACCOUNT',
  /** Setting up a challenge failed on our side (webroot not writable, hook failed, DNS update refused). */
  CHALLENGE: 'E_CHALLENGE',
  RATE_LIMITED: 'E_RATE_LIMITED',
  UNAUTHORIZED: 'E_UNAUTHORIZED',
  DNS: 'E_DNS',
  /** The CA could not be reached, or it could not reach the challenge. */
  CONNECTION: 'E_CONNECTION',
  CA: 'E_CA',
  /** The CA asked to validate an identifier the order did not name. No challenge was answered. */
  CA_IDENTIFIER: 'E_CA_IDENTIFIER',
} as const;

const ACME_ERROR = 'urn:ietf:params:acme:error:';

export interface Problem {
  type?: string;
  detail?: string;
  status?: number;
  subproblems?: Problem[];
}

/** A problem document the CA answered with, plus the Retry-After it sent (seconds), if any. */
export class AcmeProblem extends Error {
  constructor(readonly problem: Problem, readonly httpStatus: number, readonly retryAfterSeconds: number | null) {
    super(describeProblem(problem));
    this.name = 'AcmeProblem';
  }
}

export function describeProblem(problem: Problem): string {
  const type = problem.type?.startsWith(ACME_ERROR) ? problem.type.slice(ACME_ERROR.length) : (problem.type ?? 'error');
  const sub = (problem.subproblems ?? []).map((p) => `${describeProblem(p)}`).join('; ');
  return `${type}: ${problem.detail ?? '(no detail)'}${sub ? ` [${sub}]` : ''}`;
}

const BY_TYPE: Record<string, ErrorCode> = {
  rateLimited: AcmedError.RATE_LIMITED,
  unauthorized: AcmedError.UNAUTHORIZED,
  caa: AcmedError.UNAUTHORIZED,
  rejectedIdentifier: AcmedError.UNAUTHORIZED,
  dns: AcmedError.DNS,
  connection: AcmedError.CONNECTION,
  tls: AcmedError.CONNECTION,
  incorrectResponse: AcmedError.UNAUTHORIZED,
  externalAccountRequired: AcmedError.ACCOUNT,
  accountDoesNotExist: AcmedError.ACCOUNT,
};

/** The code for a problem: its own type, else the first subproblem's that has one. */
function codeOf(problem: Problem): ErrorCode {
  const own = problem.type?.startsWith(ACME_ERROR) ? BY_TYPE[problem.type.slice(ACME_ERROR.length)] : undefined;
  if (own) return own;
  for (const sub of problem.subproblems ?? []) {
    const code = codeOf(sub);
    if (code !== AcmedError.CA) return code;
  }
  return AcmedError.CA;
}

/** An RpcError for a problem; a rate limit says when to come back, as the CA told us. */
export function problemToRpcError(problem: Problem, context: string, retryAfterSeconds: number | null = null): RpcError {
  const code = codeOf(problem);
  const when = code === AcmedError.RATE_LIMITED
    ? ` (retry after ${retryAfterSeconds ?? 3600} seconds${retryAfterSeconds === null ? ', the CA sent no Retry-After' : ''})`
    : '';
  return new RpcError(code, `${context}: ${describeProblem(problem)}${when}`);
}

/** Any error from talking to the CA, as an RpcError with a stable code. */
export function toAcmedError(e: unknown, context: string): RpcError {
  if (e instanceof RpcError) return e;
  if (e instanceof AcmeProblem) return problemToRpcError(e.problem, context, e.retryAfterSeconds);
  const err = e as NodeJS.ErrnoException;
  if (err?.code && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ECONNABORTED|ERR_TLS|DEPTH_ZERO|UNABLE_TO|SELF_SIGNED|CERT_)/.test(err.code)) {
    return new RpcError(AcmedError.CONNECTION, `${context}: cannot reach the CA: ${err.code} ${err.message}`);
  }
  return new RpcError(AcmedError.CA, `${context}: ${err?.message ?? String(e)}`);
}
