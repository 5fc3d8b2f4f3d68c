// What every certsep daemon's main.ts shares: command line, config, audit trail, the RPC server
// on an inherited (socket-activated) or explicit socket, sd_notify, idle exit and clean shutdown.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { anchorFromEnvironment } from '../audit/anchor.ts';
import { AuditLog } from '../audit/log.ts';
import { ConfigError } from '../config/error.ts';
import { loadConfig, defaultConfigPath } from '../config/load.ts';
import { assertRootOwnedConfig } from '../config/ownership.ts';
import type { Config } from '../config/schema.ts';
import { uidsForRole } from '../config/users.ts';
import type { Api, DaemonName, Handlers, MethodTable, ServiceName } from '../proto/api.ts';
import { createLogger, type Logger } from '../proto/log.ts';
import { RpcServer, type ListenTarget } from '../proto/server.ts';
import { notifySystemd, takeInheritedListenFd } from '../proto/systemd.ts';

export interface DaemonContext {
  readonly config: Config;
  readonly configPath: string;
  readonly log: Logger;
  readonly audit: AuditLog;
  /** This daemon's own state directory, <paths.stateDir>/<daemon>. */
  readonly stateDir: string;
}

export interface DaemonParts<M extends MethodTable> {
  handlers: Handlers<M>;
  /** Runs after the server stopped accepting and drained (release resources). */
  stop?: () => Promise<void>;
  /** True while the daemon has work scheduled (deployd's delivery retries): no idle exit then. */
  busy?: () => boolean;
}

export interface DaemonDefinition<M extends MethodTable> {
  name: ServiceName;
  api: Api<M>;
  /** privd acts on the config's authority, so the config must be writable by root alone. */
  requireRootOwnedConfig?: boolean;
  start(ctx: DaemonContext): Promise<DaemonParts<M>>;
}

export const EXIT_CONFIG = 78; // EX_CONFIG from sysexits.h

const USAGE = (name: string) => `usage: certsep-${name} [--config FILE] [--socket PATH] [--socket-mode OCTAL] [--idle-exit SECONDS]

  --config FILE       config file (default $CERTSEP_CONFIG or /etc/certsep/certsep.yaml)
  --socket PATH       listen on PATH (default: the socket systemd passed, else <runDir>/${name}.sock)
  --socket-mode OCTAL permissions of a socket we create (default 0660)
  --idle-exit SECONDS exit after that long without a connection (default rpc.idleExitSeconds; 0 = never)`;

export async function runDaemon<M extends MethodTable>(def: DaemonDefinition<M>, argv = process.argv.slice(2)): Promise<void> {
  const log = createLogger(def.name);
  let args;
  try {
    args = parseArgs({
      args: argv,
      strict: true,
      options: {
        config: { type: 'string' },
        socket: { type: 'string' },
        'socket-mode': { type: 'string' },
        'idle-exit': { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`certsep-${def.name}: ${(e as Error).message}\n${USAGE(def.name)}\n`);
    process.exit(64);
  }
  if (args.help) {
    process.stdout.write(`${USAGE(def.name)}\n`);
    return;
  }
  const configPath = args.config ?? defaultConfigPath();
  let config: Config;
  try {
    if (def.requireRootOwnedConfig) assertRootOwnedConfig(configPath);
    config = loadConfig(configPath);
  } catch (e) {
    process.stderr.write(`certsep-${def.name}: ${(e as Error).message}\n`);
    process.exit(EXIT_CONFIG);
  }
  const idleExitSeconds = args['idle-exit'] !== undefined ? Number(args['idle-exit']) : config.rpc.idleExitSeconds;
  if (!Number.isFinite(idleExitSeconds) || idleExitSeconds < 0) {
    process.stderr.write(`certsep-${def.name}: --idle-exit must be a number of seconds\n`);
    process.exit(64);
  }
  try {
    // Resolve every caller role now, so a missing user stops the daemon at start, not mid-request.
    for (const role of ['root', 'admin', 'keyd', 'acmed', 'netd', 'deployd', 'remote'] as const) uidsForRole(config, role);
  } catch (e) {
    process.stderr.write(`certsep-${def.name}: ${(e as Error).message}\n`);
    process.exit(EXIT_CONFIG);
  }
  const stateDir = join(config.paths.stateDir, def.name);
  const audit = AuditLog.open(config.paths.auditDir, def.name, { anchor: anchorFromEnvironment(def.name) });
  const ctx: DaemonContext = { config, configPath, log, audit, stateDir };
  let parts: DaemonParts<M>;
  try {
    parts = await def.start(ctx);
  } catch (e) {
    // A daemon that cannot acquire what it needs says why in one line and does not serve.
    log.fatal({ err: e }, 'cannot start');
    process.stderr.write(`certsep-${def.name}: cannot start: ${(e as Error).message}\n`);
    audit.close();
    process.exit(e instanceof ConfigError ? EXIT_CONFIG : 1);
  }

  let shuttingDown = false;
  const shutdown = async (why: string, code = 0) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ why }, 'shutting down');
    notifySystemd({ STOPPING: '1', STATUS: `stopping: ${why}` });
    await server.close();
    await parts.stop?.();
    audit.close();
    process.exit(code);
  };

  const server = new RpcServer({
    api: def.api,
    handlers: parts.handlers,
    uidsFor: (role) => uidsForRole(config, role),
    audit,
    log,
    maxFrameBytes: config.rpc.maxFrameBytes,
    requestTimeoutMs: config.rpc.requestTimeoutSeconds * 1000,
    ...(idleExitSeconds > 0 ? { idleExit: { afterMs: idleExitSeconds * 1000, onIdle: () => {
      if (parts.busy?.()) return false;
      void shutdown(`idle for ${idleExitSeconds}s`);
      return true;
    } } } : {}),
  });
  const target = listenTarget(args.socket, args['socket-mode'], config, def.name);
  await server.listen(target);
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  const where = 'fd' in target ? `inherited fd ${target.fd}` : target.path;
  log.info({ listen: where, pid: process.pid, uid: process.getuid?.() }, 'ready');
  notifySystemd({ READY: '1', STATUS: `serving on ${where}`, MAINPID: String(process.pid) });
}

function listenTarget(socket: string | undefined, mode: string | undefined, config: Config, name: ServiceName): ListenTarget {
  const socketMode = mode === undefined ? 0o660 : Number.parseInt(mode, 8);
  if (!Number.isInteger(socketMode) || socketMode < 0 || socketMode > 0o777) {
    process.stderr.write(`certsep-${name}: --socket-mode must be octal, e.g. 0660\n`);
    process.exit(64);
  }
  if (socket === undefined) {
    const fd = takeInheritedListenFd();
    if (fd !== null) return { fd };
  }
  const path = socket ?? join(config.paths.runDir, `${name}.sock`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  return { path, mode: socketMode };
}

/** The socket path of a daemon according to the config. */
export function socketPathOf(config: Config, daemon: DaemonName): string {
  return join(config.paths.runDir, `${daemon}.sock`);
}
