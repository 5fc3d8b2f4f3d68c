// A peer that pipelines requests and does not read the answers, for the backpressure test; run as
// another uid: node --import tsx test/proto/pipelining-client.ts SOCKET COUNT TEXT_BYTES
// Sends COUNT echo requests of TEXT_BYTES each without waiting (its own buffers hold what the
// socket does not take), prints "sent", reads nothing until a line arrives on stdin, then reads
// every answer and prints "answered N".
import { connect } from 'node:net';
import { encodeFrame, FrameReader } from '../../proto/framing.ts';

const [socketPath, count, textBytes] = process.argv.slice(2);
const n = Number(count);
const text = 'x'.repeat(Number(textBytes));
const socket = connect({ path: socketPath! });
socket.pause();
socket.once('connect', () => {
  for (let id = 1; id <= n; id++) socket.write(encodeFrame({ v: 1, id, method: 'echo', params: { text } }));
  process.stdout.write('sent\n');
});
process.stdin.once('data', () => {
  const reader = new FrameReader();
  let answered = 0;
  socket.on('data', (chunk: Buffer) => {
    answered += reader.push(chunk).length;
    if (answered === n) {
      process.stdout.write(`answered ${answered}\n`);
      socket.destroy();
      process.exit(0);
    }
  });
  socket.resume();
});
socket.once('error', (e) => {
  process.stdout.write(`error ${e.message}\n`);
  process.exit(1);
});
