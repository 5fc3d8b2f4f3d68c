// One daemon under the supervisor: started under its own uid/gid through setpriv (the supplementary
// groups /etc/group gives its user, as systemd's User= does; no capabilities but netd's
// CAP_NET_ADMIN as an ambient capability), restarted with backoff when it dies, stopped with
// SIGTERM then SIGKILL.
//
// The supervisor makes each daemon's listening socket itself and passes it the way systemd does
// (fd 3, LISTEN_FDS, LISTEN_PID): the unprivileged daemons cannot create files in the root-owned
// runDir, which is what keeps one daemon from squatting another's socket path. Ports it holds for
// a daemon (acmed's http-01 listeners) follow as fds 4…, as a socket unit's further ListenStream=.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ANCHOR_FD_VARIABLE } from '../audit/anchor.ts';
import type { DaemonName } from '../proto/api.ts';
import type { Logger } from '../proto/log.ts';
import type { Account, SocketOwner } from './accounts.ts';
import type { AnchorFile } from './audit-anchors.ts';
import { SOCKET_MODE } from './socket-access.ts';

const FIRST_RESTART_MS = 1000;
const MAX_RESTART_MS = 60_000;
/** A daemon that stayed up this long is healthy again: its next crash restarts it quickly. */
const HEALTHY_AFTER_MS = 60_000;
const STOP_GRACE_MS = 10_000;

/**
 * All a daemon gets of the supervisor's environment, like a unit's clean one: the supervisor is
 * started from root's shell, whose NODE_OPTIONS (--require), LD_PRELOAD or proxy settings would
 * otherwise run code or change behaviour in every daemon, privd included. PATH is fixed for the
 * programs the daemons run (nginx -t, nft, ssh); of certsep's own variables only those it reads.
 */
const FIXED_ENVIRONMENT = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };
const PASSED_THROUGH = ['CERTSEP_LOG_LEVEL', 'CERTSEP_TEST_HOOKS', 'CERTSEP_PRIVD_CRASH_AT'] as const;

export function daemonEnvironment(from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...FIXED_ENVIRONMENT };
  for (const name of PASSED_THROUGH) if (from[name] !== undefined) env[name] = from[name];
  return env;
}

export interface DaemonSpec {
  name: DaemonName;
  account: Account;
  /** Who owns <runDir>/<name>.sock (mode SOCKET_MODE): the daemon, and the group of its callers. */
  socketOwner: SocketOwner;
  bundle: string;
  args: string[];
  runDir: string;
  /** Listening sockets the supervisor holds for this daemon, passed after its RPC socket. */
  heldListeners?: readonly number[];
  /** Where the daemon's audit records are anchored (it writes them to the fd after its sockets). */
  anchors: AnchorFile;
}

export function setprivArgv(spec: DaemonSpec): string[] {
  if (spec.name === 'privd') return ['--pdeathsig', 'TERM', '--', process.execPath, spec.bundle, ...spec.args];
  const caps = spec.name === 'netd'
    ? ['--inh-caps', '-all,+net_admin', '--ambient-caps', '+net_admin']
    : ['--inh-caps', '-all'];
  const groups = spec.account.groups.length > 0 ? [`--groups=${spec.account.groups.join(',')}`] : ['--clear-groups'];
  return [
    `--reuid=${spec.account.uid}`, `--regid=${spec.account.gid}`, ...groups, ...caps,
    // The supervisor's death must not leave orphans running with nobody to restart or stop them.
    '--pdeathsig', 'TERM',
    '--', process.execPath, spec.bundle, ...spec.args,
  ];
}

export class DaemonProcess {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restartDelay = FIRST_RESTART_MS;
  private restartTimer: NodeJS.Timeout | null = null;
  restarts = 0;

  get daemonName(): DaemonName {
    return this.spec.name;
  }

  constructor(private readonly spec: DaemonSpec, private readonly log: Logger) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const startedAt = Date.now();
    const listening = listenUnix(join(this.spec.runDir, `${this.spec.name}.sock`), this.spec.socketOwner);
    const held = this.spec.heldListeners ?? [];
    // As systemd names the fds of one socket unit: all after the unit.
    const fdNames = Array<string>(1 + held.length).fill(`certsep-${this.spec.name}.socket`).join(':');
    // sh only sets LISTEN_PID to its own pid, which setpriv and node keep across exec.
    const listenEnv = `LISTEN_PID=$$ LISTEN_FDS=${1 + held.length} LISTEN_FDNAMES=${fdNames}`;
    // The sockets are fds 3… without a gap (sd_listen_fds(3)); the anchor pipe comes after them.
    const anchorFd = 4 + held.length;
    const child = spawn('/bin/sh', ['-c', `${listenEnv} exec "$@"`, 'sh', 'setpriv', ...setprivArgv(this.spec)], {
      stdio: ['ignore', 'inherit', 'inherit', listening.fd, ...held, 'pipe'],
      env: { ...daemonEnvironment(), [ANCHOR_FD_VARIABLE]: String(anchorFd) },
      // Like a unit's default: not wherever root's shell was when it started the supervisor.
      cwd: '/',
    });
    listening.closeOurCopy();
    this.spec.anchors.follow(child.stdio[anchorFd] as Readable);
    this.child = child;
    if (child.pid) writeFileSync(this.pidFile(), `${child.pid}\n`, { mode: 0o644 });
    this.log.info({ daemon: this.spec.name, pid: child.pid, uid: this.spec.account.uid }, 'started');
    child.once('exit', (code, signal) => {
      this.child = null;
      if (this.stopping) return;
      if (Date.now() - startedAt >= HEALTHY_AFTER_MS) this.restartDelay = FIRST_RESTART_MS;
      this.log.warn({ daemon: this.spec.name, code, signal, restartInMs: this.restartDelay }, 'daemon exited; restarting');
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.restarts += 1;
        this.start();
      }, this.restartDelay);
      this.restartDelay = Math.min(this.restartDelay * 2, MAX_RESTART_MS);
    });
  }

  /** Passes a signal on to the running daemon (SIGHUP: re-read the config). */
  signal(signal: NodeJS.Signals): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    rmSync(this.pidFile(), { force: true });
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  private pidFile(): string {
    return join(this.spec.runDir, `${this.spec.name}.pid`);
  }
}

/**
 * A listening Unix socket at path, mode 0660, owned by the daemon and its callers' group (as the
 * .socket units make it): everyone else is refused by the file system. Bound under a temporary
 * name, given its owner and mode, and only then renamed into place (so it is never open to others
 * for a moment), because Node unlinks a socket's bound path when it closes its copy, and the
 * daemon keeps using the socket after that.
 */
export function listenUnix(path: string, owner: SocketOwner): { fd: number; closeOurCopy: () => void } {
  const temp = `${path}.${process.pid}.new`;
  rmSync(temp, { force: true });
  const server = createServer();
  // For a path, listen() binds and listens synchronously: no connection can be accepted here
  // before closeOurCopy(), since the event loop does not run in between.
  server.listen(temp);
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  chownSync(temp, owner.uid, owner.gid);
  chmodSync(temp, SOCKET_MODE);
  renameSync(temp, path);
  return { fd, closeOurCopy: () => server.close() };
}
