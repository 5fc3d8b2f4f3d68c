// One request to a certsep daemon as raw frames, without the typed client (which would refuse to send the
// hostile params these tests need the daemon itself to refuse). A connection that closes without an
// answer (e.g. privd killed itself at a crash point) resolves as {closed: true}.
import { connect } from 'node:net';
import { decodeFrameBody, encodeFrame, FrameReader } from '../../proto/framing.ts';

export type RawAnswer =
  | { ok: true; result: Record<string, unknown> }
  | { ok: false; error: { code: string; message: string } }
  | { ok: false; closed: true; error: { code: 'E_CLOSED'; message: string } };

export function rawCall(socketPath: string, method: string, params: unknown, timeoutMs = 120_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    const reader = new FrameReader();
    let settled = false;
    const settle = (answer: RawAnswer | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (answer instanceof Error) reject(answer);
      else resolve(answer);
    };
    const timer = setTimeout(() => settle(new Error(`the daemon did not answer ${method} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => socket.write(encodeFrame({ v: 1, id: 1, method, params })));
    socket.on('data', (chunk: Buffer) => {
      const [frame] = reader.push(chunk);
      if (frame === undefined) return;
      const { id: _id, ...answer } = decodeFrameBody(frame) as RawAnswer & { id: number };
      settle(answer);
    });
    socket.once('close', () => settle({ ok: false, closed: true, error: { code: 'E_CLOSED', message: 'the daemon closed the connection without answering' } }));
    socket.once('error', (e) => settle(e));
  });
}
