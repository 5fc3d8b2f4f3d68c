// One request to keyd as raw frames, without the typed client: the client would refuse to send
// the hostile params these tests need the SERVER to refuse.
import { connect } from 'node:net';
import { decodeFrameBody, encodeFrame, FrameReader } from '../../proto/framing.ts';

export type RawAnswer = { ok: true; result: Record<string, unknown> } | { ok: false; error: { code: string; message: string } };

export function rawCall(socketPath: string, method: string, params: unknown, timeoutMs = 120_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    const reader = new FrameReader();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`keyd did not answer ${method} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => socket.write(encodeFrame({ v: 1, id: 1, method, params })));
    socket.on('data', (chunk: Buffer) => {
      const [frame] = reader.push(chunk);
      if (frame === undefined) return;
      clearTimeout(timer);
      socket.end();
      const { id: _id, ...answer } = decodeFrameBody(frame) as RawAnswer & { id: number };
      resolve(answer);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
