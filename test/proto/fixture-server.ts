// Starts an RpcServer for the fixture API in this process and counts handler runs, so tests
// can prove that refused input never reached a handler.
import { mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Role } from '../../proto/api.ts';
import { RpcServer, type AuditSink, type ServerOptions } from '../../proto/server.ts';
import { fixtureApi } from './fixture-api.ts';

type Entry = Parameters<AuditSink['record']>[0];

export interface FixtureServer {
  server: RpcServer<typeof fixtureApi.methods>;
  socketPath: string;
  handlerRuns: { count: number };
  audit: Entry[];
}

export async function startFixtureServer(
  options: Partial<ServerOptions<typeof fixtureApi.methods>> & { roles?: Partial<Record<Role, number[]>> } = {},
): Promise<FixtureServer> {
  const dir = mkdtempSync(join(tmpdir(), 'certsep-proto-'));
  chmodSync(dir, 0o755);
  const socketPath = join(dir, 'fixture.sock');
  const handlerRuns = { count: 0 };
  const audit: Entry[] = [];
  const roles: Partial<Record<Role, number[]>> = { root: [0], ...options.roles };
  const server = new RpcServer({
    api: fixtureApi,
    handlers: {
      echo: async ({ text }) => {
        handlerRuns.count++;
        return { text };
      },
      sleep: async ({ ms }, { signal }) => {
        handlerRuns.count++;
        await new Promise((resolve) => {
          const t = setTimeout(resolve, ms);
          signal.addEventListener('abort', () => clearTimeout(t));
        });
        return { slept: ms };
      },
      rootOnly: async () => {
        handlerRuns.count++;
        return { done: true as const };
      },
      badResult: async () => {
        handlerRuns.count++;
        return { n: 'not a number' } as unknown as { n: number };
      },
    },
    uidsFor: (role) => roles[role] ?? [],
    audit: { record: (e) => void audit.push(e), writable: () => true, unwritableBecause: null },
    log: pino({ level: 'silent' }),
    ...options,
  });
  await server.listen({ path: socketPath, mode: 0o666 });
  return { server, socketPath, handlerRuns, audit };
}
