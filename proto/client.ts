// The RPC client: validates params before sending and results on arrival with the SAME schemas
// the server uses, so a confused or compromised daemon cannot hand us something unexpected.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Api, MethodTable, ParamsIn, ResultOut } from './api.ts';
import { describeZodError, Response } from './envelope.ts';
import { ErrorCode, RpcError, toRpcError } from './errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, decodeFrameBody, encodeFrame, FrameReader } from './framing.ts';

export interface ClientOptions {
  /** Per-call timeout unless the call says otherwise. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  maxFrameBytes?: number;
}

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: RpcError) => void;
  timer: NodeJS.Timeout;
}

export class RpcClient<M extends MethodTable> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly reader: FrameReader;
  private closedError: RpcError | null = null;

  private constructor(
    private readonly api: Api<M>,
    private readonly socket: Duplex,
    private readonly opts: Required<ClientOptions>,
  ) {
    this.reader = new FrameReader(opts.maxFrameBytes);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (e) => this.fail(new RpcError(ErrorCode.CLOSED, `connection to ${api.daemon} failed: ${e.message}`)));
    socket.on('close', () => this.fail(new RpcError(ErrorCode.CLOSED, `${api.daemon} closed the connection`)));
  }

  static async connect<M extends MethodTable>(api: Api<M>, socketPath: string, options: ClientOptions = {}): Promise<RpcClient<M>> {
    const opts: Required<ClientOptions> = {
      timeoutMs: 60_000,
      connectTimeoutMs: 10_000,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      ...options,
    };
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ path: socketPath });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new RpcError(ErrorCode.UNAVAILABLE, `cannot reach ${api.daemon} at ${socketPath}: no answer within ${opts.connectTimeoutMs} ms`));
      }, opts.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new RpcError(ErrorCode.UNAVAILABLE, `cannot reach ${api.daemon} at ${socketPath}: ${e.code ?? e.message}`));
      });
    });
    return new RpcClient(api, socket, opts);
  }

  /** A client on an established stream (deployd: the stdin and stdout of an ssh session). */
  static over<M extends MethodTable>(api: Api<M>, stream: Duplex, options: ClientOptions = {}): RpcClient<M> {
    return new RpcClient(api, stream, { timeoutMs: 60_000, connectTimeoutMs: 10_000, maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, ...options });
  }

  call<K extends keyof M & string>(method: K, params: ParamsIn<M[K]>, options: { timeoutMs?: number } = {}): Promise<ResultOut<M[K]>> {
    const spec = this.api.methods[method];
    if (!spec) return Promise.reject(new RpcError(ErrorCode.UNKNOWN_METHOD, `${this.api.daemon} has no method "${method}"`));
    const checked = spec.params.safeParse(params);
    if (!checked.success) {
      return Promise.reject(new RpcError(ErrorCode.SCHEMA, `bad params for ${method}: ${describeZodError(checked.error)}`));
    }
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    let frame: Buffer;
    try {
      // Send what the caller gave (the wire form), not zod's output: defaults are the server's to apply.
      frame = encodeFrame({ v: 1, id, method, params }, this.opts.maxFrameBytes);
    } catch (e) {
      return Promise.reject(toRpcError(e));
    }
    const timeoutMs = options.timeoutMs ?? spec.timeoutMs ?? this.opts.timeoutMs;
    return new Promise<ResultOut<M[K]>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError(ErrorCode.TIMEOUT, `${this.api.daemon}.${method} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(frame);
    });
  }

  close(): void {
    this.fail(new RpcError(ErrorCode.CLOSED, 'client closed'));
    this.socket.end();
  }

  private receive(chunk: Buffer): void {
    try {
      for (const frame of this.reader.push(chunk)) this.settle(decodeFrameBody(frame));
    } catch (e) {
      this.fail(new RpcError(ErrorCode.FRAME, `${this.api.daemon} sent a bad frame: ${toRpcError(e).message}`));
      this.socket.destroy();
    }
  }

  private settle(message: unknown): void {
    const parsed = Response.safeParse(message);
    if (!parsed.success) throw new RpcError(ErrorCode.SCHEMA, `bad response envelope: ${describeZodError(parsed.error)}`);
    const response = parsed.data;
    if (response.id === null) {
      // The server could not tell which request it was answering; it has given up on the stream.
      if (!response.ok) this.fail(new RpcError(response.error.code as ErrorCode, response.error.message));
      return;
    }
    const p = this.pending.get(response.id);
    if (!p) return; // already timed out
    this.pending.delete(response.id);
    clearTimeout(p.timer);
    if (!response.ok) {
      p.reject(new RpcError(response.error.code as ErrorCode, response.error.message));
      return;
    }
    const result = this.api.methods[p.method]!.result.safeParse(response.result);
    if (result.success) p.resolve(result.data);
    else p.reject(new RpcError(ErrorCode.SCHEMA, `${this.api.daemon}.${p.method} answered with an invalid result: ${describeZodError(result.error)}`));
  }

  private fail(err: RpcError): void {
    if (!this.closedError) this.closedError = err;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }
}

/** Connects, makes one call, and hangs up. */
export async function callOnce<M extends MethodTable, K extends keyof M & string>(
  api: Api<M>,
  socketPath: string,
  method: K,
  params: ParamsIn<M[K]>,
  options: ClientOptions = {},
): Promise<ResultOut<M[K]>> {
  const client = await RpcClient.connect(api, socketPath, options);
  try {
    return await client.call(method, params);
  } finally {
    client.close();
  }
}

/**
 * One connection shared by the calls in flight to a daemon: opened by the first, closed once none
 * is left (so a socket-activated peer can still exit when idle), opened again after the peer went
 * away. Many concurrent calls then hold one of the peer's per-uid connections, not one each.
 */
export class SharedConnection<M extends MethodTable> {
  private client: Promise<RpcClient<M>> | null = null;
  private calls = 0;

  constructor(
    private readonly api: Api<M>,
    private readonly socketPath: string,
    private readonly options: ClientOptions = {},
  ) {}

  async call<K extends keyof M & string>(method: K, params: ParamsIn<M[K]>): Promise<ResultOut<M[K]>> {
    this.calls += 1;
    const connecting = (this.client ??= RpcClient.connect(this.api, this.socketPath, this.options));
    try {
      return await (await connecting).call(method, params);
    } catch (e) {
      // A connection that failed or was closed by the peer serves no later call.
      const code = e instanceof RpcError ? e.code : undefined;
      if (code === ErrorCode.UNAVAILABLE || code === ErrorCode.CLOSED || code === ErrorCode.FRAME) this.drop(connecting);
      throw e;
    } finally {
      this.calls -= 1;
      if (this.calls === 0) this.drop(connecting);
    }
  }

  private drop(connecting: Promise<RpcClient<M>>): void {
    if (this.client !== connecting) return;
    this.client = null;
    connecting.then((client) => client.close(), () => undefined);
  }
}
