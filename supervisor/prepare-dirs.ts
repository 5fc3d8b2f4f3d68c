// What tmpfiles.d and StateDirectory= do under systemd: the run, state and audit directories with
// the owners and modes the daemons expect, made before any daemon starts. Each daemon owns only
// its own state directory and its own audit file; everything above them belongs to root.
import { chmodSync, chownSync, closeSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { DaemonName } from '../proto/api.ts';
import type { Account } from './accounts.ts';

export function prepareDirectories(config: Config, accounts: Record<DaemonName, Account>): void {
  for (const dir of [config.paths.runDir, config.paths.stateDir, config.paths.auditDir]) ownedDir(dir, { uid: 0, gid: 0 }, 0o755);
  for (const [daemon, account] of Object.entries(accounts) as [DaemonName, Account][]) {
    ownedDir(join(config.paths.stateDir, daemon), account, 0o700);
    const auditFile = join(config.paths.auditDir, `${daemon}.audit.jsonl`);
    closeSync(openSync(auditFile, 'a', 0o640));
    chownSync(auditFile, account.uid, account.gid);
    chmodSync(auditFile, 0o640);
  }
}

function ownedDir(dir: string, owner: Account, mode: number): void {
  mkdirSync(dir, { recursive: true, mode });
  // A symlink here could point root's chown at anything: refuse instead of following it.
  if (lstatSync(dir).isSymbolicLink()) throw new Error(`${dir} is a symbolic link; refusing to chown it`);
  chownSync(dir, owner.uid, owner.gid);
  chmodSync(dir, mode);
}
