// A real systemd (Debian bookworm, systemd 252) booted in systemd-nspawn, to run certsep's units
// as they run on a server. The debootstrapped rootfs is built once and cached; every boot gets its
// own copy, so a test never sees another test's (or an earlier run's) installed state.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { descendantPids, runCommand, startDaemon, waitFor, type CommandResult, type RunOptions } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';

const CACHE = process.env['CERTSEP_ROOTFS_CACHE'] ?? '/var/cache/certsep-test/rootfs-bookworm';
// nginx: a real service for privd to check and reload; openssh: deployd's ssh under its unit (the
// packaged sshd is masked in the cache: containers share the host's network and port 22).
// Everything else is what minbase has.
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'nginx', 'openssh-client', 'openssh-server'];
const STAMP = `bookworm minbase ${PACKAGES.join(',')} ssh-masked`;

export interface Container {
  /** The container's root directory as seen from the host. */
  readonly root: string;
  /** Host pid of the container's PID 1 (systemd). */
  readonly leader: number;
  /** Runs a command inside the container (all its namespaces, its root). */
  exec(args: readonly string[], opts?: RunOptions): Promise<CommandResult>;
  /** Runs a shell script inside the container; its stdout, or an error with all it printed. */
  sh(script: string): Promise<string>;
  stop(): Promise<void>;
}

/** Seconds the cache took to build this time (0 when it was already there). */
export async function ensureRootfs(): Promise<number> {
  if (readStamp() === STAMP) return 0;
  // Two test processes may start together: mkdir is the lock, the rename makes the cache appear whole.
  const lock = `${CACHE}.lock`;
  mkdirSync(join(CACHE, '..'), { recursive: true });
  await waitFor(() => tryLock(lock), 900_000, `the rootfs lock ${lock}`, 500);
  try {
    if (readStamp() === STAMP) return 0;
    const started = Date.now();
    const partial = `${CACHE}.partial`;
    rmSync(partial, { recursive: true, force: true });
    const r = await runCommand('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, 'bookworm', partial, debianMirror()], { timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`debootstrap failed (${r.code}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    for (const unit of ['ssh.service', 'ssh.socket']) symlinkSync('/dev/null', join(partial, 'etc/systemd/system', unit));
    writeFileSync(join(partial, '.certsep-rootfs'), `${STAMP}\n`);
    rmSync(CACHE, { recursive: true, force: true });
    renameSync(partial, CACHE);
    return (Date.now() - started) / 1000;
  } finally {
    rmdirSync(lock);
  }
}

function readStamp(): string | null {
  try {
    return readFileSync(join(CACHE, '.certsep-rootfs'), 'utf8').trim();
  } catch {
    return null;
  }
}

function tryLock(path: string): boolean {
  try {
    mkdirSync(path);
    return true;
  } catch (e) {
    // A lock older than a debootstrap can take was left by a killed run.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST' && Date.now() - statSync(path).mtimeMs > 900_000) rmdirSync(path);
    return false;
  }
}

// The host's own mirror: CI machines often reach only that one.
function debianMirror(): string {
  try {
    const sources = readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8');
    const uri = /^URIs:\s*(\S+)/m.exec(sources)?.[1];
    if (uri) return uri;
  } catch { /* fall through to the default */ }
  return 'http://deb.debian.org/debian';
}

/** Where copySuite puts the checkout inside the container: `${SUITE_SOURCE}/install` installs it. */
export const SUITE_SOURCE = '/opt/certsep-src';

/**
 * Puts the suite into a container's rootfs as a checkout would have it: install, its units, the
 * example config and the build (the bundles of `dist`, e.g. CERTSEP_SYSTEMD_DIST).
 */
export function copySuite(root: string, dist: string): void {
  const src = join(root, SUITE_SOURCE);
  mkdirSync(join(src, 'dist'), { recursive: true });
  cpSync(join(REPO, 'install'), join(src, 'install'));
  cpSync(join(REPO, 'systemd'), join(src, 'systemd'), { recursive: true });
  cpSync(join(REPO, 'certsep.example.yaml'), join(src, 'certsep.example.yaml'));
  for (const f of readdirSync(dist).filter((f) => f.endsWith('.mjs') || f.endsWith('.node'))) {
    cpSync(join(dist, f), join(src, 'dist', f));
  }
}

/**
 * Copies the cached rootfs, lets `prepare` change the copy, and boots it. The container shares the
 * host's network (no --private-network), so it reaches the test's Pebble on the host's loopback.
 */
export async function bootContainer(prepare: (root: string) => void | Promise<void>): Promise<Container & { bootSeconds: number }> {
  const dir = makeTempDir('systemd-container');
  const root = join(dir, 'rootfs');
  try {
    // cp -a: the rootfs holds device nodes, which fs.cpSync cannot copy.
    const copy = await runCommand('cp', ['-a', '--reflink=auto', CACHE, root], { timeoutMs: 300_000 });
    if (copy.code !== 0) throw new Error(`cannot copy the rootfs: ${copy.stderr}`);
    // The host's node runs there (it links only libc, libm, libstdc++ and libgcc_s, all in minbase).
    cpSync('/usr/bin/node', join(root, 'usr/bin/node'));
    // Each boot is a new machine: its own machine-id, so journald keeps its own files.
    writeFileSync(join(root, 'etc/machine-id'), '');
    await prepare(root);
  } catch (e) {
    removeTempDir(dir);
    throw e;
  }

  const started = Date.now();
  const machine = `certsep-${process.pid}`;
  const nspawn = startDaemon('systemd-nspawn', [
    '-D', root, '-b', '--register=no', '--keep-unit', '-M', machine, '--console=pipe',
    // nspawn keeps CAP_NET_ADMIN only with --private-network; netd's unit needs it to exist.
    '--capability=CAP_NET_ADMIN',
  ], { logPath: join(dir, 'console.log') });
  // nspawn's child is the container's PID 1 once it has exec'd systemd.
  const leader = await waitFor(() => {
    const pid = childOf(nspawn.pid);
    return pid !== undefined && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd' ? pid : undefined;
  }, 30_000, 'the container\'s systemd', 100);
  const exec = (args: readonly string[], opts: RunOptions = {}) =>
    // A clean environment: nothing of the test process's (NODE_OPTIONS, extra CA files) leaks in.
    runCommand('nsenter', ['-t', String(leader), '-a', 'env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', ...args], { timeoutMs: 120_000, ...opts });
  // Until PID 1 has set up its private socket, systemctl cannot even ask.
  const state = await waitFor(async () => {
    const r = await exec(['systemctl', 'is-system-running', '--wait']);
    return r.stdout.trim() !== '' ? r : undefined;
  }, 120_000, 'the container\'s boot to finish', 200);
  const bootSeconds = (Date.now() - started) / 1000;
  const sh = async (script: string) => {
    const r = await exec(['sh', '-c', script]);
    if (r.code !== 0) throw new Error(`in the container, exit ${r.code}: ${script}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const container = {
    root, leader, exec, sh, bootSeconds,
    async stop() {
      // nspawn asks the container's systemd to power off on SIGTERM.
      nspawn.kill('SIGTERM');
      await waitFor(() => nspawn.exitCode !== null || nspawn.signalCode !== null, 60_000, 'the container to power off', 200)
        .catch(() => nspawn.kill('SIGKILL'));
      removeTempDir(dir);
    },
  };
  if (!['running', 'degraded'].includes(state.stdout.trim())) {
    const failed = await exec(['systemctl', '--failed', '--no-pager']);
    const console = readFileSync(join(dir, 'console.log'), 'utf8').slice(-3000);
    await container.stop();
    throw new Error(`the container did not boot: ${state.stdout.trim()} ${state.stderr.trim()}\n${failed.stdout}\n${console}`);
  }
  return container;
}

function childOf(pid: number | undefined): number | undefined {
  if (pid === undefined || !existsSync(`/proc/${pid}/task/${pid}/children`)) return undefined;
  const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
  return first ? Number(first) : undefined;
}

/**
 * A container's processes whose command line matches, as "pid command line", read from the host's
 * /proc (minbase has no pgrep, and a shell scanning /proc would find its own command line).
 */
export function containerProcesses(box: Container, matches: RegExp): string[] {
  return descendantPids(box.leader).flatMap((pid) => {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      return [];
    }
    return matches.test(cmdline) ? [`${pid} ${cmdline}`] : [];
  });
}
