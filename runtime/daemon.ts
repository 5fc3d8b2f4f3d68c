// What every certsep daemon's main.ts shares: command line, config (kept current by ConfigWatch),
// audit trail, the RPC server on an inherited (socket-activated) or explicit socket, sd_notify,
// idle exit and clean shutdown.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { anchorFromEnvironment } from '../audit/anchor.ts';
import { AuditLog } from '../audit/log.ts';
import { ConfigError } from '../config/error.ts';
import { defaultConfigPath } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { uidsForRole } from '../config/users.ts';
import type { Api, DaemonName, Handlers, MethodTable, ServiceName } from '../proto/api.ts';
import { RpcError } from '../proto/errors.ts';
import { createLogger, type Logger } from '../proto/log.ts';
import { RpcServer, type ListenTarget } from '../proto/server.ts';
import { notifySystemd, takeInheritedListenFd } from '../proto/systemd.ts';
import type { ConfigStatusMethods, OwnHandlers } from './config-status.ts';
import { ConfigWatch, readConfigAtStart, type ConfigReactions, type RefreshTrigger } from './config-watch.ts';

export interface DaemonContext {
  /**
   * The config in force now. It changes only when no request is being handled and the daemon's
   * own work is idle (DaemonParts.configBusy), so every read within one piece of work gives the
   * same object. Read it where it is needed; never keep it from one request to the next.
   */
  readonly config: () => Config;
  /** Takes an edited config file now if nothing is in progress: before work a timer starts. */
  readonly refreshConfig: () => void;
  readonly configPath: string;
  readonly log: Logger;
  readonly audit: AuditLog;
  /** This daemon's own state directory, <paths.stateDir>/<daemon>. */
  readonly stateDir: string;
}

export interface DaemonParts<M extends MethodTable> {
  /** The daemon's own methods; runDaemon answers config.status. */
  handlers: OwnHandlers<M>;
  /** Runs after the server stopped accepting and drained (release resources). */
  stop?: () => Promise<void>;
  /** True while the daemon has work scheduled (deployd's delivery retries): no idle exit then. */
  busy?: () => boolean;
  /** Work outside requests that started under the current config: why an edited one must wait, or null. */
  configBusy?: ConfigReactions['busy'];
  /** Checks an edited config before it takes over (throw a ConfigError to refuse it); returns what to do then. */
  prepareConfig?: ConfigReactions['prepare'];
}

export interface DaemonDefinition<M extends MethodTable & ConfigStatusMethods> {
  name: ServiceName;
  api: Api<M>;
  /** privd acts on the config's authority, so the config must be writable by root alone (on reload too). */
  requireRootOwnedConfig?: boolean;
  start(ctx: DaemonContext): Promise<DaemonParts<M>>;
}

export const EXIT_CONFIG = 78; // EX_CONFIG from sysexits.h

const USAGE = (name: string) => `usage: certsep-${name} [--config FILE] [--socket PATH] [--socket-mode OCTAL] [--idle-exit SECONDS]

  --config FILE       config file (default $CERTSEP_CONFIG or /etc/certsep/certsep.yaml)
  --socket PATH       listen on PATH (default: the socket systemd passed, else <runDir>/${name}.sock)
  --socket-mode OCTAL permissions of a socket we create (default 0660)
  --idle-exit SECONDS exit after that long without a connection (default rpc.idleExitSeconds; 0 = never)`;

export async function runDaemon<M extends MethodTable & ConfigStatusMethods>(
  def: DaemonDefinition<M>,
  argv = process.argv.slice(2),
): Promise<void> {
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
  // SIGHUP's default action ends the process; catch it before anything else (certsep-supervisor
  // forwards it to every daemon, systemd's ExecReload sends it).
  let refreshOnHangup = (): void => undefined;
  process.on('SIGHUP', () => refreshOnHangup());
  const configPath = args.config ?? defaultConfigPath();
  const watchOptions = { path: configPath, daemon: def.name, requireRootOwned: def.requireRootOwnedConfig === true };
  let first;
  try {
    first = readConfigAtStart(watchOptions);
  } catch (e) {
    process.stderr.write(`certsep-${def.name}: ${(e as Error).message}\n`);
    process.exit(EXIT_CONFIG);
  }
  const startConfig = first.config;
  const idleExitSeconds = args['idle-exit'] !== undefined ? Number(args['idle-exit']) : startConfig.rpc.idleExitSeconds;
  if (!Number.isFinite(idleExitSeconds) || idleExitSeconds < 0) {
    process.stderr.write(`certsep-${def.name}: --idle-exit must be a number of seconds\n`);
    process.exit(64);
  }
  const stateDir = join(startConfig.paths.stateDir, def.name);
  const audit = AuditLog.open(startConfig.paths.auditDir, def.name, { anchor: anchorFromEnvironment(def.name) });
  const watch = new ConfigWatch({ ...watchOptions, audit, log }, first);
  let shuttingDown = false;
  let server: RpcServer<M> | undefined;
  let parts: DaemonParts<M> | undefined;
  const shutdown = async (why: string, code = 0) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ why }, 'shutting down');
    notifySystemd({ STOPPING: '1', STATUS: `stopping: ${why}` });
    await server?.close();
    await parts?.stop?.();
    audit.close();
    process.exit(code);
  };
  let where = '';
  let shownStatus = '';
  const showStatus = () => {
    const status = serviceStatus(where, watch);
    if (status !== shownStatus) notifySystemd({ STATUS: status });
    shownStatus = status;
  };
  const refreshConfig = (trigger: RefreshTrigger, force = false) => {
    if (shuttingDown) return;
    try {
      watch.refresh(trigger, force);
    } catch (e) {
      // Only the audit record can fail here: stop rather than run a config the trail does not show.
      log.fatal({ err: e }, 'cannot write the audit log; shutting down');
      void shutdown('audit log unwritable', 1);
      return;
    }
    if (where !== '') showStatus();
  };
  const ctx: DaemonContext = {
    config: () => watch.config,
    refreshConfig: () => refreshConfig('timer'),
    configPath,
    log,
    audit,
    stateDir,
  };
  try {
    parts = await def.start(ctx);
  } catch (e) {
    // A daemon that cannot acquire what it needs says why in one line and does not serve.
    log.fatal({ err: e }, 'cannot start');
    process.stderr.write(`certsep-${def.name}: cannot start: ${(e as Error).message}\n`);
    audit.close();
    process.exit(e instanceof ConfigError ? EXIT_CONFIG : 1);
  }
  const { busy, configBusy, prepareConfig } = parts;
  watch.react({ ...(configBusy ? { busy: configBusy } : {}), ...(prepareConfig ? { prepare: prepareConfig } : {}) });

  server = new RpcServer({
    api: def.api,
    handlers: handlersInForce<M>(parts.handlers, watch, () => refreshConfig('certsepctl reload', true)),
    uidsFor: (role) => uidsForRole(watch.config, role),
    beforeDispatch: () => refreshConfig('request'),
    audit,
    log,
    maxFrameBytes: startConfig.rpc.maxFrameBytes,
    requestTimeoutMs: startConfig.rpc.requestTimeoutSeconds * 1000,
    ...(idleExitSeconds > 0 ? { idleExit: { afterMs: idleExitSeconds * 1000, onIdle: () => {
      if (busy?.()) return false;
      void shutdown(`idle for ${idleExitSeconds}s`);
      return true;
    } } } : {}),
  });
  const target = listenTarget(args.socket, args['socket-mode'], startConfig, def.name);
  await server.listen(target);
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  refreshOnHangup = () => refreshConfig('SIGHUP', true);
  where = 'fd' in target ? `inherited fd ${target.fd}` : target.path;
  log.info({ listen: where, pid: process.pid, uid: process.getuid?.(), configSha256: first.sha256 }, 'ready');
  shownStatus = serviceStatus(where, watch);
  notifySystemd({ READY: '1', STATUS: shownStatus, MAINPID: String(process.pid) });
}

/**
 * The daemon's handlers as the server calls them: each runs with the config held still (see
 * ConfigWatch.during), an error says so when the daemon refused the file as it is now (so "no
 * certificate named X" explains itself), and config.status answers from the watch.
 */
function handlersInForce<M extends MethodTable & ConfigStatusMethods>(
  own: OwnHandlers<M>,
  watch: ConfigWatch,
  reread: () => void,
): Handlers<M> {
  type Handler = (params: unknown, ctx: Parameters<Handlers<M>[keyof M]>[1]) => Promise<unknown>;
  const wrapped: Record<string, Handler> = {};
  for (const [method, handler] of Object.entries(own) as [string, Handler][]) {
    wrapped[method] = (params, ctx) => watch.during(() => handler(params, ctx)).catch((e: unknown) => {
      const stale = watch.staleness();
      throw e instanceof RpcError && stale !== null ? new RpcError(e.code, `${e.message} (${stale})`, { cause: e }) : e;
    });
  }
  wrapped['config.status'] = async (params) => {
    if ((params as { reread: boolean }).reread) reread();
    return watch.status();
  };
  return wrapped as unknown as Handlers<M>;
}

/** systemd's STATUS= (systemctl status): where the daemon serves and which config it runs. */
function serviceStatus(where: string, watch: ConfigWatch): string {
  const { sha256, loadedAt, refused, waiting } = watch.status();
  const runs = `config sha256 ${sha256.slice(0, 12)} loaded ${loadedAt}`;
  if (refused) return `serving on ${where}; ${runs}; REFUSED the file's newest edit: ${refused.issues[0]}`;
  return `serving on ${where}; ${runs}${waiting ? `; an edit waits while ${waiting}` : ''}`;
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
