// http-01 answered by acmed itself, on the configured address and port, with nothing but
// GET /.well-known/acme-challenge/<token> for tokens of orders in flight (404 for anything else).
// Concurrent orders on the same address and port share one listener.
//
// Under systemd or certsep-supervisor the port is held for acmed all the time (a ListenStream= of
// acmed's socket unit, or a socket the supervisor keeps) and passed beside the RPC socket: no other
// local user can bind it, to make orders fail or to answer the CA's validation, not even while
// acmed is not running. acmed then never binds a listener port itself, and refuses an order whose
// address was not passed. Run by hand (no socket passed), acmed binds the port only while an order
// needs it, as before.
import { createServer, type Server } from 'node:http';
import { RpcError } from '../../proto/errors.ts';
import { AcmedError } from '../errors.ts';
import { listenerKey } from './listener-addresses.ts';
import type { ChallengeAnswer, ChallengeResponder } from './responder.ts';

const PREFIX = '/.well-known/acme-challenge/';

type Bind = { host: string; port: number } | { fd: number };

class ChallengeListener {
  readonly answers = new Map<string, string>();
  private readonly server: Server;
  readonly listening: Promise<string>;

  constructor(bind: Bind) {
    this.server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
      const url = req.url ?? '';
      const value = url.startsWith(PREFIX) ? this.answers.get(url.slice(PREFIX.length)) : undefined;
      if ((req.method !== 'GET' && req.method !== 'HEAD') || value === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(value) }).end(req.method === 'GET' ? value : undefined);
    });
    const where = 'fd' in bind ? `the socket passed as fd ${bind.fd}` : `${bind.host}:${bind.port}`;
    this.listening = new Promise((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new RpcError(AcmedError.CHALLENGE, `cannot listen on ${where} for http-01: ${e.code ?? e.message}`)));
      this.server.listen('fd' in bind ? { fd: bind.fd } : { host: bind.host, port: bind.port, exclusive: true }, () => {
        const address = this.server.address();
        if (address === null || typeof address === 'string') {
          reject(new RpcError(AcmedError.CHALLENGE, `${where} is not a TCP socket, so it cannot answer http-01`));
        } else {
          resolve(listenerKey(address.address, address.port));
        }
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** Bound by acmed for the orders in flight, closed when the last answer is removed. */
const ownListeners = new Map<string, ChallengeListener>();
/** Held by systemd or the supervisor, open as long as acmed runs. */
const heldListeners = new Map<string, ChallengeListener>();
let portsAreHeld = false;

/**
 * Answers on the listening sockets passed beside the RPC socket (fds 4…). `activated`: acmed's
 * RPC socket was passed too, so a service manager runs it and must hold every listener port.
 * Returns the address:port of each.
 */
export async function answerOnHeldListeners(fds: readonly number[], activated: boolean): Promise<string[]> {
  portsAreHeld = activated;
  const keys: string[] = [];
  for (const fd of fds) {
    const listener = new ChallengeListener({ fd });
    const key = await listener.listening;
    heldListeners.set(key, listener);
    keys.push(key);
  }
  return keys;
}

/** The listener acmed binds itself for key, shared by the orders in flight (run by hand only). */
function ownListener(address: string, port: number, key: string): ChallengeListener {
  if (portsAreHeld) {
    throw new RpcError(
      AcmedError.CHALLENGE,
      `the http-01 listener ${key} is not held for acmed by systemd or certsep-supervisor, and acmed does not bind ` +
        'it itself (another local user could take it): re-run install, or restart certsep-supervisor, after adding ' +
        'a listener to the config',
    );
  }
  let listener = ownListeners.get(key);
  if (!listener) {
    listener = new ChallengeListener({ host: address, port });
    ownListeners.set(key, listener);
  }
  return listener;
}

export function listenerResponder(address: string, port: number): ChallengeResponder {
  const key = listenerKey(address, port);
  return {
    type: 'http-01',
    async present(answer: ChallengeAnswer) {
      const listener = heldListeners.get(key) ?? ownListener(address, port, key);
      // Before waiting: a concurrent order's remove() must see this answer and keep the listener open.
      listener.answers.set(answer.token, answer.value);
      try {
        await listener.listening;
      } catch (e) {
        if (ownListeners.get(key) === listener) ownListeners.delete(key);
        throw e;
      }
    },
    async remove(answer: ChallengeAnswer) {
      const held = heldListeners.get(key);
      if (held) {
        held.answers.delete(answer.token);
        return;
      }
      const listener = ownListeners.get(key);
      if (!listener) return;
      listener.answers.delete(answer.token);
      if (listener.answers.size === 0) {
        ownListeners.delete(key);
        await listener.close();
      }
    },
  };
}
