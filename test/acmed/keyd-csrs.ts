// Asks keyd for CSRs as deployd would (run through execAs as deployd's uid), several in one process:
//   node --import tsx test/acmed/keyd-csrs.ts SOCKET '[{"cert":"a","keyType":"ec-p256"},…]'
// Prints the answers in the same order: [{"csrPem": …, "keyId": …, "newKey": …}, …]; exits 1 on a refusal.
import { keydApi, type KeyType } from '../../keyd/api.ts';
import { RpcClient } from '../../proto/client.ts';

const [socketPath, json] = process.argv.slice(2);
if (socketPath === undefined || json === undefined) {
  process.stderr.write('usage: keyd-csrs.ts SOCKET JSON\n');
  process.exit(64);
}
const client = await RpcClient.connect(keydApi, socketPath, { timeoutMs: 120_000 });
const requests = JSON.parse(json) as { cert: string; keyType: KeyType }[];
const answers = await Promise.all(requests.map((params) => client.call('csr.create', params)));
client.close();
process.stdout.write(`${JSON.stringify(answers)}\n`);
