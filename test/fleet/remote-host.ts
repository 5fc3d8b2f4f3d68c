// A "remote host" for the fleet tests: its own network namespace (a veth to the caller's) and its
// own mount namespace in which a tmpfs holds everything secret (keyd's keys, privd's lineage, the
// installed privkey.pem): the caller's file system never sees it, so a test can search it for a
// remote's key. In it run certsep's remote role as install --remote-only sets it up: keyd and privd
// under their uids, a real nginx serving the certificate, and a real sshd whose only login is the
// remote user with the central key restricted to `certsepctl remote-serve` (command=,restrict and
// ExposeAuthInfo, like the installer's sshd_config.d snippet). passwd/group are the caller's plus
// that user, bind-mounted inside the namespace only.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCommand, trackDaemon, waitFor, waitForExit, canConnect, type CommandResult } from '../harness/proc.ts';
import { assertBuilt, testUsers } from '../harness/suite.ts';
import { makeTempDir } from '../harness/tmp.ts';
import { setprivArgs, TEST_IDS, type Identity } from '../harness/uids.ts';

export const TLS_PORT = 8443;
export const REMOTE_USER = 'certsep-remote';

export interface RemoteHost {
  name: string;
  address: string;
  dir: string;
  /** The sshd host key line to pin in the central config ("ssh-ed25519 AAAA…"). */
  hostKey(): string;
  /** A command inside the host's namespaces, as root. */
  exec(cmd: string, args: readonly string[]): Promise<CommandResult>;
  readPrivate(path: string): Promise<string>;
  privateDir: string;
  auditLines(daemon: 'remote' | 'privd' | 'keyd'): Record<string, unknown>[];
  /** Makes this host's privd trust the roots in pemPath (its CA's roots: file, read at each install). */
  trustRoots(pemPath: string): void;
  /** nginx's config gets a broken (or, with '', a clean) extra include; not reloaded. */
  breakNginx(broken: boolean): void;
  stopSshd(): Promise<void>;
  startSshd(): Promise<void>;
  regenerateHostKey(): Promise<void>;
  stop(): Promise<void>;
}

/** certificates: name → domains, as the central config has them; nginx serves "www" (the first). */
export async function startRemoteHost(name: string, ns: string, address: string, certificates: Record<string, string[]>, centralPublicKey: string): Promise<RemoteHost> {
  const dir = makeTempDir(`fleet-${name}`);
  const etc = join(dir, 'etc');
  const audit = join(dir, 'audit');
  const nginxDir = join(dir, 'nginx');
  const priv = join(dir, 'private');
  for (const d of [etc, audit, nginxDir, priv, ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => join(nginxDir, 'temp', t))]) mkdirSync(d, { recursive: true, mode: 0o755 });
  writeFileSync(join(etc, 'passwd'), `${readFileSync('/etc/passwd', 'utf8').trimEnd()}\n${REMOTE_USER}:x:${TEST_IDS.remote.uid}:${TEST_IDS.remote.gid}:certsep remote:/:/bin/sh\n`);
  writeFileSync(join(etc, 'group'), `${readFileSync('/etc/group', 'utf8').trimEnd()}\n${REMOTE_USER}:x:${TEST_IDS.remote.gid}:\n`);

  const anchor = trackDaemon(spawn('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c',
    `mount -t tmpfs -o mode=0755,size=64m certsep-${name} ${priv} && mount --bind ${etc}/passwd /etc/passwd && mount --bind ${etc}/group /etc/group && exec sleep infinity`,
  ], { stdio: 'ignore' }));
  const logs: ChildProcess[] = [];
  const stop = async () => {
    for (const child of [...logs].reverse()) child.kill('SIGTERM');
    for (const child of logs) await waitForExit(child, 10_000).catch(() => undefined);
    anchor.kill('SIGKILL');
    await waitForExit(anchor, 5_000).catch(() => undefined);
  };
  try {
    await waitFor(() => readFileSync(`/proc/${anchor.pid}/comm`, 'utf8').trim() === 'sleep', 10_000, `${name}'s namespaces`);
    const inside = (cmd: string, args: readonly string[]) => ['-t', String(anchor.pid), '-m', '-n', '--', cmd, ...args];
    const exec = (cmd: string, args: readonly string[]) => runCommand('nsenter', inside(cmd, args), { timeoutMs: 60_000 });
    const must = async (cmd: string, args: readonly string[]) => {
      const r = await exec(cmd, args);
      if (r.code !== 0) throw new Error(`${name}: ${cmd} ${args.join(' ')} failed: ${r.stderr}`);
      return r;
    };
    const startInside = (id: Identity | null, cmd: string, args: readonly string[], log: string): ChildProcess => {
      const argv = id ? inside('setpriv', setprivArgs(id, cmd, args)) : inside(cmd, args);
      const out = join(dir, log);
      const child = trackDaemon(spawn('nsenter', argv, { stdio: ['ignore', 'pipe', 'pipe'] }));
      child.stdout!.on('data', (b: Buffer) => appendFileSync(out, b));
      child.stderr!.on('data', (b: Buffer) => appendFileSync(out, b));
      logs.push(child);
      return child;
    };

    // The secret side, made inside the namespace: state dirs, sockets, targets with a placeholder.
    const target = join(priv, 'targets', 'www');
    await must('/bin/sh', ['-c', [
      `mkdir -p ${priv}/run ${priv}/state/keyd ${priv}/state/privd ${Object.keys(certificates).map((cert) => join(priv, 'targets', cert)).join(' ')}`,
      // keyd (its own uid) and privd (root) each create their socket here; in production systemd does.
      `chmod 1777 ${priv}/run`,
      `chown ${TEST_IDS.keyd.uid}:${TEST_IDS.keyd.gid} ${priv}/state/keyd && chmod 700 ${priv}/state/keyd ${priv}/state/privd`,
      `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=placeholder -days 2 -keyout ${target}/privkey.pem -out ${target}/fullchain.pem 2>/dev/null`,
      `chmod 600 ${target}/privkey.pem`,
    ].join(' && ')]);
    for (const [daemon, id] of [['keyd', TEST_IDS.keyd], ['privd', null], ['remote', TEST_IDS.remote]] as const) {
      const file = join(audit, `${daemon}.audit.jsonl`);
      writeFileSync(file, '', { mode: 0o640 });
      if (id) chownSync(file, id.uid, id.gid);
    }

    const nginxConf = join(nginxDir, 'nginx.conf');
    const nginxArgs = ['-p', nginxDir, '-c', nginxConf, '-e', join(nginxDir, 'error.log')];
    writeFileSync(join(nginxDir, 'extra.conf'), '');
    writeFileSync(nginxConf, `daemon off;
  worker_processes 1;
  pid ${nginxDir}/nginx.pid;
  error_log ${nginxDir}/error.log notice;
  events { worker_connections 64; }
  http {
    access_log off;
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${nginxDir}/temp/${t};`).join('\n')}
    include ${nginxDir}/extra.conf;
    server {
      listen ${address}:${TLS_PORT} ssl;
      server_name _;
      ssl_certificate ${target}/fullchain.pem;
      ssl_certificate_key ${target}/privkey.pem;
      return 200 "${name}\\n";
    }
  }
  `);
    const configPath = join(etc, 'certsep.yaml');
    const rootsPath = join(etc, 'ca-roots.pem');
    writeFileSync(configPath, stringify({
      users: { ...testUsers(), remote: TEST_IDS.remote.uid },
      paths: { runDir: join(priv, 'run'), stateDir: join(priv, 'state'), auditDir: audit },
      // The remote's privd verifies each delivered chain to its own roots for the CA.
      cas: { default: { directory: 'letsencrypt', roots: rootsPath } },
      services: {
        nginx: { check: [['nginx', '-t', '-q', ...nginxArgs]], reload: { command: ['nginx', '-s', 'reload', ...nginxArgs] } },
      },
      certificates: Object.entries(certificates).map(([cert, domains]) => ({
        name: cert, domains, keyTypes: ['ec-p256'], targets: [{ dir: join(priv, 'targets', cert), mode: '0600', files: ['fullchain', 'privkey'], services: ['nginx'] }],
      })),
    }), { mode: 0o644 });

    // sshd: host key, the one restricted key, and a config like install --remote-only's snippet.
    const hostKeyPath = join(etc, 'ssh_host_ed25519_key');
    const makeHostKey = () => runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}-host`, '-f', hostKeyPath]);
    await makeHostKey();
    const ctl = assertBuilt('ctl');
    writeFileSync(join(etc, 'authorized_keys'), `command="${process.execPath} ${ctl} --config ${configPath} remote-serve",restrict ${centralPublicKey}\n`, { mode: 0o644 });
    writeFileSync(join(etc, 'sshd_config'), `ListenAddress ${address}:22
  HostKey ${hostKeyPath}
  PidFile ${join(dir, 'sshd.pid')}
  UsePAM no
  StrictModes yes
  PermitRootLogin no
  AllowUsers ${REMOTE_USER}
  AuthorizedKeysFile ${join(etc, 'authorized_keys')}
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  ExposeAuthInfo yes
  DisableForwarding yes
  PermitTTY no
  PermitUserRC no
  LogLevel VERBOSE
  `);
    chmodSync(join(etc, 'sshd_config'), 0o644);
    let sshd: ChildProcess | null = null;
    const startSshd = async () => {
      await must('mkdir', ['-p', '/run/sshd']);
      sshd = startInside(null, '/usr/sbin/sshd', ['-D', '-e', '-f', join(etc, 'sshd_config')], 'sshd.log');
      await waitFor(() => canConnect(22, address), 10_000, `${name}'s sshd`);
    };

    startInside(TEST_IDS.keyd, process.execPath, [assertBuilt('keyd'), '--config', configPath, '--socket-mode', '0666'], 'keyd.log');
    startInside(null, process.execPath, [assertBuilt('privd'), '--config', configPath, '--socket-mode', '0666'], 'privd.log');
    startInside(null, 'nginx', nginxArgs, 'nginx.log');
    const listening = async (daemon: string) => (await exec('test', ['-S', join(priv, 'run', `${daemon}.sock`)])).code === 0;
    await waitFor(async () => (await listening('keyd')) && (await listening('privd')), 15_000, `${name}'s keyd and privd (logs in ${dir})`);
    await waitFor(() => canConnect(TLS_PORT, address), 10_000, `${name}'s nginx`);
    await startSshd();

    return {
      name,
      address,
      dir,
      privateDir: priv,
      hostKey: () => readFileSync(`${hostKeyPath}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' '),
      exec,
      readPrivate: async (path) => (await must('cat', [path])).stdout,
      auditLines: (daemon) => readFileSync(join(audit, `${daemon}.audit.jsonl`), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
      trustRoots: (pemPath) => writeFileSync(rootsPath, readFileSync(pemPath), { mode: 0o644 }),
      breakNginx: (broken) => writeFileSync(join(nginxDir, 'extra.conf'), broken ? 'this_is_not_a_directive on;\n' : ''),
      stopSshd: async () => {
        // The listener and every session it forked (ssh ControlMaster connections included): the
        // sshd processes in THIS host's network namespace, never another host's or the machine's.
        const netns = readlinkSync(`/proc/${anchor.pid}/ns/net`);
        for (const pid of readdirSync('/proc').filter((p) => /^[0-9]+$/.test(p))) {
          try {
            if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sshd' && readlinkSync(`/proc/${pid}/ns/net`) === netns) process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
        if (sshd) await waitForExit(sshd, 10_000).catch(() => undefined);
        sshd = null;
      },
      startSshd,
      regenerateHostKey: async () => {
        rmSync(hostKeyPath, { force: true });
        rmSync(`${hostKeyPath}.pub`, { force: true });
        await makeHostKey();
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
