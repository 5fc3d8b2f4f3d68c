import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RpcClient } from '../../proto/client.ts';
import { encodeFrame } from '../../proto/framing.ts';
import { fixtureApi } from './fixture-api.ts';
import { startFixtureServer, type FixtureServer } from './fixture-server.ts';

interface Outcome {
  responses: Array<{ ok: boolean; error?: { code: string } }>;
  closed: boolean;
}

/** Writes raw bytes, half-closes, and collects whatever the server answers until it hangs up. */
function sendRaw(path: string, bytes: Buffer, { halfClose = true, waitMs = 3000 } = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`server neither answered nor closed within ${waitMs} ms for input ${bytes.subarray(0, 40).toString('hex')}`));
    }, waitMs);
    socket.on('connect', () => {
      socket.write(bytes);
      if (halfClose) socket.end();
    });
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ responses: parseFrames(Buffer.concat(chunks)), closed: true });
    });
  });
}

function parseFrames(buf: Buffer): Outcome['responses'] {
  const out: Outcome['responses'] = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt32BE(off);
    if (off + 4 + len > buf.length) break;
    out.push(JSON.parse(buf.subarray(off + 4, off + 4 + len).toString('utf8')));
    off += 4 + len;
  }
  return out;
}

function frameOfText(text: string | Buffer): Buffer {
  const body = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length);
  return Buffer.concat([h, body]);
}

const valid = (params: unknown, method = 'echo', id = 7) => ({ v: 1, id, method, params });

/** ≥1000 hostile inputs in families; none of them may reach a handler. */
function hostileInputs(): Array<{ family: string; bytes: Buffer }> {
  const inputs: Array<{ family: string; bytes: Buffer }> = [];
  const add = (family: string, bytes: Buffer) => inputs.push({ family, bytes });
  for (let i = 0; i < 250; i++) add('random bytes', randomBytes(randomInt(1, 700)));
  for (let i = 0; i < 100; i++) {
    const f = encodeFrame(valid({ text: `t${i}` }));
    add('truncated frame', f.subarray(0, randomInt(1, f.length)));
  }
  for (let i = 0; i < 100; i++) {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(randomInt(256 * 1024 + 1, 2 ** 32 - 1));
    add('length prefix over the limit', Buffer.concat([h, randomBytes(randomInt(0, 64))]));
  }
  const wrongSchema: unknown[] = [
    null, 1, 'str', [], [1, 2], {}, { v: 2, id: 1, method: 'echo', params: { text: 'a' } },
    { v: 1, method: 'echo', params: { text: 'a' } }, { v: 1, id: -1, method: 'echo', params: { text: 'a' } },
    { v: 1, id: 1.5, method: 'echo', params: { text: 'a' } }, { v: 1, id: '1', method: 'echo', params: { text: 'a' } },
    { v: 1, id: 1, method: 'echo' }, { v: 1, id: 1, method: 'echo', params: null }, { v: 1, id: 1, method: 'echo', params: { text: 5 } },
    { v: 1, id: 1, method: 'echo', params: { text: ['a'] } }, { v: 1, id: 1, method: 'echo', params: {} },
    { v: 1, id: 1, method: 'sleep', params: { ms: -5 } }, { v: 1, id: 1, method: 'sleep', params: { ms: 1e9 } },
    { v: 1, id: 1, method: 'echo', params: { text: 'x'.repeat(100_001) } }, { v: 1, id: 1, method: 42, params: {} },
  ];
  for (let i = 0; i < 200; i++) add('valid JSON, wrong schema', frameOfText(JSON.stringify(wrongSchema[i % wrongSchema.length])));
  const unknown = ['toString', 'constructor', 'hasOwnProperty', 'valueOf', 'echo2', 'key.export', 'deploy.install', 'a.b.c', 'ECHO'];
  for (let i = 0; i < 100; i++) add('unknown method', frameOfText(JSON.stringify(valid({}, unknown[i % unknown.length]!, i))));
  for (let i = 0; i < 100; i++) {
    const extra = i % 2 === 0 ? { ...valid({ text: 'a' }), extra: i } : valid({ text: 'a', extra: i });
    add('extra keys', frameOfText(JSON.stringify(extra)));
  }
  const pollution = [
    '{"v":1,"id":1,"method":"echo","params":{"__proto__":{"text":"polluted"}}}',
    '{"v":1,"id":1,"method":"echo","params":{"text":"a","__proto__":{"admin":true}}}',
    '{"v":1,"id":1,"method":"echo","params":{"constructor":{"prototype":{"text":"x"}}}}',
    '{"__proto__":{"v":1,"id":1,"method":"echo","params":{"text":"a"}}}',
    '{"v":1,"id":1,"method":"echo","params":{"text":"a"},"constructor":{"name":"x"}}',
  ];
  for (let i = 0; i < 100; i++) add('__proto__ payload', frameOfText(pollution[i % pollution.length]!));
  for (let i = 0; i < 100; i++) {
    const json = Buffer.from(JSON.stringify(valid({ text: 'AAAA' })), 'utf8');
    const at = json.indexOf('AAAA');
    const bad = [Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])][i % 4]!;
    add('non-UTF-8', frameOfText(Buffer.concat([json.subarray(0, at), bad, json.subarray(at + 4)])));
  }
  return inputs;
}

describe('proto under hostile input', () => {
  let fixture: FixtureServer;
  before(async () => {
    fixture = await startFixtureServer({ frameTimeoutMs: 300 });
  });
  after(async () => {
    await fixture.server.close(100);
  });

  it('refuses over 1000 malformed inputs with an error or a hang-up, runs no handler, and keeps serving a good client', async () => {
    const inputs = hostileInputs();
    assert.ok(inputs.length >= 1000, `only ${inputs.length} inputs`);
    const good = await RpcClient.connect(fixtureApi, fixture.socketPath);
    let goodCalls = 0;
    let stop = false;
    const goodLoop = (async () => {
      while (!stop) {
        const r = await good.call('echo', { text: `ok-${goodCalls}` });
        assert.equal(r.text, `ok-${goodCalls}`);
        goodCalls++;
      }
    })();
    const runsBefore = fixture.handlerRuns.count;
    const families = new Map<string, { errors: number; hangups: number }>();
    let next = 0;
    const worker = async () => {
      while (next < inputs.length) {
        const { family, bytes } = inputs[next++]!;
        const outcome = await sendRaw(fixture.socketPath, bytes);
        const f = families.get(family) ?? { errors: 0, hangups: 0 };
        assert.ok(outcome.responses.every((r) => r.ok === false), `${family}: a hostile input got a success answer`);
        if (outcome.responses.length > 0) f.errors++;
        else f.hangups++;
        families.set(family, f);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    stop = true;
    await goodLoop;
    good.close();
    // The good client's echo calls are the only handler runs.
    assert.equal(fixture.handlerRuns.count - runsBefore, goodCalls);
    assert.ok(goodCalls > 0, 'the good client was served throughout');
    for (const family of ['valid JSON, wrong schema', 'unknown method', 'extra keys', '__proto__ payload', 'non-UTF-8', 'length prefix over the limit']) {
      assert.equal(families.get(family)?.hangups, 0, `${family} must get an error answer, not just a hang-up`);
    }
    console.log(`hostile inputs: ${inputs.length}; good calls served meanwhile: ${goodCalls}`);
    console.log(JSON.stringify(Object.fromEntries(families)));
  });

  it('names the problem: oversize is E_TOO_LARGE, bad bytes E_FRAME, pollution and extra keys E_SCHEMA, unknown method E_UNKNOWN_METHOD', async () => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(10 * 1024 * 1024);
    const codeOf = async (bytes: Buffer) => (await sendRaw(fixture.socketPath, bytes)).responses[0]?.error?.code;
    assert.equal(await codeOf(h), 'E_TOO_LARGE');
    assert.equal(await codeOf(frameOfText(Buffer.from([0x7b, 0xff, 0x7d]))), 'E_FRAME');
    assert.equal(await codeOf(frameOfText('{"v":1,"id":1,"method":"echo","params":{"__proto__":{}}}')), 'E_SCHEMA');
    assert.equal(await codeOf(frameOfText(JSON.stringify({ ...valid({ text: 'a' }), x: 1 }))), 'E_SCHEMA');
    assert.equal(await codeOf(frameOfText(JSON.stringify(valid({}, 'toString')))), 'E_UNKNOWN_METHOD');
    assert.ok(({} as Record<string, unknown>).text === undefined, 'Object.prototype was not polluted');
  });

  it('hangs up on a half-sent frame after the frame timeout (slow loris)', async () => {
    const started = Date.now();
    const outcome = await sendRaw(fixture.socketPath, Buffer.from([0, 0, 0, 50, 0x7b]), { halfClose: false, waitMs: 5000 });
    const took = Date.now() - started;
    assert.ok(outcome.closed);
    assert.equal(outcome.responses[0]?.error?.code, 'E_TIMEOUT');
    assert.ok(took >= 250 && took < 3000, `closed after ${took} ms`);
  });

  it('a bad frame body does not cost the connection: the next good frame on it is answered', async () => {
    const bytes = Buffer.concat([frameOfText('not json'), encodeFrame(valid({ text: 'after' }, 'echo', 9))]);
    const outcome = await sendRaw(fixture.socketPath, bytes);
    assert.equal(outcome.responses[0]?.error?.code, 'E_FRAME');
    assert.deepEqual(outcome.responses[1], { id: 9, ok: true, result: { text: 'after' } });
  });
});
