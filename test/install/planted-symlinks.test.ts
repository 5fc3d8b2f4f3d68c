// Re-running install must never let root follow a path an unprivileged user can change: deployd
// owns its state directory (so its ssh directory and key files), and a web server's user may own
// its web root and .well-known. Each plants a symlink to a file or directory of root's, as that
// user in the tree (setpriv with the tree's uid), and install runs again: root's file must stay
// as it was. The tree is an `install --root DIR` tree (install-tree.ts), no container.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCommand } from '../harness/proc.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { execAs, TEST_IDS, type Identity } from '../harness/uids.ts';
import { install, makeTree, output, treeAccount, whyInstallTreeCannotRun } from './install-tree.ts';

const SSH = 'var/lib/certsep/deployd/ssh';
const WEBROOT = 'srv/site';
const CHALLENGE = `${WEBROOT}/.well-known/acme-challenge`;
const WEB_USER = TEST_IDS.other;

describe('install run again after deployd or a web user planted symlinks', { skip: whyInstallTreeCannotRun(), timeout: 600_000 }, () => {
  let dir: string;
  let root: string;
  let deploy: Identity;

  /** A root file (0600) or directory (0700) in the tree that no one else may get. */
  const victim = (name: string, kind: 'file' | 'dir'): string => {
    const path = join(root, 'etc', name);
    if (kind === 'dir') mkdirSync(path, { mode: 0o700 });
    else writeFileSync(path, 'root:secret\n', { mode: 0o600 });
    return path;
  };
  const modeOwner = (path: string) => {
    const st = statSync(path);
    return `${(st.mode & 0o7777).toString(8).padStart(4, '0')} ${st.uid}:${st.gid}`;
  };
  /** Replaces path (inside the tree) with a relative symlink to target, as the given user. */
  const plantAs = async (id: Identity, path: string, target: string) => {
    const r = await execAs(id, 'sh', ['-c', 'rm -rf "$1" && ln -s "$2" "$1"', 'sh', join(root, path), target]);
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    dir = makeTempDir('install-symlinks');
    root = await makeTree(dir);
    mkdirSync(join(root, 'etc/certsep'), { recursive: true });
    writeFileSync(join(root, 'etc/certsep/certsep.yaml'), `cas:
  default: { directory: letsencrypt }
certificates:
  - name: site
    domains: [site.example.com]
    challenge: { type: http-01-webroot, webroot: /${WEBROOT} }
    targets:
      - dir: /etc/site-certs
        files: [fullchain, privkey]
`);
    // The web server's user owns its web root and .well-known.
    mkdirSync(join(root, WEBROOT, '.well-known'), { recursive: true, mode: 0o755 });
    for (const p of [WEBROOT, `${WEBROOT}/.well-known`]) chownSync(join(root, p), WEB_USER.uid, WEB_USER.gid);
    const first = await install(root, '--fleet');
    assert.equal(first.code, 0, output(first));
    deploy = treeAccount(root, 'certsep-deploy');
  });
  after(() => removeTempDir(dir));

  test('the first install makes acme-challenge acmed\'s inside the web user\'s .well-known', () => {
    const acme = treeAccount(root, 'certsep-acme');
    assert.equal(modeOwner(join(root, CHALLENGE)), `0755 ${acme.uid}:${acme.gid}`);
    assert.equal(modeOwner(join(root, SSH, 'id_ed25519')), `0600 ${deploy.uid}:${deploy.gid}`);
  });

  test('a planted symlink in deployd\'s ssh directory is not followed by install', async () => {
    const shadow = victim('shadow-like', 'file');
    const pub = readFileSync(join(root, SSH, 'id_ed25519.pub'));
    await plantAs(deploy, `${SSH}/id_ed25519.pub`, '../../../../../etc/shadow-like');
    const again = await install(root);
    assert.equal(modeOwner(shadow), '0600 0:0', `root's file was handed to deployd:\n${output(again)}`);
    assert.equal(readFileSync(shadow, 'utf8'), 'root:secret\n');
    assert.doesNotMatch(again.stdout, /root:secret/, 'install printed root\'s file as deployd\'s key');
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /id_ed25519\.pub is not a regular file or directory \(a symbolic link\?\)/);
    rmSync(join(root, SSH, 'id_ed25519.pub'));
    writeFileSync(join(root, SSH, 'id_ed25519.pub'), pub);
    chownSync(join(root, SSH, 'id_ed25519.pub'), deploy.uid, deploy.gid);
  });

  test('deployd\'s ssh directory replaced by a symlink to a root directory is not followed by install', async () => {
    const keys = victim('root-keys', 'dir');
    const saved = join(dir, 'ssh-saved');
    const copied = await runCommand('cp', ['-a', join(root, SSH), saved]);
    assert.equal(copied.code, 0, copied.stderr);
    await plantAs(deploy, SSH, '../../../../etc/root-keys');
    const again = await install(root);
    assert.equal(modeOwner(keys), '0700 0:0', `root's directory was handed to deployd:\n${output(again)}`);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /deployd\/ssh is not a regular file or directory/);
    rmSync(join(root, SSH));
    const r = await runCommand('cp', ['-a', saved, join(root, SSH)]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('a web user\'s acme-challenge replaced by a symlink to a root directory is not followed by install', async () => {
    const secrets = victim('root-secrets', 'dir');
    await plantAs(WEB_USER, CHALLENGE, '../../../etc/root-secrets');
    const again = await install(root);
    assert.equal(modeOwner(secrets), '0700 0:0', `root's directory was handed to acmed:\n${output(again)}`);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, new RegExp(`refusing to make /${CHALLENGE} acmed's: /${CHALLENGE} is a symbolic link`));
  });

  test('a web user\'s .well-known replaced by a symlink into root\'s directories is not followed by install', async () => {
    const other = victim('other-site', 'dir');
    mkdirSync(join(other, 'acme-challenge'), { mode: 0o700 });
    await plantAs(WEB_USER, `${WEBROOT}/.well-known`, '../../etc/other-site');
    const again = await install(root);
    assert.equal(modeOwner(join(other, 'acme-challenge')), '0700 0:0', `root's directory was handed to acmed:\n${output(again)}`);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, new RegExp(`refusing to make /${CHALLENGE} acmed's: /${WEBROOT}/\\.well-known is a symbolic link and /${WEBROOT} belongs to uid ${WEB_USER.uid}`));
  });

  test('once the web user\'s links are gone, install makes acme-challenge acmed\'s again', async () => {
    rmSync(join(root, WEBROOT, '.well-known'));
    const again = await install(root);
    assert.equal(again.code, 0, output(again));
    assert.match(again.stdout, new RegExp(`created /${CHALLENGE}`));
    const acme = treeAccount(root, 'certsep-acme');
    assert.equal(modeOwner(join(root, CHALLENGE)), `0755 ${acme.uid}:${acme.gid}`);
    assert.equal(modeOwner(join(root, WEBROOT, '.well-known')), '0755 0:0', 'a missing .well-known is made by root');
    chmodSync(join(root, WEBROOT), 0o755);
  });
});
