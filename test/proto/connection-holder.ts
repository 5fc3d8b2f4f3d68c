// A local user holding connections open, for the connection-limit test; run as another uid:
//   node --import tsx test/proto/connection-holder.ts SOCKET COUNT
// Opens COUNT connections one after another and asks on each for a method no daemon has: a
// connection the daemon serves answers E_UNKNOWN_METHOD, one it turned away closes (with or
// without an error first). Prints "held H turnedAway T codes {...}" and keeps every held
// connection open until stdin closes.
import { connect, type Socket } from 'node:net';
import { decodeFrameBody, encodeFrame, FrameReader } from '../../proto/framing.ts';

const [socketPath, count] = process.argv.slice(2);

function probe(): Promise<{ socket: Socket; code: string; open: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ path: socketPath! });
    const reader = new FrameReader();
    let code = 'closed';
    socket.once('connect', () => socket.write(encodeFrame({ v: 1, id: 1, method: 'test.holder', params: {} })));
    socket.on('data', (chunk: Buffer) => {
      const [frame] = reader.push(chunk);
      if (frame === undefined) return;
      code = (decodeFrameBody(frame) as { error: { code: string } }).error.code;
      if (code === 'E_UNKNOWN_METHOD') resolve({ socket, code, open: true });
    });
    socket.once('close', () => resolve({ socket, code, open: false }));
    socket.once('error', () => undefined);
  });
}

const held: Socket[] = [];
const codes: Record<string, number> = {};
let turnedAway = 0;
for (let i = 0; i < Number(count); i++) {
  const { socket, code, open } = await probe();
  if (open) held.push(socket);
  else turnedAway += 1;
  if (!open) codes[code] = (codes[code] ?? 0) + 1;
}
process.stdout.write(`held ${held.length} turnedAway ${turnedAway} codes ${JSON.stringify(codes)}\n`);
process.stdin.resume();
process.stdin.once('end', () => process.exit(0));
