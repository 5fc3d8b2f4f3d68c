// install --remote-only and --fleet into a tree with `install --root DIR` (install-tree.ts), no
// container: the installer's `sshd -t` and `sshd -T` checks run for real inside it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../config/load.ts';
import { runCommand, type CommandResult } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { install, makeTree, output, run, whyInstallTreeCannotRun } from './install-tree.ts';

const SNIPPET = 'etc/ssh/sshd_config.d/certsep-remote.conf';
const AUTHORIZED_KEYS = 'etc/certsep/remote/authorized_keys';
const UNITS = 'etc/systemd/system';
const skip = whyInstallTreeCannotRun();

/** Paths, modes, owners and content hashes of the whole tree but its copied programs. */
function manifest(root: string): string[] {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    const abs = join(root, rel);
    const st = lstatSync(abs);
    const content = st.isFile() ? createHash('sha256').update(readFileSync(abs)).digest('hex') : st.isSymbolicLink() ? readlinkSync(abs) : '';
    lines.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${content}`);
    if (st.isDirectory() && !/^\/usr\/(bin|sbin|lib|lib64)$/.test(rel)) for (const f of readdirSync(abs).sort()) walk(`${rel}/${f}`);
  };
  walk('');
  return lines;
}

function read(root: string, path: string): string {
  return readFileSync(join(root, path), 'utf8');
}

function modeOwner(root: string, path: string): string {
  const st = statSync(join(root, path));
  return `${(st.mode & 0o7777).toString(8).padStart(4, '0')} ${st.uid}:${st.gid}`;
}

function passwdEntry(root: string, user: string): string[] | undefined {
  return read(root, 'etc/passwd').split('\n').find((l) => l.startsWith(`${user}:`))?.split(':');
}

async function publicKey(dir: string, name: string, type = 'ed25519'): Promise<string> {
  await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `certsep-deployd@${name}`, '-f', join(dir, name)]);
  return read(dir, `${name}.pub`).trim();
}

describe('install --remote-only', { skip, timeout: 600_000 }, () => {
  let dir: string;
  let root: string;
  let centralKey: string;
  let first: CommandResult;

  before(async () => {
    dir = makeTempDir('install-remote');
    root = await makeTree(dir);
    centralKey = await publicKey(dir, 'central');
    first = await install(root, '--remote-only', '--authorize-key', centralKey);
  });
  after(() => removeTempDir(dir));

  test('installs and enables privd and keyd only: no acmed, netd, deployd or renew timer', () => {
    assert.equal(first.code, 0, output(first));
    const units = readdirSync(join(root, UNITS)).filter((f) => f.startsWith('certsep-')).sort();
    assert.deepEqual(units, ['certsep-keyd.service', 'certsep-keyd.socket', 'certsep-privd.service', 'certsep-privd.socket']);
    assert.deepEqual(readdirSync(join(root, UNITS, 'sockets.target.wants')).sort(), ['certsep-keyd.socket', 'certsep-privd.socket']);
    assert.equal(existsSync(join(root, UNITS, 'timers.target.wants')), false);
    assert.equal(existsSync(join(root, 'usr/lib/certsep/certsepctl.mjs')), true);
  });

  test('certsep-remote logs in by key only, with /bin/sh, in the keyd and privd socket groups', () => {
    const entry = passwdEntry(root, 'certsep-remote');
    assert.ok(entry, 'no certsep-remote in /etc/passwd');
    assert.equal(entry[5], '/');
    assert.equal(entry[6], '/bin/sh');
    const shadow = read(root, 'etc/shadow').split('\n').find((l) => l.startsWith('certsep-remote:'))?.split(':');
    assert.equal(shadow?.[1], '*', 'the password field must be "*" (no password, not locked for keys)');
    const members = (group: string) => read(root, 'etc/group').split('\n').find((l) => l.startsWith(`${group}:`))?.split(':')[3]?.split(',') ?? [];
    assert.ok(members('certsep-keyclients').includes('certsep-remote'));
    assert.ok(members('certsep-clients').includes('certsep-remote'));
    assert.equal(modeOwner(root, 'var/log/certsep/remote.audit.jsonl').split(' ')[0], '0640');
    const [, , uid, gid] = entry;
    assert.equal(modeOwner(root, 'var/log/certsep/remote.audit.jsonl').split(' ')[1], `${uid}:${gid}`);
    assert.match(first.stdout, /this host's ssh key, for hostKeys:.*\n.*ssh-ed25519 AAAA\S+\n/);
  });

  test('the config template names users.remote, and its commented example is a valid remote config', () => {
    const text = read(root, 'etc/certsep/certsep.yaml');
    assert.match(text, /^users:\n {2}remote: certsep-remote\b/m);
    assert.equal(parseConfig(text, 'certsep.yaml').users.remote, 'certsep-remote');
    // The example blocks start at "# services:" and "# certificates:" and end at a blank line.
    let inExample = false;
    const uncommented = text.split('\n').filter((line) => line !== 'certificates: []').map((line) => {
      if (line === '# services:' || line === '# certificates:') inExample = true;
      if (line === '') inExample = false;
      return inExample ? line.replace(/^# /, '') : line;
    }).join('\n');
    const example = parseConfig(uncommented, 'certsep.yaml (example uncommented)');
    assert.equal(example.certificates[0]?.challenge, undefined);
    assert.deepEqual(example.certificates[0]?.targets[0]?.services, ['nginx']);
    assert.deepEqual(example.services['nginx']?.check, [['nginx', '-t']]);
  });

  test('writes the sshd snippet, which sshd applies to certsep-remote alone', async () => {
    assert.equal(read(root, SNIPPET).split('\n').filter((l) => !l.startsWith('#')).join('\n'), `Match User certsep-remote
    AuthorizedKeysFile /etc/certsep/remote/authorized_keys
    ExposeAuthInfo yes
    DisableForwarding yes
    PermitTTY no
    PermitUserRC no
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    ForceCommand /usr/bin/certsepctl remote-serve
`);
    assert.equal(modeOwner(root, SNIPPET), '0644 0:0');
    const effective = async (user: string) => (await run('chroot', [root, '/usr/sbin/sshd', '-T', '-C', `user=${user},host=client,addr=192.0.2.1`])).stdout;
    const remote = await effective('certsep-remote');
    assert.match(remote, /^forcecommand \/usr\/bin\/certsepctl remote-serve$/m);
    assert.match(remote, /^authorizedkeysfile \/etc\/certsep\/remote\/authorized_keys$/m);
    assert.match(remote, /^exposeauthinfo yes$/m);
    assert.match(remote, /^permittty no$/m);
    const other = await effective('root');
    assert.match(other, /^forcecommand none$/m);
    assert.match(other, /^permittty yes$/m);
  });

  test('authorizes the central key once, for remote-serve only, in a file only root may change', async () => {
    const [type, blob] = centralKey.split(' ');
    assert.equal(read(root, AUTHORIZED_KEYS), `command="/usr/bin/certsepctl remote-serve",restrict ${type} ${blob} certsep-deployd@central\n`);
    assert.equal(modeOwner(root, AUTHORIZED_KEYS), '0644 0:0');
    assert.equal(modeOwner(root, 'etc/certsep/remote'), '0755 0:0');
    const again = await install(root, '--remote-only', '--authorize-key', centralKey);
    assert.equal(again.code, 0, output(again));
    assert.match(again.stdout, /already authorized: ssh-ed25519 key SHA256:/);
    assert.match(again.stdout, /done: 0 file\(s\) written/, output(again));
    assert.equal(read(root, AUTHORIZED_KEYS).split('\n').filter(Boolean).length, 1);
  });

  test('a plain install on a remote host installs the remote role again and changes nothing', async () => {
    const before = manifest(root);
    const again = await install(root);
    assert.equal(again.code, 0, output(again));
    assert.match(again.stdout, /this host has the remote role/);
    assert.match(again.stdout, /done: 0 file\(s\) written/, output(again));
    assert.deepEqual(manifest(root), before);
  });

  test('a second key of another type is appended; a comment with odd characters becomes certsep-central', async () => {
    const rsa = (await publicKey(dir, 'second', 'rsa')).replace(/ \S+$/, ' evil"comment');
    const r = await install(root, '--remote-only', '--authorize-key', rsa);
    assert.equal(r.code, 0, output(r));
    const lines = read(root, AUTHORIZED_KEYS).trim().split('\n');
    assert.equal(lines.length, 2);
    assert.equal(lines[1], `command="/usr/bin/certsepctl remote-serve",restrict ${rsa.split(' ').slice(0, 2).join(' ')} certsep-central`);
  });

  test('a bad key is refused with a clear message and changes nothing', async () => {
    const [type, blob] = centralKey.split(' ');
    const before = manifest(root);
    const bad: Array<[string, RegExp]> = [
      [`${centralKey}\n${centralKey}`, /takes one line/],
      [`command="/bin/sh" ${centralKey}`, /takes one line/],
      [`ssh-dss ${blob}`, /of type ssh-ed25519, ecdsa-sha2-nistp256/],
      [`${type} ${blob!.slice(0, 40)}`, /ssh-keygen cannot read this ssh-ed25519 key/],
      ['', /takes one line/],
    ];
    for (const [key, message] of bad) {
      // The good key first: one bad key among several changes nothing either.
      const r = await install(root, '--remote-only', '--authorize-key', centralKey, '--authorize-key', key);
      assert.equal(r.code, 1, output(r));
      assert.match(r.stderr, message, output(r));
      assert.equal(r.stdout, '', 'nothing is done before the keys are checked');
    }
    assert.deepEqual(manifest(root), before);
  });

  test('--fleet is refused on a remote host, and --authorize-key without --remote-only', async () => {
    const fleet = await install(root, '--fleet');
    assert.equal(fleet.code, 1);
    assert.match(fleet.stderr, /this host has the remote role: install --uninstall first/);
    const alone = await install(root, '--authorize-key', centralKey);
    assert.equal(alone.code, 1);
    assert.match(alone.stderr, /--authorize-key only goes with --remote-only/);
  });

  test('--uninstall removes the snippet, units and accounts and keeps authorized_keys; --purge removes it', async () => {
    const r = await install(root, '--uninstall');
    assert.equal(r.code, 0, output(r));
    for (const gone of [SNIPPET, 'usr/lib/sysusers.d/certsep-remote.conf', 'usr/lib/tmpfiles.d/certsep-remote.conf',
      `${UNITS}/certsep-privd.service`, `${UNITS}/sockets.target.wants/certsep-keyd.socket`, 'usr/bin/certsepctl']) {
      assert.equal(existsSync(join(root, gone)), false, `${gone} is still there`);
    }
    assert.equal(passwdEntry(root, 'certsep-remote'), undefined);
    assert.doesNotMatch(read(root, 'etc/group'), /^certsep/m);
    assert.equal(existsSync(join(root, AUTHORIZED_KEYS)), true);
    const purge = await install(root, '--uninstall', '--purge');
    assert.equal(purge.code, 0, output(purge));
    assert.equal(existsSync(join(root, 'etc/certsep')), false);
    assert.equal(existsSync(join(root, 'var/log/certsep')), false);
  });
});

describe('install --remote-only on a host without openssh-server or without the sshd_config.d Include', { skip, timeout: 300_000 }, () => {
  let dir: string;
  before(() => { dir = makeTempDir('install-remote-nossh'); });
  after(() => removeTempDir(dir));

  test('skips the sshd part, saying why, and still installs the role', async () => {
    const root = await makeTree(join(dir, 'a'));
    await run('rm', ['-f', join(root, 'usr/sbin/sshd')]);
    const r = await install(root, '--remote-only');
    assert.equal(r.code, 0, output(r));
    assert.match(r.stdout, /openssh-server is not installed: skipped \/etc\/ssh\/sshd_config\.d\/certsep-remote\.conf/);
    assert.match(r.stdout, /no key is authorized yet/);
    assert.equal(existsSync(join(root, SNIPPET)), false);
    assert.equal(existsSync(join(root, `${UNITS}/certsep-privd.socket`)), true);
  });

  test('does not write the snippet nor touch sshd_config when sshd_config lacks the Include', async () => {
    const root = await makeTree(join(dir, 'b'));
    writeFileSync(join(root, 'etc/ssh/sshd_config'), 'UsePAM no\n');
    const r = await install(root, '--remote-only');
    assert.equal(r.code, 0, output(r));
    assert.match(r.stdout, /WARNING: \/etc\/ssh\/sshd_config does not Include \/etc\/ssh\/sshd_config\.d\/\*\.conf/);
    assert.equal(existsSync(join(root, SNIPPET)), false);
    assert.equal(read(root, 'etc/ssh/sshd_config'), 'UsePAM no\n');
  });
});

describe('install --fleet', { skip, timeout: 300_000 }, () => {
  let dir: string;
  let root: string;
  let first: CommandResult;
  before(async () => {
    dir = makeTempDir('install-fleet');
    root = await makeTree(dir);
    // A config of this tree's own: the example names nginx, nft and upnpc, which the tree lacks.
    mkdirSync(join(root, 'etc/certsep'));
    writeFileSync(join(root, 'etc/certsep/certsep.yaml'), 'cas:\n  default: { directory: letsencrypt }\n');
    first = await install(root, '--fleet');
  });
  after(() => removeTempDir(dir));

  test('installs the whole suite, the deployd network drop-in and deployd\'s own ssh key', () => {
    assert.equal(first.code, 0, output(first));
    // The link names /etc/systemd/system/certsep-renew.timer as seen inside the tree.
    assert.ok(lstatSync(join(root, UNITS, 'timers.target.wants/certsep-renew.timer')).isSymbolicLink());
    assert.equal(read(root, `${UNITS}/certsep-deployd.service.d/fleet.conf`), read(REPO, 'systemd/certsep-deployd-fleet.conf'));
    const deploy = passwdEntry(root, 'certsep-deploy')!;
    const owner = `${deploy[2]}:${deploy[3]}`;
    assert.equal(modeOwner(root, 'var/lib/certsep/deployd/ssh'), `0700 ${owner}`);
    assert.equal(modeOwner(root, 'var/lib/certsep/deployd/ssh/id_ed25519'), `0600 ${owner}`);
    const pub = read(root, 'var/lib/certsep/deployd/ssh/id_ed25519.pub').trim();
    assert.match(pub, /^ssh-ed25519 AAAA\S+ certsep-deployd@central-test$/);
    assert.ok(first.stdout.includes(`install:   ./install --remote-only --authorize-key '${pub}'\n`), output(first));
    assert.match(first.stdout, /ssh-keyscan -t ed25519 HOST/);
  });

  test('a second run keeps the key and writes nothing', async () => {
    const key = read(root, 'var/lib/certsep/deployd/ssh/id_ed25519');
    const again = await install(root);
    assert.equal(again.code, 0, output(again));
    assert.match(again.stdout, /this host delivers to remote hosts/);
    assert.match(again.stdout, /done: 0 file\(s\) written/, output(again));
    assert.equal(read(root, 'var/lib/certsep/deployd/ssh/id_ed25519'), key);
  });

  test('the hints name each host of the config\'s hosts: section', async () => {
    writeFileSync(join(root, 'etc/certsep/certsep.yaml'), `cas:
  default: { directory: letsencrypt }
hosts:
  web1:
    address: web1.example.net   # the remote host
    hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHQ7mwSWaGYHAGWlYr3cMFa5rczCjFCdQSdSWwmbZ7iC"]
  web2: { address: 192.0.2.7, hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHQ7mwSWaGYHAGWlYr3cMFa5rczCjFCdQSdSWwmbZ7iC"] }
certificates:
  - name: www
    domains: [www.example.net]
    challenge: { type: http-01-listener, address: 127.0.0.1 }
    hosts: [web1, web2]
`);
    const r = await install(root, '--fleet');
    assert.equal(r.code, 0, output(r));
    const hints = r.stdout.split('\n').filter((l) => l.startsWith('install:   ssh-keyscan'));
    assert.deepEqual(hints, ['install:   ssh-keyscan -t ed25519 192.0.2.7', 'install:   ssh-keyscan -t ed25519 web1.example.net']);
  });

  test('--remote-only is refused on a host with the whole suite; --uninstall removes the drop-in', async () => {
    const remote = await install(root, '--remote-only');
    assert.equal(remote.code, 1);
    assert.match(remote.stderr, /this host runs the whole suite: install --uninstall first/);
    const r = await install(root, '--uninstall');
    assert.equal(r.code, 0, output(r));
    assert.equal(existsSync(join(root, `${UNITS}/certsep-deployd.service.d`)), false);
    assert.equal(existsSync(join(root, 'var/lib/certsep/deployd/ssh/id_ed25519')), true, 'the key stays without --purge');
  });
});

test('deployd with the fleet drop-in stays within its exposure threshold', { skip: skip ?? (existsSync('/usr/bin/systemd-analyze') ? undefined : 'needs systemd-analyze') }, async () => {
  const dir = makeTempDir('fleet-analyze');
  try {
    const unitDir = join(dir, 'etc/systemd/system');
    mkdirSync(join(unitDir, 'certsep-deployd.service.d'), { recursive: true });
    copyFileSync(join(REPO, 'systemd/certsep-deployd.service'), join(unitDir, 'certsep-deployd.service'));
    copyFileSync(join(REPO, 'systemd/certsep-deployd-fleet.conf'), join(unitDir, 'certsep-deployd.service.d/fleet.conf'));
    const r = await runCommand('systemd-analyze', ['security', '--offline=yes', '--no-pager', `--root=${dir}`, 'certsep-deployd.service']);
    const score = Number(/Overall exposure level for \S+: ([0-9.]+)/.exec(r.stdout)?.[1]);
    assert.ok(Number.isFinite(score), `no score:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /RestrictAddressFamilies=~AF_PACKET/);
    console.log(`# certsep-deployd.service with fleet.conf: exposure ${score.toFixed(1)}`);
    assert.ok(score <= 1.5, `exposure ${score} above 1.5`);
  } finally {
    removeTempDir(dir);
  }
});

describe("install holds acmed's http-01 listener ports in certsep-acmed.socket", { skip, timeout: 300_000 }, () => {
  let dir: string;
  let root: string;
  let first: CommandResult;
  const dropIn = `${UNITS}/certsep-acmed.socket.d/certsep-paths.conf`;
  const config = (certs: string) => `cas:\n  default: { directory: letsencrypt }\ncertificates:\n${certs}`;
  const listeners = [
    '  - { name: a, domains: [a.example.com], challenge: { type: http-01-listener } }',
    '  - { name: b, domains: [b.example.com], challenge: { type: http-01-listener, address: "0:0::1", port: 80 } }',
    '  - { name: c, domains: [c.example.com], challenge: { type: http-01-listener, port: 8402 } }',
  ].join('\n');
  before(async () => {
    dir = makeTempDir('install-listeners');
    root = await makeTree(dir);
    mkdirSync(join(root, 'etc/certsep'));
    writeFileSync(join(root, 'etc/certsep/certsep.yaml'), config(`${listeners}\n`));
    first = await install(root);
  });
  after(() => removeTempDir(dir));

  test('one ListenStream= per listener address of the config, and systemd-analyze verify accepts the socket with it', async () => {
    assert.equal(first.code, 0, output(first));
    assert.equal(read(root, dropIn), [
      '# Written by certsep install: the http-01 listeners of certsep.yaml, held for acmed.',
      '[Socket]', 'ListenStream=127.0.0.1:8402', 'ListenStream=[::1]:80', 'FreeBind=yes', '',
    ].join('\n'));
    const r = await runCommand('systemd-analyze', ['verify', join(root, UNITS, 'certsep-acmed.socket')], {
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${join(root, UNITS)}:` },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test('without listeners in the config the drop-in is removed again', async () => {
    const webroot = '  - { name: w, domains: [w.example.com], challenge: { type: http-01-webroot, webroot: /srv } }\n';
    writeFileSync(join(root, 'etc/certsep/certsep.yaml'), config(webroot));
    const r = await install(root);
    assert.equal(r.code, 0, output(r));
    assert.equal(existsSync(join(root, dropIn)), false);
  });
});
