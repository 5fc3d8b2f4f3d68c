// Sends several requests on ONE connection at once and prints each answer as it arrives, for tests
// that queue work in a daemon from another uid (run through spawnAs):
//   node --import tsx test/privd/pipelined-calls.ts SOCKET '[["method", {params}], ...]'
// Each output line is {"id": <index in the list>, ...answer}. The daemon dispatches a connection's
// frames in order, so once the answer to a later, unqueued request (e.g. status) is printed,
// every request before it has reached its handler.
import { connect } from 'node:net';
import { decodeFrameBody, encodeFrame, FrameReader } from '../../proto/framing.ts';

const [socketPath, json] = process.argv.slice(2);
if (socketPath === undefined || json === undefined) {
  process.stderr.write('usage: pipelined-calls.ts SOCKET JSON\n');
  process.exit(64);
}
const requests = JSON.parse(json) as [string, unknown][];
const socket = connect({ path: socketPath });
const reader = new FrameReader();
let answered = 0;
socket.once('connect', () => {
  socket.write(Buffer.concat(requests.map(([method, params], id) => encodeFrame({ v: 1, id, method, params }))));
});
socket.on('data', (chunk: Buffer) => {
  for (const frame of reader.push(chunk)) {
    process.stdout.write(`${JSON.stringify(decodeFrameBody(frame))}\n`);
    if (++answered === requests.length) socket.end();
  }
});
socket.once('error', (e) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
