// What `systemctl enable`/`mask` leave on disk below a root: the state doctor reads for certsep's
// own units and for other schedulers' (certbot.timer), without asking a running systemd.
import { lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** `systemctl mask` points /etc/systemd/system/<unit> at /dev/null. */
export function unitMasked(root: string, unit: string): boolean {
  try {
    return readlinkSync(join(root, 'etc/systemd/system', unit)) === '/dev/null';
  } catch {
    return false;
  }
}

/** Enabled: a symlink in /etc/systemd/system/<target>.wants/ and not masked. */
export function unitEnabled(root: string, unit: string, wantedBy: string): boolean {
  return !unitMasked(root, unit) && pathExists(join(root, 'etc/systemd/system', `${wantedBy}.wants`, unit));
}
