// privd runs as root and does what the config says, so whoever can change the config (or swap
// a directory on its path) can make root write files and run reload commands. Like sshd's
// StrictModes, refuse unless root alone could have written the file and every directory leading
// to it. Symlinks are followed component by component, so every directory actually traversed
// is checked, not just the lexical ancestors; ".." is applied to the directory reached so far,
// as the kernel does (in link/../c.yaml it is link's target's parent, not the link's).
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { basename, posix } from 'node:path';
import { ConfigError } from './error.ts';

const MAX_SYMLINKS = 40; // Linux's own limit (MAXSYMLINKS)

export function assertRootOwnedConfig(path: string): void {
  let culprit: string | null;
  try {
    // Not path.resolve(): it would drop "link/.." lexically before the link is looked at.
    culprit = findWritableByOthers(path.startsWith('/') ? path : `${process.cwd()}/${path}`);
  } catch (err) {
    culprit = `cannot check it: ${(err as NodeJS.ErrnoException).code ?? String(err)} on ${(err as NodeJS.ErrnoException).path ?? path}`;
  }
  if (culprit !== null) {
    throw new ConfigError('E_CONFIG_PERMS', [{ file: basename(path), message: `refusing to trust ${path}: ${culprit}` }]);
  }
}

/** A description of the first file or directory someone other than root could modify, or null. */
function findWritableByOthers(absolutePath: string): string | null {
  const pending = absolutePath.split('/').filter((c) => c !== '');
  let dir = '/';
  let symlinks = 0;
  const rootProblem = problemWith('/', lstatSync('/'));
  if (rootProblem) return rootProblem;

  while (pending.length > 0) {
    const component = pending.shift() as string;
    if (component === '.') continue;
    if (component === '..') {
      dir = posix.dirname(dir);
      continue;
    }
    const entry = posix.join(dir, component);
    const stats = lstatSync(entry);
    if (stats.isSymbolicLink()) {
      if (++symlinks > MAX_SYMLINKS) return `too many symbolic links resolving ${absolutePath}`;
      // The link itself cannot be changed, only replaced, which needs write access to `dir`
      // (checked already). Its target is walked like the rest of the path.
      const target = readlinkSync(entry);
      pending.unshift(...target.split('/').filter((c) => c !== ''));
      if (target.startsWith('/')) dir = '/';
      continue;
    }
    const problem = problemWith(entry, stats);
    if (problem) return problem;
    if (pending.length > 0 && !stats.isDirectory()) return `${entry} is not a directory`;
    if (pending.length === 0 && !stats.isFile()) return `${entry} is not a regular file`;
    dir = entry;
  }
  return null;
}

function problemWith(path: string, stats: Stats): string | null {
  const mode = (stats.mode & 0o7777).toString(8).padStart(4, '0');
  if (stats.uid !== 0) return `${path} is owned by uid ${stats.uid}, not root`;
  // Sticky world-writable directories (/tmp) are refused too: anyone can create a name there.
  if ((stats.mode & 0o022) !== 0) return `${path} is writable by ${(stats.mode & 0o002) !== 0 ? 'everyone' : 'its group'} (mode ${mode})`;
  return null;
}
