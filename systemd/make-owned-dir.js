// Run by install (node reads it on stdin, inside the target tree): make DIR, with any missing
// parents, and give DIR itself to UID:GID with MODE, as root, without ever following a path that
// someone other than root can change. Used for <webroot>/.well-known/acme-challenge, which acmed
// must own while the web server's user may own the web root or .well-known and could replace any
// of them with a symlink (to /etc, to another site) between a check and a chown.
//   node - DIR UID GID MODE < make-owned-dir.js   prints "created DIR" when it made DIR
// How: the walk moves into each directory (chdir) and checks it is the one it looked at, so no
// later component is looked up by a path anyone could swap. A symlink is followed only where the
// directory holding it is root's alone (as root put it there); in a directory another user can
// write, a symlink is refused. DIR is opened O_NOFOLLOW|O_DIRECTORY and changed through that fd.
'use strict';
const fs = require('node:fs');

const [dir, uidText, gidText, modeText] = process.argv.slice(2);
const MAX_SYMLINKS = 40;

function refuse(message) {
  process.stderr.write(`refusing to make ${dir} acmed's: ${message}\n`);
  process.exit(3);
}

/** Why the current directory's entries are not root's alone, or null when they are. */
function whoElseWrites(where) {
  const st = fs.statSync('.');
  if (st.uid !== 0) return `${where} belongs to uid ${st.uid}`;
  if ((st.mode & 0o022) !== 0) return `${where} is writable by ${(st.mode & 0o002) !== 0 ? 'everyone' : 'its group'}`;
  return null;
}

const usable = dir && dir.startsWith('/') && /^[0-9]+$/.test(uidText) && /^[0-9]+$/.test(gidText)
  && /^0[0-7]{3}$/.test(modeText);
if (!usable) {
  refuse('usage: node - DIR UID GID MODE');
}
const mode = parseInt(modeText, 8);
const pending = dir.split('/').filter((c) => c !== '' && c !== '.');
let where = '/';
let symlinks = 0;
process.chdir('/');
process.umask(0o022);
while (pending.length > 1) {
  const name = pending.shift();
  if (name === '..') {
    process.chdir('..');
    where = where === '/' ? '/' : where.slice(0, where.lastIndexOf('/')) || '/';
    continue;
  }
  const path = where === '/' ? `/${name}` : `${where}/${name}`;
  let st;
  try {
    st = fs.lstatSync(name);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    fs.mkdirSync(name, 0o755); // root's: a missing parent is made by root, in the directory checked below
    st = fs.lstatSync(name);
  }
  if (st.isSymbolicLink()) {
    const other = whoElseWrites(where);
    if (other) refuse(`${path} is a symbolic link and ${other}`);
    if (++symlinks > MAX_SYMLINKS) refuse(`too many symbolic links resolving ${dir}`);
    const target = fs.readlinkSync(name);
    pending.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
    if (target.startsWith('/')) {
      process.chdir('/');
      where = '/';
    }
    continue;
  }
  if (!st.isDirectory()) refuse(`${path} is not a directory`);
  process.chdir(name);
  const here = fs.statSync('.');
  if (here.dev !== st.dev || here.ino !== st.ino) refuse(`${path} was replaced while install walked it`);
  where = path;
}

const name = pending[0];
const path = where === '/' ? `/${name}` : `${where}/${name}`;
let created = false;
try {
  fs.mkdirSync(name, mode);
  created = true;
} catch (e) {
  if (e.code !== 'EEXIST') throw e;
}
let fd;
try {
  fd = fs.openSync(name, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
} catch (e) {
  // A symlink fails with ELOOP or ENOTDIR (O_DIRECTORY is checked first on some kernels).
  if (e.code !== 'ELOOP' && e.code !== 'ENOTDIR') throw e;
  refuse(`${path} is ${fs.lstatSync(name).isSymbolicLink() ? 'a symbolic link' : 'not a directory'}`);
}
fs.fchownSync(fd, Number(uidText), Number(gidText));
fs.fchmodSync(fd, mode);
fs.closeSync(fd);
if (created) process.stdout.write(`created ${dir}\n`);
