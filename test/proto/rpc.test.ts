import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RpcClient, SharedConnection, callOnce } from '../../proto/client.ts';
import { RpcError } from '../../proto/errors.ts';
import { fixtureApi } from './fixture-api.ts';
import { startFixtureServer, type FixtureServer } from './fixture-server.ts';

describe('proto RPC', () => {
  const servers: FixtureServer[] = [];
  const start = async (...a: Parameters<typeof startFixtureServer>) => {
    const s = await startFixtureServer(...a);
    servers.push(s);
    return s;
  };
  after(async () => {
    for (const s of servers) await s.server.close(100);
  });

  it('a typed call round-trips and the result is validated', async () => {
    const { socketPath } = await start();
    const result = await callOnce(fixtureApi, socketPath, 'echo', { text: 'héllo ✓' });
    assert.deepEqual(result, { text: 'héllo ✓' });
  });

  it('many concurrent calls on one connection each get their own answer', async () => {
    const { socketPath } = await start();
    const client = await RpcClient.connect(fixtureApi, socketPath);
    const texts = Array.from({ length: 200 }, (_, i) => `msg-${i}-${'x'.repeat(i)}`);
    const answers = await Promise.all(texts.map((text) => client.call('echo', { text })));
    assert.deepEqual(answers.map((a) => a.text), texts);
    const slow = client.call('sleep', { ms: 150 });
    const fast = client.call('echo', { text: 'fast' });
    const first = await Promise.race([slow.then(() => 'slow'), fast.then(() => 'fast')]);
    assert.equal(first, 'fast', 'a slow request must not block a fast one behind it');
    await slow;
    client.close();
  });

  it('a shared connection carries concurrent calls on one socket, closes when idle and opens again', async () => {
    const { server, socketPath } = await start();
    const shared = new SharedConnection(fixtureApi, socketPath);
    let most = 0;
    const texts = Array.from({ length: 100 }, (_, i) => `call-${i}`);
    const answers = await Promise.all(texts.map(async (text) => {
      const answer = await shared.call('echo', { text });
      most = Math.max(most, server.connectionCount);
      return answer.text;
    }));
    assert.deepEqual(answers, texts);
    assert.equal(most, 1, 'one connection for every call in flight');
    await waitForNoConnection(server);
    assert.deepEqual(await shared.call('echo', { text: 'again' }), { text: 'again' });
  });

  it('the server times out a handler that runs too long with E_TIMEOUT', async () => {
    const { socketPath } = await start({ requestTimeoutMs: 100 });
    await assert.rejects(callOnce(fixtureApi, socketPath, 'sleep', { ms: 2000 }), (e: RpcError) => e.code === 'E_TIMEOUT');
  });

  it('the client gives up with E_TIMEOUT when no answer comes in time', async () => {
    const { socketPath } = await start();
    const client = await RpcClient.connect(fixtureApi, socketPath);
    await assert.rejects(client.call('sleep', { ms: 1000 }, { timeoutMs: 50 }), (e: RpcError) => e.code === 'E_TIMEOUT' && /did not answer/.test(e.message));
    assert.deepEqual(await client.call('echo', { text: 'still usable' }), { text: 'still usable' });
    client.close();
  });

  it('a peer uid outside the allowlist gets E_PEER, no handler runs, and the refusal is audited', async () => {
    const { socketPath, handlerRuns, audit } = await start({ roles: { root: [] } });
    await assert.rejects(callOnce(fixtureApi, socketPath, 'rootOnly', { note: 'x' }), (e: RpcError) => e.code === 'E_PEER' && /uid 0 may not call/.test(e.message));
    assert.equal(handlerRuns.count, 0);
    const refusal = audit.find((e) => e.outcome === 'refused' && e.code === 'E_PEER');
    assert.ok(refusal, 'refusal must be audited');
    assert.equal(refusal.peer?.uid, 0);
    assert.equal(refusal.peer?.pid, process.pid);
  });

  it('privileged calls are audited when they succeed', async () => {
    const { socketPath, audit } = await start();
    await callOnce(fixtureApi, socketPath, 'rootOnly', {});
    assert.ok(audit.some((e) => e.method === 'rootOnly' && e.outcome === 'ok' && typeof e.durationMs === 'number'));
  });

  it('a handler result that breaks its schema becomes E_INTERNAL, not bad data', async () => {
    const { socketPath } = await start();
    await assert.rejects(callOnce(fixtureApi, socketPath, 'badResult', {}), (e: RpcError) => e.code === 'E_INTERNAL');
  });

  it('the client refuses to send params that break the schema', async () => {
    const { socketPath, handlerRuns } = await start();
    await assert.rejects(
      callOnce(fixtureApi, socketPath, 'echo', { text: 'a', extra: 1 } as unknown as { text: string }),
      (e: RpcError) => e.code === 'E_SCHEMA' && /extra/.test(e.message),
    );
    assert.equal(handlerRuns.count, 0);
  });

  it('an unreachable daemon is E_UNAVAILABLE with the socket path in the message', async () => {
    await assert.rejects(callOnce(fixtureApi, '/nonexistent/certsep.sock', 'echo', { text: 'a' }), (e: RpcError) => e.code === 'E_UNAVAILABLE' && /\/nonexistent\/certsep\.sock/.test(e.message));
  });

  it('graceful shutdown lets a request in flight finish and refuses new connections', async () => {
    const { socketPath, server } = await start();
    const client = await RpcClient.connect(fixtureApi, socketPath);
    const inFlight = client.call('sleep', { ms: 200 });
    await new Promise((r) => setTimeout(r, 20));
    const closed = server.close(5000);
    assert.deepEqual(await inFlight, { slept: 200 });
    await closed;
    await assert.rejects(callOnce(fixtureApi, socketPath, 'echo', { text: 'a' }), (e: RpcError) => e.code === 'E_UNAVAILABLE');
  });

  it('idle exit fires only after the last connection has been gone for the set time', async () => {
    let idled = 0;
    const { socketPath } = await start({ idleExit: { afterMs: 150, onIdle: () => { idled++; } } });
    const client = await RpcClient.connect(fixtureApi, socketPath);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(idled, 0, 'an open connection keeps the daemon alive');
    client.close();
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(idled, 1);
  });
});

async function waitForNoConnection(server: { connectionCount: number }): Promise<void> {
  for (let i = 0; i < 200 && server.connectionCount > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(server.connectionCount, 0, 'the shared connection is closed once no call is in flight');
}
