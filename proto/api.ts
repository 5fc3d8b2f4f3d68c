// How a daemon declares its API: for each method, the params and result schemas (used by both
// ends) and which roles may call it. A daemon's api.ts is its pledge(2): the whole list of what
// it will do, and for whom.
import type { z } from 'zod';

export type DaemonName = 'privd' | 'keyd' | 'acmed' | 'netd' | 'deployd';
/** Daemons of the suite, or a test fixture's name. */
export type ServiceName = DaemonName | 'remote' | `test-${string}`;

/**
 * Who may call. Roles map to uids through the config's `users:` section at run time:
 * root is uid 0 (privd and certsepctl run as root), admin is root plus configured admins, remote
 * is the user whose ssh forced command is `certsepctl remote-serve` (hosts with the remote role).
 */
export type Role = 'root' | 'admin' | 'keyd' | 'acmed' | 'netd' | 'deployd' | 'remote';

export interface MethodSpec<P extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType> {
  readonly params: P;
  readonly result: R;
  readonly callers: readonly Role[];
  /** Privileged actions are audited when they succeed too; refusals are always audited. */
  readonly privileged?: boolean;
  /** Overrides the server's request timeout (e.g. a slow ACME order). */
  readonly timeoutMs?: number;
}

export type MethodTable = Record<string, MethodSpec>;

export interface Api<M extends MethodTable = MethodTable> {
  readonly daemon: ServiceName;
  readonly methods: M;
}

export function defineApi<const M extends MethodTable>(daemon: ServiceName, methods: M): Api<M> {
  return { daemon, methods };
}

export type MethodsOf<A extends Api> = A['methods'];
export type ParamsIn<S extends MethodSpec> = z.input<S['params']>;
export type ParamsOut<S extends MethodSpec> = z.output<S['params']>;
export type ResultIn<S extends MethodSpec> = z.input<S['result']>;
export type ResultOut<S extends MethodSpec> = z.output<S['result']>;

export interface PeerCredentials {
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
}

export interface CallContext {
  readonly peer: PeerCredentials;
  /** Aborted when the request times out or the server shuts down. */
  readonly signal: AbortSignal;
}

export type Handlers<M extends MethodTable> = {
  readonly [K in keyof M]: (params: ParamsOut<M[K]>, ctx: CallContext) => Promise<ResultIn<M[K]>>;
};
