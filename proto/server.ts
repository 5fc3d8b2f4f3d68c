// The RPC server: one handler table, one caller allowlist per method, every request and result
// checked against the method's schemas. Order of checks per request: frame → envelope → method
// → peer uid → params → handler (with timeout) → result. Nothing reaches a handler unchecked.
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { AuditError } from '../audit/error.ts';
import type { AuditEntry } from '../audit/log.ts';
import { RefusalTally } from '../audit/refusal-tally.ts';
import type { Api, CallContext, Handlers, MethodTable, PeerCredentials, Role } from './api.ts';
import { describeZodError, Request, salvageId, type RequestId, type Response } from './envelope.ts';
import { ErrorCode, RpcError, toRpcError } from './errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, decodeFrameBody, encodeFrame, FrameReader } from './framing.ts';
import type { Logger } from './log.ts';
import { peerCredentials } from './peercred.ts';

/** What the server writes to the audit trail (structurally the audit/ module's AuditLog). */
export interface AuditSink {
  record(entry: AuditEntry): void;
  /** False while records cannot be written (a full disk): privileged requests are refused then. */
  writable(): boolean;
  readonly unwritableBecause: string | null;
}

export interface ServerOptions<M extends MethodTable> {
  api: Api<M>;
  handlers: Handlers<M>;
  /** The uids that hold a role (resolved from the config's users: section). */
  uidsFor: (role: Role) => readonly number[];
  /**
   * Runs before each request's method and peer are checked: a daemon takes an edited config here,
   * so the peer check and the handler see the config in force (runtime/config-watch.ts).
   */
  beforeDispatch?: () => void;
  audit: AuditSink;
  log: Logger;
  maxFrameBytes?: number;
  requestTimeoutMs?: number;
  /** A frame that started arriving must be complete within this (slow-loris defence). */
  frameTimeoutMs?: number;
  /** A connection with no request in flight and no traffic for this long is closed. */
  connectionIdleMs?: number;
  /** Connections open at once; root (certsepctl, privd) is served beyond it. */
  maxConnections?: number;
  /** Connections one peer uid may hold, so that one local user cannot take them all. */
  maxConnectionsPerUid?: number;
  maxInFlightPerConnection?: number;
  /** Called once no connection has been open for this long (socket-activated idle exit). */
  /** onIdle may decline (return false: work is still scheduled); the wait then starts again. */
  idleExit?: { afterMs: number; onIdle: () => boolean | void };
}

type OptionalHooks = 'idleExit' | 'beforeDispatch';

/** Answers written but not yet taken by the peer, past which its further requests wait. */
const MAX_UNSENT_BYTES = 1024 * 1024;

export type ListenTarget = { fd: number } | { path: string; mode?: number };

interface Connection {
  /** A unix socket, or any byte stream (certsepctl remote-serve: stdin and stdout under ssh). */
  socket: Duplex;
  peer: PeerCredentials;
  reader: FrameReader;
  inFlight: Set<AbortController>;
  /** Frames waiting while the connection is at its in-flight limit (the socket is paused). */
  queued: Buffer[];
  /** Set once the stream is out of step; nothing more is read from it. */
  hungUp: boolean;
  /** Set while our answers wait unsent for the peer to read them: its requests wait too. */
  answersPiledUp: boolean;
  lastActivity: number;
  timer: NodeJS.Timeout;
}

export class RpcServer<M extends MethodTable> {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly opts: Required<Omit<ServerOptions<M>, OptionalHooks>> & Pick<ServerOptions<M>, OptionalHooks>;
  private closing = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private drained: (() => void) | null = null;
  private readonly refusals: RefusalTally;
  private auditDown = false;

  constructor(options: ServerOptions<M>) {
    this.opts = {
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      requestTimeoutMs: 300_000,
      frameTimeoutMs: 10_000,
      connectionIdleMs: 120_000,
      maxConnections: 64,
      maxConnectionsPerUid: 16,
      maxInFlightPerConnection: 32,
      ...options,
    };
    // No net.Server maxConnections: it drops connections before their peer is known, root's too.
    this.server = net.createServer({ allowHalfOpen: false, pauseOnConnect: false }, (s) => this.accept(s));
    this.refusals = new RefusalTally(this.opts.audit);
  }

  async listen(target: ListenTarget): Promise<void> {
    if ('path' in target) removeStaleSocket(target.path);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen('path' in target ? { path: target.path } : { fd: target.fd }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    if ('path' in target && target.mode !== undefined) chmodSync(target.path, target.mode);
    this.armIdleExit();
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops accepting, lets requests in flight finish (up to graceMs), then closes everything. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.disarmIdleExit();
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.inFlightCount() > 0) {
      await Promise.race([
        new Promise<void>((resolve) => (this.drained = resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref()),
      ]);
    }
    for (const c of this.connections) {
      for (const ac of c.inFlight) ac.abort(new RpcError(ErrorCode.SHUTTING_DOWN, 'server is shutting down'));
      c.socket.destroy();
    }
    await stopped;
    this.refusals.close();
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    let peer: PeerCredentials;
    try {
      peer = peerCredentials(socket);
    } catch (e) {
      // Without the kernel's word on who this is, nothing can be allowed.
      this.opts.log.error({ err: e }, 'cannot read peer credentials; dropping connection');
      socket.destroy();
      return;
    }
    const tooMany = this.whyTooManyConnections(peer);
    if (tooMany) {
      const err = new RpcError(ErrorCode.TOO_MANY_CONNECTIONS, tooMany);
      this.refusals.refused({ peer, method: '-', outcome: 'refused', code: err.code, message: err.message });
      socket.end(encodeFrame({ id: null, ok: false, error: err.toWire() }));
      return;
    }
    this.serveStream(socket, peer);
  }

  private whyTooManyConnections(peer: PeerCredentials): string | null {
    let ofPeer = 0;
    for (const c of this.connections) if (c.peer.uid === peer.uid) ofPeer += 1;
    const daemon = this.opts.api.daemon;
    const open = this.connections.size;
    if (ofPeer >= this.opts.maxConnectionsPerUid) return `uid ${peer.uid} has ${ofPeer} connections open to ${daemon}`;
    if (peer.uid !== 0 && open >= this.opts.maxConnections) return `${daemon} has ${open} connections open`;
    return null;
  }

  /**
   * Serves one connection on an already established stream whose peer the caller vouches for:
   * accept() after SO_PEERCRED, or remote-serve for the ssh session it was started for.
   */
  serveStream(socket: Duplex, peer: PeerCredentials): void {
    const conn: Connection = {
      socket,
      peer,
      reader: new FrameReader(this.opts.maxFrameBytes),
      inFlight: new Set(),
      queued: [],
      hungUp: false,
      answersPiledUp: false,
      lastActivity: Date.now(),
      timer: setInterval(() => this.checkTimeouts(conn), Math.min(1000, this.opts.frameTimeoutMs)).unref(),
    };
    this.connections.add(conn);
    this.disarmIdleExit();
    socket.on('data', (chunk: Buffer) => {
      conn.lastActivity = Date.now();
      this.receive(conn, chunk);
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearInterval(conn.timer);
      for (const ac of conn.inFlight) ac.abort(new RpcError(ErrorCode.CLOSED, 'peer closed the connection'));
      this.connections.delete(conn);
      this.armIdleExit();
    });
  }

  private checkTimeouts(conn: Connection): void {
    if (conn.inFlight.size === 0 && Date.now() - conn.lastActivity >= this.opts.connectionIdleMs) {
      conn.socket.destroy();
      return;
    }
    const since = conn.reader.partialSince;
    // While we hold queued frames (or answers) we are not reading, so a partial frame is our delay, not theirs.
    const reading = conn.queued.length === 0 && !conn.answersPiledUp && !conn.hungUp;
    if (since !== null && reading && Date.now() - since > this.opts.frameTimeoutMs) {
      this.refuse(conn, null, '-', new RpcError(ErrorCode.TIMEOUT, `incomplete frame for over ${this.opts.frameTimeoutMs} ms`));
      conn.socket.destroy();
    }
  }

  private receive(conn: Connection, chunk: Buffer): void {
    if (conn.hungUp) return;
    let frames: Buffer[];
    try {
      frames = conn.reader.push(chunk);
    } catch (e) {
      // The stream can no longer be trusted to be in step: answer once, then hang up.
      conn.hungUp = true;
      conn.queued = [];
      this.refuse(conn, null, '-', toRpcError(e));
      conn.socket.end();
      return;
    }
    conn.queued.push(...frames);
    this.drainQueue(conn);
  }

  /**
   * Backpressure: past the in-flight limit, or while our answers pile up unread, stop reading
   * instead of refusing. A peer that pipelines and never reads then holds at most the in-flight
   * limit of requests and MAX_UNSENT_BYTES (plus the answers in flight) of our memory.
   */
  private drainQueue(conn: Connection): void {
    while (conn.queued.length > 0 && conn.inFlight.size < this.opts.maxInFlightPerConnection && !conn.answersPiledUp) {
      this.dispatch(conn, conn.queued.shift()!);
    }
    if (conn.queued.length > 0 || conn.answersPiledUp) conn.socket.pause();
    else if (!conn.hungUp && conn.socket.isPaused() && !conn.socket.destroyed && conn.socket.readable) conn.socket.resume();
  }

  private dispatch(conn: Connection, frame: Buffer): void {
    let message: unknown;
    try {
      message = decodeFrameBody(frame);
    } catch (e) {
      this.refuse(conn, null, '-', toRpcError(e));
      return;
    }
    const envelope = Request.safeParse(message);
    if (!envelope.success) {
      const method = typeof (message as { method?: unknown })?.method === 'string' ? String((message as { method: string }).method).slice(0, 64) : '-';
      this.refuse(conn, salvageId(message), method, new RpcError(ErrorCode.SCHEMA, `bad request envelope: ${describeZodError(envelope.error)}`));
      return;
    }
    const { id, method, params } = envelope.data;
    if (this.closing) {
      this.refuse(conn, id, method, new RpcError(ErrorCode.SHUTTING_DOWN, 'server is shutting down'));
      return;
    }
    this.opts.beforeDispatch?.();
    const spec = Object.hasOwn(this.opts.api.methods, method) ? this.opts.api.methods[method] : undefined;
    if (!spec) {
      this.refuse(conn, id, method, new RpcError(ErrorCode.UNKNOWN_METHOD, `${this.opts.api.daemon} has no method "${method}"`));
      return;
    }
    if (!this.peerMayCall(conn.peer, spec.callers)) {
      this.refuse(conn, id, method, new RpcError(ErrorCode.PEER, `uid ${conn.peer.uid} may not call ${this.opts.api.daemon}.${method}`));
      return;
    }
    const parsed = spec.params.safeParse(params);
    if (!parsed.success) {
      this.refuse(conn, id, method, new RpcError(ErrorCode.SCHEMA, `bad params for ${method}: ${describeZodError(parsed.error)}`), params);
      return;
    }
    // Fail closed: nothing that must be recorded is done while nothing can be recorded.
    if (spec.privileged === true && !this.auditWritable()) {
      const why = `${this.opts.api.daemon}.${method} refused while the audit log cannot be written ` +
        `(${this.opts.audit.unwritableBecause}); it is accepted again once the log can be written`;
      this.refuse(conn, id, method, new RpcError(ErrorCode.AUDIT_UNAVAILABLE, why), params);
      return;
    }
    void this.run(conn, id, method, spec.privileged === true, spec.timeoutMs ?? this.opts.requestTimeoutMs, parsed.data);
  }

  private async run(conn: Connection, id: RequestId, method: string, privileged: boolean, timeoutMs: number, params: unknown): Promise<void> {
    const spec = this.opts.api.methods[method]!;
    const handler = this.opts.handlers[method] as (p: unknown, ctx: CallContext) => Promise<unknown>;
    const ac = new AbortController();
    conn.inFlight.add(ac);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new RpcError(ErrorCode.TIMEOUT, `${method} did not finish within ${timeoutMs} ms`);
          ac.abort(err);
          reject(err);
        }, timeoutMs);
      });
      const aborted = new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(toRpcError(ac.signal.reason)), { once: true }));
      const result = await Promise.race([handler(params, { peer: conn.peer, signal: ac.signal }), timedOut, aborted]);
      const checked = spec.result.safeParse(result);
      if (!checked.success) {
        this.opts.log.error({ method, issues: checked.error.issues }, 'handler returned a result that does not match its schema');
        throw new RpcError(ErrorCode.INTERNAL, `${method} produced an invalid result`);
      }
      // Recorded before answered: a caller never sees a privileged action the audit trail lacks.
      if (privileged && !this.audit(conn.peer, method, params, 'ok', undefined, started)) {
        this.send(conn, { id, ok: false, error: this.unrecorded(method).toWire() });
        return;
      }
      this.send(conn, { id, ok: true, result: checked.data });
    } catch (e) {
      // A handler's own record that could not be written (AuditError) is kept by the log too.
      const err = e instanceof AuditError ? this.unrecorded(method) : toRpcError(e);
      if (err.code === ErrorCode.INTERNAL) this.opts.log.error({ err: e, method }, 'request failed');
      // The action failed; its record, if it cannot be written now, waits in the log.
      if (privileged) this.audit(conn.peer, method, params, 'error', err, started);
      this.send(conn, { id, ok: false, error: err.toWire() });
    } finally {
      clearTimeout(timer);
      conn.inFlight.delete(ac);
      this.drainQueue(conn);
      if (this.drained && this.inFlightCount() === 0) this.drained();
    }
  }

  private peerMayCall(peer: PeerCredentials, callers: readonly Role[]): boolean {
    return callers.some((role) => this.opts.uidsFor(role).includes(peer.uid));
  }

  /**
   * Records the refusal (or counts it, past a few per peer: audit/refusal-tally.ts), then answers
   * with an error; no handler has run. A refusal changed nothing, so it is answered even while its
   * record must wait for the audit log.
   */
  private refuse(conn: Connection, id: RequestId | null, method: string, err: RpcError, params?: unknown): void {
    this.refusals.refused({
      peer: conn.peer, method, ...(params === undefined ? {} : { params }),
      outcome: 'refused', code: err.code, message: err.message, durationMs: 0,
    });
    this.noticeAuditState();
    this.send(conn, { id, ok: false, error: err.toWire() });
  }

  /** False when the record could not be written: the action then is answered as not recorded. */
  private audit(peer: PeerCredentials, method: string, params: unknown, outcome: 'ok' | 'refused' | 'error', err: RpcError | undefined, started: number): boolean {
    try {
      this.opts.audit.record({
        peer,
        method,
        ...(params === undefined ? {} : { params }),
        outcome,
        ...(err ? { code: err.code, message: err.message } : {}),
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      });
      this.noticeAuditState();
      return true;
    } catch (e) {
      if (!(e instanceof AuditError)) throw e;
      this.noticeAuditState();
      return false;
    }
  }

  private auditWritable(): boolean {
    const writable = this.opts.audit.writable();
    this.noticeAuditState();
    return writable;
  }

  /** The error for an action that was done but whose record must wait (the log keeps it). */
  private unrecorded(method: string): RpcError {
    this.noticeAuditState();
    const because = this.opts.audit.unwritableBecause ?? 'E_AUDIT_WRITE';
    return new RpcError(ErrorCode.AUDIT_UNAVAILABLE, `${this.opts.api.daemon}.${method} was done, but its audit ` +
      `record could not be written yet (${because}); it is written once the log can be, ` +
      'and privileged requests are refused until then');
  }

  /** One log line when the audit log stops being writable, one when it is again. */
  private noticeAuditState(): void {
    const because = this.opts.audit.unwritableBecause;
    if ((because !== null) === this.auditDown) return;
    this.auditDown = because !== null;
    if (this.auditDown) this.opts.log.error({ because }, 'cannot write the audit log: refusing privileged requests');
    else this.opts.log.warn('the audit log can be written again: what was kept is written, privileged requests served');
  }

  private send(conn: Connection, response: Response): void {
    if (conn.socket.destroyed || !conn.socket.writable) return;
    conn.lastActivity = Date.now();
    let frame: Buffer;
    try {
      frame = encodeFrame(response, this.opts.maxFrameBytes);
    } catch (e) {
      frame = encodeFrame({ id: response.id, ok: false, error: toRpcError(e).toWire() }, this.opts.maxFrameBytes);
    }
    conn.socket.write(frame);
    if (conn.socket.writableLength > MAX_UNSENT_BYTES && !conn.answersPiledUp) {
      conn.answersPiledUp = true;
      this.opts.log.warn({ uid: conn.peer.uid, pid: conn.peer.pid, unsentBytes: conn.socket.writableLength },
        'peer is not reading its answers: reading none of its requests until it does');
      conn.socket.pause();
      conn.socket.once('drain', () => {
        conn.answersPiledUp = false;
        this.drainQueue(conn);
      });
    }
  }

  private inFlightCount(): number {
    let n = 0;
    for (const c of this.connections) n += c.inFlight.size;
    return n;
  }

  private armIdleExit(): void {
    const idle = this.opts.idleExit;
    if (!idle || this.closing || this.connections.size > 0 || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.connections.size === 0 && !this.closing && idle.onIdle() === false) this.armIdleExit();
    }, idle.afterMs);
  }

  private disarmIdleExit(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

/** A socket file left by a previous run would make listen() fail; remove only a socket. */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
