// Where root may write. privd writes only into a target directory that root alone controls: the
// directory and every one above it are real directories (no symlinks), owned by root and not
// writable by group or others. Otherwise an unprivileged user could swap a directory for a
// symlink between the check and the rename and make root write (and chown) a file anywhere.
import { lstatSync } from 'node:fs';
import { posix } from 'node:path';
import { RpcError } from '../proto/errors.ts';
import { PrivdErrorCode } from './api.ts';

export function assertRootControlledDir(dir: string): void {
  let path = '/';
  for (const component of ['', ...dir.split('/').filter((c) => c !== '')]) {
    path = posix.join(path, component);
    let st;
    try {
      st = lstatSync(path);
    } catch (e) {
      throw new RpcError(PrivdErrorCode.TARGET, `target directory ${dir}: cannot use ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    if (st.isSymbolicLink()) throw new RpcError(PrivdErrorCode.TARGET, `target directory ${dir}: ${path} is a symbolic link; configure the real path`);
    if (!st.isDirectory()) throw new RpcError(PrivdErrorCode.TARGET, `target directory ${dir}: ${path} is not a directory`);
    if (st.uid !== 0) throw new RpcError(PrivdErrorCode.TARGET, `target directory ${dir}: ${path} is owned by uid ${st.uid}, not root`);
    if ((st.mode & 0o022) !== 0) throw new RpcError(PrivdErrorCode.TARGET, `target directory ${dir}: ${path} is writable by group or others (mode ${mode})`);
  }
}
