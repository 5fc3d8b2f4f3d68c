// Calls a certsep daemon from another uid (run through execAs): node --import tsx test/harness/raw-call-cli.ts SOCKET METHOD JSON
// Prints {"pid": <this process>, "answer": <the response>} so a test can find the call in the audit log.
import { rawCall } from './raw-call.ts';

const [socketPath, method, json] = process.argv.slice(2);
if (socketPath === undefined || method === undefined || json === undefined) {
  process.stderr.write('usage: raw-call-cli.ts SOCKET METHOD JSON\n');
  process.exit(64);
}
const answer = await rawCall(socketPath, method, JSON.parse(json));
process.stdout.write(`${JSON.stringify({ pid: process.pid, answer })}\n`);
