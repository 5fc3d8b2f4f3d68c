// doctor's probe file in a webroot, written and removed as acmed's account, not as root: the
// path runs through directories the web server's user may own (the web root, .well-known), and
// any of them can be a symlink by the time root would write. acmed's uid can write exactly where
// acmed could write the CA's token, so following a link gains nothing, and "acmed cannot write
// here" is what the check has to find out anyway. The file is opened O_EXCL|O_NOFOLLOW, so
// nothing already at its random name is written through.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Account } from '../supervisor/accounts.ts';

// Runs as acmed: writes argv[1] with argv[2], says so, and removes it when stdin closes.
const WRITER = `
const fs = require('node:fs');
const [path, content] = process.argv.slice(1);
try {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  fs.writeSync(fd, content);
  fs.fchmodSync(fd, 0o644); // the umask may have taken read bits away; the web server is another user
  fs.closeSync(fd);
} catch (e) {
  process.stdout.write('error ' + (e.code || e.message) + '\\n');
  process.exit(1);
}
process.stdout.write('written\\n');
process.stdin.resume();
process.stdin.on('end', () => {
  try {
    fs.unlinkSync(path);
  } catch (e) {
    if (e.code !== 'ENOENT') process.exitCode = 1;
  }
});
`;

export interface ProbeFile {
  /** Removes the file (as acmed) and waits for that. */
  remove(): Promise<void>;
}

/** Writes the probe as `as`; rejects with the error code ("EACCES", "ENOENT") when it cannot. */
export async function writeProbeAs(as: Account, path: string, content: string): Promise<ProbeFile> {
  const child = spawn('setpriv', [
    `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', '--inh-caps=-all', '--',
    process.execPath, '-e', WRITER, path, content,
  ], { stdio: ['pipe', 'pipe', 'ignore'], env: { PATH: '/usr/bin:/bin' } });
  const first = await firstLine(child);
  if (first !== 'written') {
    child.stdin!.end();
    throw new Error(first.startsWith('error ') ? first.slice('error '.length) : `setpriv as uid ${as.uid}: ${first}`);
  }
  return {
    remove: () => new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.stdin!.end();
    }),
  };
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.once('error', (e) => resolve(`cannot start: ${e.message}`));
    child.once('close', (code) => resolve(out.trim() || `exit ${code}`));
  });
}
