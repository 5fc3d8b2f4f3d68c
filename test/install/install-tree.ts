// A tree for `install --root DIR`, no container: this machine's sh, node, sshd, ssh-keygen, setpriv
// and account tools (with their libraries), an sshd_config like Debian's (it Includes
// sshd_config.d/*.conf) and host keys, so the installer's own checks run for real inside it.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCommand, type CommandResult } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';

const INSTALL = join(REPO, 'install');
const PROGRAMS = ['sh', 'node', 'getent', 'chown', 'useradd', 'groupadd', 'usermod', 'userdel', 'groupdel', 'sshd', 'ssh', 'ssh-keygen',
  'setpriv', 'mkdir', 'chmod'];

export function whyInstallTreeCannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: install chroots into the tree and creates accounts there';
  if (!existsSync('/usr/sbin/sshd')) return 'needs openssh-server (/usr/sbin/sshd) to copy into the tree';
  if (!existsSync(join(REPO, 'dist/certsepctl.mjs'))) return 'needs dist/: run node build.mjs';
  return undefined;
}

export async function run(cmd: string, args: readonly string[]): Promise<CommandResult> {
  const r = await runCommand(cmd, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

export function install(root: string, ...args: string[]): Promise<CommandResult> {
  return runCommand(INSTALL, ['--root', root, ...args], { timeoutMs: 120_000 });
}

export function output(r: CommandResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

// A file of this machine, at the same path in the tree, under the name it is asked for (a
// library's soname link, ld.so by /lib64): the tree's /bin, /sbin and /lib* link into its /usr.
function copyIn(root: string, path: string): void {
  const dest = join(root, path);
  if (existsSync(dest)) return;
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(path, dest);
  chmodSync(dest, statSync(path).mode & 0o7777);
}

async function copyProgram(root: string, name: string): Promise<void> {
  const path = (await run('sh', ['-c', `command -v ${name}`])).stdout.trim();
  copyIn(root, path);
  const linked = (await runCommand('ldd', [path])).stdout;
  for (const lib of linked.matchAll(/(\/\S+\.so[.\d]*)/g)) copyIn(root, lib[1]!);
}

export async function makeTree(dir: string): Promise<string> {
  const root = join(dir, 'root');
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'etc/ssh/sshd_config.d', 'run/sshd', 'usr/lib/systemd/system', 'dev', 'tmp']) {
    mkdirSync(join(root, d), { recursive: true });
  }
  for (const link of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${link}`, join(root, link));
  // sshd -t opens /dev/null.
  await run('mknod', ['-m', '0666', join(root, 'dev/null'), 'c', '1', '3']);
  for (const program of PROGRAMS) await copyProgram(root, program);
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\nsshd:!:19000::::::\n', { mode: 0o640 });
  writeFileSync(join(root, 'etc/gshadow'), 'root:*::\nnogroup:*::\n', { mode: 0o640 });
  writeFileSync(join(root, 'etc/hostname'), 'central-test\n');
  writeFileSync(join(root, 'etc/ssh/sshd_config'), 'Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM no\nSubsystem sftp /usr/lib/openssh/sftp-server\n');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'root@remote-test', '-f', join(root, 'etc/ssh/ssh_host_ed25519_key')]);
  return root;
}

/** The uid and gid an account has in the tree's /etc/passwd. */
export function treeAccount(root: string, user: string): { uid: number; gid: number } {
  const entry = readFileSync(join(root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith(`${user}:`))?.split(':');
  assert.ok(entry, `no ${user} in the tree's /etc/passwd`);
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}
