// deployd's way to a remote host: the OpenSSH client, run as deployd's own uid with an argument
// array (never a shell), speaking the remote role's protocol (remote/api.ts) over the session's
// stdin/stdout. Every option that matters is on the command line (-F none: no user or system
// ssh_config can change it):
//  - the only known_hosts is the one deployd writes from the config's hostKeys, under an alias per
//    host (HostKeyAlias), and StrictHostKeyChecking=yes: an unknown or changed host key ends the
//    connection before anything is sent;
//  - BatchMode, no agent, no forwarding, only the configured identity file;
//  - ConnectTimeout and server keepalives, so a host that is down or vanishes fails the call
//    instead of hanging the run;
//  - ControlMaster reuse within a run (closeConnections() at its end).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { Duplex } from 'node:stream';
import { join } from 'node:path';
import type { Config, HostConfig } from '../config/schema.ts';
import type { ParamsIn, ResultOut } from '../proto/api.ts';
import { RpcClient } from '../proto/client.ts';
import { RpcError } from '../proto/errors.ts';
import { REMOTE_SERVE_COMMAND, remoteApi } from '../remote/api.ts';
import { writeFileAtomically } from '../runtime/write-file-atomically.ts';

type RemoteMethods = (typeof remoteApi)['methods'];

/** Told of every call and its outcome (deployd's audit log); a host-key refusal is 'refused'. */
export type CallRecorder = (method: string, params: unknown, outcome: 'ok' | 'refused' | 'error', error?: RpcError) => void;

/** How a session failed, for status and the delivery queue (the remote's own codes pass through). */
export const SshErrorCode = {
  /** The host's key is not one the config lists: refused before anything was sent. */
  HOST_KEY: 'E_HOST_KEY',
  /** Connection refused, timed out, no route, name not resolved: the host is down or unreachable. */
  UNREACHABLE: 'E_HOST_UNREACHABLE',
  /** The host refused deployd's key. */
  AUTH: 'E_SSH_AUTH',
  /** ssh failed otherwise, or the session ended mid-call. */
  SSH: 'E_SSH',
} as const;

/** Errors after which the host may well work next time: the delivery is retried. */
export const TRANSIENT_SSH_ERRORS = new Set<string>([SshErrorCode.UNREACHABLE, SshErrorCode.SSH, 'E_CLOSED', 'E_TIMEOUT', 'E_UNAVAILABLE']);

const MAX_STDERR = 4096;

export function sshDir(stateDir: string): string {
  return join(stateDir, 'ssh');
}

/** Rewrites deployd's known_hosts from the config: the hosts' listed keys and nothing else. */
export function writeKnownHosts(config: Config, stateDir: string): string {
  const dir = sshDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lines = Object.entries(config.hosts).flatMap(([name, host]) => host.hostKeys.map((key) => `${hostKeyAlias(name)} ${key}`));
  writeFileAtomically(dir, 'known_hosts', lines.length > 0 ? `${lines.join('\n')}\n` : '', 0o600);
  return join(dir, 'known_hosts');
}

function hostKeyAlias(name: string): string {
  return `certsep-host-${name}`;
}

function sshArgs(name: string, host: HostConfig, stateDir: string): string[] {
  const dir = sshDir(stateDir);
  const options = {
    BatchMode: 'yes',
    StrictHostKeyChecking: 'yes',
    UserKnownHostsFile: join(dir, 'known_hosts'),
    GlobalKnownHostsFile: '/dev/null',
    HostKeyAlias: hostKeyAlias(name),
    CheckHostIP: 'no',
    UpdateHostKeys: 'no',
    IdentitiesOnly: 'yes',
    IdentityFile: host.identityFile,
    IdentityAgent: 'none',
    PasswordAuthentication: 'no',
    KbdInteractiveAuthentication: 'no',
    ClearAllForwardings: 'yes',
    ForwardAgent: 'no',
    PermitLocalCommand: 'no',
    ConnectTimeout: String(host.connectTimeoutSeconds),
    ServerAliveInterval: '15',
    ServerAliveCountMax: '4',
    ControlMaster: 'auto',
    // Short and fixed in length: ssh appends 17 characters while binding, and sun_path holds 108.
    ControlPath: join(dir, `cm-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`),
    ControlPersist: '120',
    LogLevel: 'ERROR',
  };
  return [
    '-F', 'none', '-T', '-x', '-a',
    ...Object.entries(options).flatMap(([key, value]) => ['-o', `${key}=${value}`]),
    '-p', String(host.port), '-l', host.user, '--', host.address, REMOTE_SERVE_COMMAND,
  ];
}

/** One ssh session to one host: remote calls in order, then close(). */
export class SshSession {
  private readonly client: RpcClient<RemoteMethods>;
  private stderr = '';
  private readonly exited: Promise<number | null>;

  private constructor(readonly host: string, private readonly child: ChildProcess, maxFrameBytes: number, private readonly recorder: CallRecorder) {
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (this.stderr.length < MAX_STDERR) this.stderr += chunk.slice(0, MAX_STDERR - this.stderr.length);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', (e) => {
        this.stderr += `cannot run ssh: ${e.message}`;
        resolve(null);
      });
    });
    const stream = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
    stream.on('error', () => undefined);
    this.client = RpcClient.over(remoteApi, stream, { maxFrameBytes });
  }

  static open(config: Config, name: string, stateDir: string, recorder: CallRecorder): SshSession {
    const host = config.hosts[name];
    if (!host) throw new RpcError('E_UNKNOWN_HOST', `no host named ${JSON.stringify(name)} in the config`);
    const child = spawn('ssh', sshArgs(name, host, stateDir), { stdio: ['pipe', 'pipe', 'pipe'], env: sshEnvironment() });
    return new SshSession(name, child, config.rpc.maxFrameBytes, recorder);
  }

  async call<K extends keyof RemoteMethods & string>(method: K, params: ParamsIn<RemoteMethods[K]>): Promise<ResultOut<RemoteMethods[K]>> {
    try {
      const answer = await this.client.call(method, params);
      this.recorder(method, params, 'ok');
      return answer;
    } catch (e) {
      let error = e instanceof RpcError ? e : new RpcError(SshErrorCode.SSH, String(e));
      if (['E_CLOSED', 'E_FRAME'].includes(error.code)) {
        // The session ended: ssh's exit status and stderr say why.
        const code = await Promise.race([this.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 2000))]);
        error = this.sessionError(code);
      }
      this.recorder(method, params, error.code === SshErrorCode.HOST_KEY ? 'refused' : 'error', error);
      throw error;
    }
  }

  async close(): Promise<void> {
    this.client.close();
    const code = await Promise.race([this.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 5000))]);
    if (code === 'running') this.child.kill('SIGTERM');
  }

  private sessionError(code: number | null | 'running'): RpcError {
    const lines = this.stderr.replace(/\r/g, '').split('\n').map((l) => l.trim()).filter(Boolean);
    if (lines.some((l) => /Host key verification failed|host key .*has changed|No \S+ host key is known/i.test(l))) {
      return new RpcError(SshErrorCode.HOST_KEY, `${this.host}: the host's key is not one listed in hosts.${this.host}.hostKeys (ssh: host key verification failed); nothing was sent`);
    }
    // A session that ends without a word (exit 255, nothing on stderr): the connection was lost.
    if (lines.length === 0 && code === 255) return new RpcError(SshErrorCode.UNREACHABLE, `${this.host}: the connection was lost (ssh exited with status 255)`);
    const said = lines.slice(-2).join('; ') || `ssh exited with status ${String(code)}`;
    // Under systemd without install --fleet's drop-in, deployd has no network at all.
    const sandboxed = /Address family not supported|Network is unreachable/i.test(said) ? ' (if deployd runs under systemd: install --fleet gives its unit network; see certsepctl doctor)' : '';
    const message = `${this.host}: ${said}${sandboxed}`;
    if (/Permission denied|Too many authentication failures/i.test(said)) return new RpcError(SshErrorCode.AUTH, message);
    if (/Connection refused|Connection timed out|timed out|No route to host|Network is unreachable|Could not resolve|Name or service not known|Connection closed by|Connection reset/i.test(said)) return new RpcError(SshErrorCode.UNREACHABLE, message);
    return new RpcError(SshErrorCode.SSH, message);
  }
}

/** Ends the ControlMaster connections a run opened (ssh -O exit per host); errors ignored. */
export function closeConnections(config: Config, hosts: Iterable<string>, stateDir: string): void {
  for (const name of hosts) {
    const host = config.hosts[name];
    if (!host) continue;
    const args = sshArgs(name, host, stateDir);
    const at = args.indexOf('--');
    spawnSync('ssh', [...args.slice(0, at), '-O', 'exit', '--', host.address], { stdio: 'ignore', env: sshEnvironment(), timeout: 5000 });
  }
}

// ssh reads nothing from the caller's environment that could redirect it (no SSH_AUTH_SOCK).
function sshEnvironment(): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C' };
}
