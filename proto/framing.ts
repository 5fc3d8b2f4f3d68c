// Framing: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (OpenBSD acme-client's
// util.c in spirit: length + bytes, nothing else). The length is checked against the limit
// BEFORE the body is buffered, so a hostile peer cannot make us hold more than maxFrameBytes.
import { ErrorCode, RpcError } from './errors.ts';

export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024;
const HEADER_BYTES = 4;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Keys that must never reach a handler, even as own data properties. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function encodeFrame(message: unknown, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > maxFrameBytes) {
    throw new RpcError(ErrorCode.TOO_LARGE, `message of ${body.length} bytes exceeds the ${maxFrameBytes}-byte frame limit`);
  }
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/** Parses a frame body: strict UTF-8, JSON, and no prototype-polluting keys anywhere. */
export function decodeFrameBody(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new RpcError(ErrorCode.FRAME, 'frame body is not valid UTF-8');
  }
  try {
    return JSON.parse(text, (key, value: unknown) => {
      if (FORBIDDEN_KEYS.has(key)) throw new ForbiddenKey(key);
      return value;
    });
  } catch (e) {
    if (e instanceof ForbiddenKey) throw new RpcError(ErrorCode.SCHEMA, `forbidden key "${e.key}" in message`);
    throw new RpcError(ErrorCode.FRAME, 'frame body is not valid JSON');
  }
}

class ForbiddenKey extends Error {
  constructor(readonly key: string) {
    super(key);
  }
}

/**
 * Accumulates stream chunks and hands out complete frame bodies. Throws RpcError(E_TOO_LARGE)
 * as soon as a header announces more than the limit, and E_FRAME for a zero-length frame.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected: number | null = null;
  /** When the first byte of the current incomplete frame arrived (for half-frame timeouts). */
  partialSince: number | null = null;

  constructor(private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  push(chunk: Buffer): Buffer[] {
    if (chunk.length === 0) return [];
    if (this.buffered === 0) this.partialSince = Date.now();
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Buffer[] = [];
    for (;;) {
      if (this.expected === null) {
        if (this.buffered < HEADER_BYTES) break;
        const length = this.take(HEADER_BYTES).readUInt32BE(0);
        if (length > this.maxFrameBytes) {
          throw new RpcError(ErrorCode.TOO_LARGE, `frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
        }
        if (length === 0) throw new RpcError(ErrorCode.FRAME, 'empty frame');
        this.expected = length;
      }
      if (this.buffered < this.expected) break;
      frames.push(this.take(this.expected));
      this.expected = null;
    }
    // A frame that completed restarts the clock for whatever follows it in the same chunk.
    if (!this.hasPartialFrame) this.partialSince = null;
    else if (frames.length > 0) this.partialSince = Date.now();
    return frames;
  }

  /** True while part of a frame has arrived and the rest has not. */
  get hasPartialFrame(): boolean {
    return this.buffered > 0 || this.expected !== null;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}
