// Calls acmed from another uid (run through execAs): node --import tsx test/acmed/call.ts SOCKET METHOD JSON
// Prints {"ok": true, "result": …} or {"ok": false, "code": "E_…", "message": …}.
import { acmedApi } from '../../acmed/api.ts';
import { RpcClient } from '../../proto/client.ts';
import { RpcError } from '../../proto/errors.ts';

const [socketPath, method, json] = process.argv.slice(2);
if (socketPath === undefined || method === undefined || json === undefined) {
  process.stderr.write('usage: call.ts SOCKET METHOD JSON\n');
  process.exit(64);
}
try {
  const client = await RpcClient.connect(acmedApi, socketPath, { timeoutMs: 600_000 });
  const result = await client.call(method as keyof typeof acmedApi.methods, JSON.parse(json));
  process.stdout.write(`${JSON.stringify({ ok: true, result })}\n`);
  process.exit(0);
} catch (e) {
  const err = e instanceof RpcError ? e : new RpcError('E_INTERNAL', String(e));
  process.stdout.write(`${JSON.stringify({ ok: false, code: err.code, message: err.message })}\n`);
  process.exit(0);
}
