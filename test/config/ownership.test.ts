import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../config/error.ts';
import { assertRootOwnedConfig } from '../../config/ownership.ts';
import { waitFor } from '../harness/proc.ts';
import { assertBuilt, canConnectUnix, prepareDaemonDirs, writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';

const asRoot = process.getuid?.() === 0;

/** The E_CONFIG_PERMS message assertRootOwnedConfig throws for path; fails the test if it passes. */
function refusal(path: string): string {
  try {
    assertRootOwnedConfig(path);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'E_CONFIG_PERMS');
    return err.message;
  }
  assert.fail(`${path} was accepted`);
}

function writeConfig(dir: string, mode: number, uid = 0): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'certsep.yaml');
  writeFileSync(path, 'rpc: {}\n');
  chmodSync(path, mode);
  chownSync(path, uid, 0);
  return path;
}

describe('assertRootOwnedConfig', { skip: asRoot ? false : 'needs root to create root-owned files' }, () => {
  let base = '';
  before(() => {
    base = makeTempDir('config-ownership'); // root:root 0755 with root-owned, non-writable ancestors
  });
  after(() => removeTempDir(base));

  it('accepts a root-owned 0644 config in root-owned 0755 directories', () => {
    const path = writeConfig(join(base, 'good'), 0o644);
    assert.doesNotThrow(() => assertRootOwnedConfig(path));
  });

  it('refuses a group-writable config file and names it', () => {
    const path = writeConfig(join(base, 'group-writable'), 0o664);
    assert.equal(refusal(path), `certsep.yaml: refusing to trust ${path}: ${path} is writable by its group (mode 0664)`);
  });

  it('refuses a config in a world-writable directory, even a sticky one, and names the directory', () => {
    const dir = join(base, 'world-writable');
    const path = writeConfig(dir, 0o644);
    chmodSync(dir, 0o1777);
    assert.match(refusal(path), new RegExp(`: ${dir} is writable by everyone \\(mode 1777\\)$`));
  });

  it('refuses a config owned by another user', () => {
    const path = writeConfig(join(base, 'not-root'), 0o644, 65534);
    assert.match(refusal(path), /is owned by uid 65534, not root$/);
  });

  it('refuses a config reached through a symlink into a writable directory', () => {
    const unsafeDir = join(base, 'unsafe-target');
    writeConfig(unsafeDir, 0o644);
    chmodSync(unsafeDir, 0o777);
    const linkDir = join(base, 'links');
    mkdirSync(linkDir, { mode: 0o755 });
    const link = join(linkDir, 'certsep.yaml');
    symlinkSync(join(unsafeDir, 'certsep.yaml'), link);
    assert.match(refusal(link), new RegExp(`: ${unsafeDir} is writable by everyone \\(mode 0777\\)$`));
  });

  it('accepts a config reached through a symlink when everything on the way is root-only', () => {
    writeConfig(join(base, 'real'), 0o600);
    const link = join(base, 'alias.yaml');
    symlinkSync('real/certsep.yaml', link);
    assert.doesNotThrow(() => assertRootOwnedConfig(link));
  });

  it('refuses a missing config with the reason', () => {
    assert.match(refusal(join(base, 'absent.yaml')), /cannot check it: ENOENT/);
  });
});

describe('the config path is checked as the kernel resolves it', { skip: asRoot ? false : 'needs root to create root-owned files' }, () => {
  let base = '';
  let userDir = '';
  let viaDotDot = '';
  before(() => {
    base = makeTempDir('config-dotdot');
    // The admin's directory holds a harmless config and a link into a directory another user owns.
    writeConfig(join(base, 'etc'), 0o644);
    userDir = join(base, 'home-other');
    mkdirSync(join(userDir, 'sub'), { recursive: true });
    writeTestConfig(userDir);
    prepareDaemonDirs(userDir, 'privd', null);
    chownSync(userDir, TEST_IDS.other.uid, TEST_IDS.other.gid);
    chownSync(join(userDir, 'certsep.yaml'), TEST_IDS.other.uid, TEST_IDS.other.gid);
    symlinkSync('../home-other/sub', join(base, 'etc', 'link'));
    // The kernel reads <userDir>/certsep.yaml (link, then its parent); a lexical `..` would check etc/certsep.yaml.
    viaDotDot = `${base}/etc/link/../certsep.yaml`;
  });
  after(() => removeTempDir(base));

  it('a symlink followed by .. is walked before the .. is applied', () => {
    assert.match(refusal(viaDotDot), new RegExp(`: ${userDir} is owned by uid ${TEST_IDS.other.uid}, not root$`));
  });

  it('privd refuses to start on a config reached through link/.. into a directory another user owns', async () => {
    const socket = join(base, 'privd.sock');
    const privd = spawn(process.execPath, [assertBuilt('privd'), '--config', viaDotDot, '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    privd.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    let code: number | null | undefined;
    privd.once('close', (c) => (code = c)); // 'close': its stderr is read to the end by then
    // Either it exits (the check held) or it starts serving the other user's config.
    await waitFor(async () => code !== undefined || (await canConnectUnix(socket)), 30_000, 'privd to exit or listen');
    const outcome = { code: code === undefined ? 'listening' as const : code };
    if (outcome.code === 'listening') privd.kill('SIGKILL');
    assert.equal(outcome.code, 78, `privd must refuse the config; stderr: ${stderr}`);
    assert.match(stderr, /E_CONFIG_PERMS|refusing to trust/);
    assert.match(stderr, new RegExp(`${userDir} is owned by uid ${TEST_IDS.other.uid}`));
  });
});
