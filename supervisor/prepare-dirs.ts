// What tmpfiles.d and StateDirectory= do under systemd: the run, state and audit directories with
// the owners and modes the daemons expect, made before any daemon starts. Each daemon owns only
// its own state directory and its own audit file; everything above them belongs to root, and so
// does <auditDir>/anchors, where the supervisor anchors each daemon's audit records.
// Owners and modes are set through a file descriptor opened without following a symlink, so a
// link planted in any of these places cannot point root's chown or chmod at another file.
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { DaemonName } from '../proto/api.ts';
import type { Account } from './accounts.ts';
import { ANCHORS_DIR } from './audit-anchors.ts';

interface Owner {
  uid: number;
  gid: number;
}

const ROOT: Owner = { uid: 0, gid: 0 };

export function prepareDirectories(config: Config, accounts: Record<DaemonName, Account>): void {
  for (const dir of [config.paths.runDir, config.paths.stateDir, config.paths.auditDir]) ownedDir(dir, ROOT, 0o755);
  ownedDir(join(config.paths.auditDir, ANCHORS_DIR), ROOT, 0o755);
  for (const [daemon, account] of Object.entries(accounts) as [DaemonName, Account][]) {
    ownedDir(join(config.paths.stateDir, daemon), account, 0o700);
    ownedFile(join(config.paths.auditDir, `${daemon}.audit.jsonl`), account, 0o640);
  }
}

function ownedDir(dir: string, owner: Owner, mode: number): void {
  mkdirSync(dir, { recursive: true, mode });
  withNoFollow(dir, constants.O_RDONLY | constants.O_DIRECTORY, owner, mode);
}

function ownedFile(path: string, owner: Owner, mode: number): void {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK;
  withNoFollow(path, flags, owner, mode, (fd) => {
    if (!fstatSync(fd).isFile()) throw new Error(`${path} is not a regular file; refusing to chown it`);
  });
}

function withNoFollow(path: string, flags: number, owner: Owner, mode: number, check?: (fd: number) => void): void {
  let fd: number;
  try {
    fd = openSync(path, flags | constants.O_NOFOLLOW, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOOP') throw err;
    throw new Error(`${path} is a symbolic link; refusing to chown it`);
  }
  try {
    check?.(fd);
    fchownSync(fd, owner.uid, owner.gid);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}
