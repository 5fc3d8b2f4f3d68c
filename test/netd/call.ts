// A one-shot netd client for tests that call from another uid: prints one JSON line with this
// process's pid and the answer (result, or error code and message).
import { callOnce } from '../../proto/client.ts';
import { RpcError } from '../../proto/errors.ts';
import { netdApi } from '../../netd/api.ts';

const [socketPath, method, params] = process.argv.slice(2);
try {
  const result = await callOnce(netdApi, socketPath!, method as 'lease.list', JSON.parse(params ?? '{}'), { timeoutMs: 60_000 });
  console.log(JSON.stringify({ pid: process.pid, ok: true, result }));
} catch (e) {
  const err = e instanceof RpcError ? e : new RpcError('E_INTERNAL', String(e));
  console.log(JSON.stringify({ pid: process.pid, ok: false, code: err.code, message: err.message }));
}
