// Scratch directories for tests. They live under a root-owned 0755 base, not /tmp or /var/tmp:
// certsep's config-ownership checks refuse a path with a world-writable (sticky) ancestor, and the
// daemons under test run as other uids that must be able to traverse into these directories.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const TEST_BASE = '/var/lib/certsep-test';

function ensureBase(): void {
  mkdirSync(TEST_BASE, { recursive: true, mode: 0o755 });
  chownSync(TEST_BASE, 0, 0);
  chmodSync(TEST_BASE, 0o755);
  for (let dir = TEST_BASE; dir !== '/'; dir = dirname(dir)) {
    const st = statSync(dir);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw new Error(`${dir} must be owned by root and not group/world-writable to hold test directories`);
    }
  }
}

// Returns an absolute path, root:root 0755, unique to this call.
export function makeTempDir(prefix: string): string {
  ensureBase();
  const safe = prefix.replace(/[^A-Za-z0-9._-]/g, '_');
  const dir = mkdtempSync(join(TEST_BASE, `${safe}-`));
  chmodSync(dir, 0o755);
  return dir;
}

// CERTSEP_TEST_KEEP=1 keeps directories (and the peers' logs in them) for a post-mortem.
export function removeTempDir(dir: string): void {
  const abs = resolve(dir);
  if (!abs.startsWith(`${TEST_BASE}/`)) throw new Error(`refusing to remove ${abs}: not under ${TEST_BASE}`);
  if (process.env.CERTSEP_TEST_KEEP === '1') {
    process.stderr.write(`# kept ${abs}\n`);
    return;
  }
  rmSync(abs, { recursive: true, force: true });
}
