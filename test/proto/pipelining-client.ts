// A peer that pipelines requests, run as another uid by the backpressure and refusal-flood tests:
//   node --import tsx test/proto/pipelining-client.ts SOCKET COUNT METHOD PARAMS_JSON hold|read
// Sends COUNT requests without waiting for answers (its own buffers hold what the socket does not
// take) and prints "sent". With "hold" it reads nothing until a line arrives on stdin; with
// "read" it reads at once. Once every answer is in it prints "answered N {code: count}".
import { connect } from 'node:net';
import { decodeFrameBody, encodeFrame, FrameReader } from '../../proto/framing.ts';

const [socketPath, count, method, params, mode] = process.argv.slice(2);
const n = Number(count);
const request = (id: number) => encodeFrame({ v: 1, id, method, params: JSON.parse(params!) });
const socket = connect({ path: socketPath! });
socket.pause();
socket.once('connect', () => {
  for (let id = 1; id <= n; id++) socket.write(request(id));
  process.stdout.write('sent\n');
});
const readAnswers = () => {
  const reader = new FrameReader();
  const codes: Record<string, number> = {};
  let answered = 0;
  socket.on('data', (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) {
      const answer = decodeFrameBody(frame) as { ok: boolean; error?: { code: string } };
      const code = answer.ok ? 'ok' : answer.error!.code;
      codes[code] = (codes[code] ?? 0) + 1;
      answered += 1;
    }
    if (answered === n) {
      process.stdout.write(`answered ${answered} ${JSON.stringify(codes)}\n`);
      socket.destroy();
      process.exit(0);
    }
  });
  socket.resume();
};
if (mode === 'read') readAnswers();
else process.stdin.once('data', readAnswers);
socket.once('error', (e) => {
  process.stdout.write(`error ${e.message}\n`);
  process.exit(1);
});
