// A real nginx for tests, entirely inside a scratch prefix: config, pid file, logs and temp paths.
// The master runs as root in the foreground (our child), without a `user` directive, so its workers
// run as nobody: webroot files must be world-readable. Reloads are counted from the master's
// "reconfiguring" log lines, so a test can prove a deploy did NOT reload nginx.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { descendantPids, killTree, startDaemon, waitFor, waitForExit, waitForPort } from './proc.ts';
import { makeTempDir, removeTempDir } from './tmp.ts';

export interface NginxServer {
  listen: number;
  tls?: { certPath: string; keyPath: string };
  webroot?: string;
  // Raw directives appended inside the server block.
  extra?: string;
}

export interface NginxOptions {
  servers: NginxServer[];
}

export interface Nginx {
  confPath: string;
  /** -p, -c, -e for this instance: what `nginx -t` and `nginx -s reload` need to find it. */
  args: string[];
  prefix: string;
  errorLogPath: string;
  pid(): number;
  workerPids(): number[];
  // After a reload, old workers keep answering for a moment: wait until only the current one is left.
  oldWorkersGone(): Promise<void>;
  // How many times the master began a reload since start (SIGHUP or `nginx -s reload`).
  reloadCount(): number;
  // Sends SIGHUP and waits for the outcome; rejects if nginx kept the old config.
  reload(): Promise<void>;
  writeConfig(servers: NginxServer[]): void;
  test(): { ok: boolean; output: string };
  stop(): Promise<void>;
}

const TEMP_PATHS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'];

function serverBlock(server: NginxServer): string {
  const lines = [`listen 127.0.0.1:${server.listen}${server.tls ? ' ssl' : ''};`, 'server_name _;'];
  if (server.tls) lines.push(`ssl_certificate ${server.tls.certPath};`, `ssl_certificate_key ${server.tls.keyPath};`);
  if (server.webroot) lines.push(`root ${server.webroot};`);
  if (server.extra) lines.push(server.extra);
  return `  server {\n${lines.map((l) => `    ${l}`).join('\n')}\n  }`;
}

function renderConfig(prefix: string, servers: NginxServer[]): string {
  const temp = TEMP_PATHS.map((t) => `  ${t}_temp_path ${join(prefix, 'temp', t)};`).join('\n');
  return `# written by certsep's test harness
daemon off;
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs', 'error.log')} notice;
events { worker_connections 64; }
http {
  access_log ${join(prefix, 'logs', 'access.log')};
  default_type application/octet-stream;
${temp}
${servers.map(serverBlock).join('\n')}
}
`;
}

function nginxArgs(prefix: string, confPath: string, errorLogPath: string): string[] {
  // -e: the log used before the config is read, otherwise /var/log/nginx/error.log.
  return ['-p', prefix, '-c', confPath, '-e', errorLogPath];
}

export async function startNginx(opts: NginxOptions): Promise<Nginx> {
  const prefix = makeTempDir('nginx');
  mkdirSync(join(prefix, 'logs'));
  mkdirSync(join(prefix, 'temp'));
  const confPath = join(prefix, 'nginx.conf');
  const errorLogPath = join(prefix, 'logs', 'error.log');
  const pidPath = join(prefix, 'nginx.pid');
  const args = nginxArgs(prefix, confPath, errorLogPath);
  const writeConfig = (servers: NginxServer[]): void => writeFileSync(confPath, renderConfig(prefix, servers));
  const readLog = (): string => (existsSync(errorLogPath) ? readFileSync(errorLogPath, 'utf8') : '');
  const reloadCount = (): number => (readLog().match(/#\d+: reconfiguring$/gm) ?? []).length;
  writeConfig(opts.servers);

  const master: ChildProcess = startDaemon('nginx', args, { logPath: join(prefix, 'logs', 'stderr.log') });
  try {
    await waitFor(() => {
      if (master.exitCode !== null) throw new Error(`nginx exited with ${master.exitCode}:\n${readLog()}`);
      return existsSync(pidPath);
    }, 10_000, 'nginx to write its pid file');
    await Promise.all(opts.servers.map((s) => waitForPort(s.listen)));
  } catch (e) {
    await killTree(master.pid!, 'SIGKILL');
    removeTempDir(prefix);
    throw e;
  }

  return {
    confPath,
    args,
    prefix,
    errorLogPath,
    pid: () => master.pid!,
    workerPids: () => descendantPids(master.pid!),
    async oldWorkersGone() {
      await waitFor(() => descendantPids(master.pid!).length === 1, 15_000, 'old nginx workers to exit');
    },
    reloadCount,
    async reload() {
      const before = reloadCount();
      const logBefore = readLog().length;
      process.kill(master.pid!, 'SIGHUP');
      // After "reconfiguring" the master either starts new workers or logs why it kept the old config.
      const outcome = await waitFor(() => {
        if (reloadCount() <= before) return undefined;
        // Only the master's own lines: `nginx -t` logs its [emerg] lines to the same file.
        const after = readLog().slice(logBefore);
        if (new RegExp(`\\[emerg\\] ${master.pid}#`).test(after)) return { ok: false, log: after };
        if (new RegExp(`\\] ${master.pid}#\\d+: start worker process`).test(after)) return { ok: true, log: after };
        return undefined;
      }, 10_000, 'nginx to finish reloading');
      if (!outcome.ok) throw new Error(`nginx kept its old configuration:\n${outcome.log}`);
    },
    writeConfig,
    test() {
      const result = spawnSync('nginx', ['-t', '-q', ...args], { encoding: 'utf8' });
      return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
    },
    async stop() {
      await killTree(master.pid!, 'SIGTERM');
      await waitForExit(master);
      removeTempDir(prefix);
    },
  };
}
