// http-01 answered by acmed itself: an HTTP listener on the configured address and port that
// exists only while some order has a challenge pending, and answers nothing but
// GET /.well-known/acme-challenge/<token> for tokens of those orders. Concurrent orders on the
// same address and port share one listener.
import { createServer, type Server } from 'node:http';
import { RpcError } from '../../proto/errors.ts';
import { AcmedError } from '../errors.ts';
import type { ChallengeAnswer, ChallengeResponder } from './responder.ts';

const PREFIX = '/.well-known/acme-challenge/';

class ChallengeListener {
  readonly answers = new Map<string, string>();
  private readonly server: Server;
  readonly listening: Promise<void>;

  constructor(address: string, port: number) {
    this.server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
      const url = req.url ?? '';
      const value = url.startsWith(PREFIX) ? this.answers.get(url.slice(PREFIX.length)) : undefined;
      if ((req.method !== 'GET' && req.method !== 'HEAD') || value === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(value) }).end(req.method === 'GET' ? value : undefined);
    });
    this.listening = new Promise((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new RpcError(AcmedError.CHALLENGE, `cannot listen on ${address}:${port} for http-01: ${e.code ?? e.message}`)));
      this.server.listen({ host: address, port, exclusive: true }, () => resolve());
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

const listeners = new Map<string, ChallengeListener>();

export function listenerResponder(address: string, port: number): ChallengeResponder {
  const key = `${address}:${port}`;
  return {
    type: 'http-01',
    async present(answer: ChallengeAnswer) {
      let listener = listeners.get(key);
      if (!listener) {
        listener = new ChallengeListener(address, port);
        listeners.set(key, listener);
      }
      listener.answers.set(answer.token, answer.value);
      try {
        await listener.listening;
      } catch (e) {
        if (listeners.get(key) === listener) listeners.delete(key);
        throw e;
      }
    },
    async remove(answer: ChallengeAnswer) {
      const listener = listeners.get(key);
      if (!listener) return;
      listener.answers.delete(answer.token);
      if (listener.answers.size === 0) {
        listeners.delete(key);
        await listener.close();
      }
    },
  };
}
