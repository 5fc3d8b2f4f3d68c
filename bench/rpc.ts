// bench/rpc: latency and throughput of one schema-checked call over a unix socket, through the
// same RpcServer/RpcClient the daemons use (frame, envelope, peer check, params and result
// validation both ends). Prints figures; asserts nothing.
//   node --import tsx bench/rpc.ts [--calls N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { z } from 'zod';
import { defineApi } from '../proto/api.ts';
import { RpcClient } from '../proto/client.ts';
import { RpcServer } from '../proto/server.ts';

const benchApi = defineApi('test-bench', {
  'deploy.like': {
    // Shaped like a real request: a name, an enum, a 64-hex id and a ~3 KB PEM chain.
    params: z.strictObject({
      cert: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/),
      keyType: z.enum(['ec-p256', 'rsa-2048']),
      keyId: z.string().regex(/^[0-9a-f]{64}$/),
      chainPem: z.string().max(64 * 1024),
    }),
    result: z.strictObject({ changedTargets: z.array(z.string()), version: z.number().int() }),
    callers: ['root'],
  },
});

const { values } = parseArgs({ options: { calls: { type: 'string', default: '20000' } } });
const calls = Number(values.calls);
const dir = mkdtempSync(join(tmpdir(), 'certsep-bench-'));
const socketPath = join(dir, 'bench.sock');
const server = new RpcServer({
  api: benchApi,
  handlers: { 'deploy.like': async () => ({ changedTargets: ['/etc/nginx/certs/www'], version: 3 }) },
  uidsFor: (role) => (role === 'root' ? [process.getuid?.() ?? 0] : []),
  audit: { record: () => {}, writable: () => true, unwritableBecause: null },
  log: pino({ level: 'silent' }),
});
await server.listen({ path: socketPath });

const params = {
  cert: 'www',
  keyType: 'ec-p256' as const,
  keyId: 'a'.repeat(64),
  chainPem: `-----BEGIN CERTIFICATE-----\n${'QUJD'.repeat(700)}\n-----END CERTIFICATE-----\n`,
};

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(concurrency: number): Promise<string> {
  const client = await RpcClient.connect(benchApi, socketPath);
  for (let i = 0; i < 500; i++) await client.call('deploy.like', params); // warm-up
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < calls) {
        const t = performance.now();
        await client.call('deploy.like', params);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  client.close();
  latencies.sort((a, b) => a - b);
  return [
    `${String(concurrency).padStart(11)}`,
    `${String(calls).padStart(6)}`,
    `${percentile(latencies, 50).toFixed(3).padStart(8)}`,
    `${percentile(latencies, 99).toFixed(3).padStart(8)}`,
    `${Math.round(calls / seconds).toString().padStart(10)}`,
  ].join('  ');
}

console.log(`bench/rpc: schema-checked calls over a unix socket (node ${process.version}, ~${JSON.stringify(params).length} B request)`);
console.log('concurrency   calls  p50 (ms)  p99 (ms)  calls/s');
console.log(await measure(1));
console.log(await measure(16));
await server.close(100);
rmSync(dir, { recursive: true, force: true });
