// deployd's only way out: one RPC call at a time to keyd, netd, acmed and privd, at the sockets
// the config names. A connection per call: the daemons may exit when idle (socket activation),
// and a daemon that was restarted after a crash is simply reached again at the next call.
import type { Config } from '../config/schema.ts';
import type { Api, DaemonName, MethodTable, ParamsIn, ResultOut } from '../proto/api.ts';
import { callOnce } from '../proto/client.ts';
import { RpcError } from '../proto/errors.ts';
import { socketPathOf } from '../runtime/daemon.ts';
import type { WireError } from './api.ts';

export type Call = <M extends MethodTable, K extends keyof M & string>(api: Api<M>, method: K, params: ParamsIn<M[K]>) => Promise<ResultOut<M[K]>>;

export function callerFor(config: Config): Call {
  return (api, method, params) => callOnce(api, socketPathOf(config, api.daemon as DaemonName), method, params);
}

/** An error as status and hooks report it; a peer's RpcError keeps its code and message. */
export function toWireError(e: unknown): WireError {
  if (e instanceof RpcError) return { code: e.code, message: e.message.slice(0, 4096) };
  return { code: 'E_INTERNAL', message: (e instanceof Error ? e.message : String(e)).slice(0, 4096) };
}
