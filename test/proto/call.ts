// A one-shot client for tests that must call from another uid: prints one JSON line with this
// process's pid and either the result or the error code and message.
import { callOnce } from '../../proto/client.ts';
import { RpcError } from '../../proto/errors.ts';
import { fixtureApi } from './fixture-api.ts';

const [socketPath, method, params] = process.argv.slice(2);
try {
  const result = await callOnce(fixtureApi, socketPath!, method as 'echo', JSON.parse(params ?? '{}'), { timeoutMs: 20_000 });
  console.log(JSON.stringify({ pid: process.pid, ok: true, result }));
} catch (e) {
  const err = e instanceof RpcError ? e : new RpcError('E_INTERNAL', String(e));
  console.log(JSON.stringify({ pid: process.pid, ok: false, code: err.code, message: err.message }));
}
