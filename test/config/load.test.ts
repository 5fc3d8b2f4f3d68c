import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../config/error.ts';
import { defaultConfigPath, loadConfig, parseConfig } from '../../config/load.ts';
import { certificateByName, isSafeName } from '../../config/schema.ts';

const EXAMPLE = fileURLToPath(new URL('../../certsep.example.yaml', import.meta.url));

/** The ConfigError parseConfig throws for text; fails the test if it does not throw one. */
function configErrorOf(text: string, file = 'certsep.yaml'): ConfigError {
  try {
    parseConfig(text, file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('the config was accepted');
}

// A valid certificate entry, indented for a list under "certificates:".
const webCertificate = (domains: string) => `  - name: www
    domains: ${domains}
    challenge: { type: http-01-webroot, webroot: /var/www/acme }
`;

describe('config errors name the file, the line and the key path', () => {
  it('an invalid DNS name is reported at its own line with its index', () => {
    const text = `certificates:
${webCertificate('[example.com]')}${webCertificate('["exa mple.com"]').replace('name: www', 'name: www2')}`;
    const err = configErrorOf(text);
    assert.equal(err.code, 'E_CONFIG');
    assert.equal(err.message, 'certsep.yaml:6: certificates[1].domains[0]: "exa mple.com" is not a valid DNS name');
  });

  it('an unknown key is reported at the key, inside its section', () => {
    const err = configErrorOf('paths:\n  runDir: /run/certsep\n  rundir: /run/x\n');
    assert.equal(err.message, 'certsep.yaml:3: paths.rundir: unknown key');
  });

  it('an unknown top-level key is reported by name', () => {
    const err = configErrorOf('# comment\ncertficates: []\n');
    assert.equal(err.message, 'certsep.yaml:2: certficates: unknown key');
  });

  it('a value of the wrong type says what was expected and what was found', () => {
    const err = configErrorOf('rpc:\n  maxFrameBytes: lots\n');
    assert.equal(err.message, 'certsep.yaml:2: rpc.maxFrameBytes: expected a number, got "lots"');
  });

  it('a missing required key is reported at the line of the map that lacks it', () => {
    const err = configErrorOf('certificates:\n  - name: www\n    challenge: { type: http-01-listener }\n');
    assert.equal(err.message, 'certsep.yaml:2: certificates[0].domains: missing required key');
  });

  it('hosts: an undefined host, targets beside hosts and a malformed host key are refused, each at its line', () => {
    const hostKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake';
    const base = `hosts:\n  web1:\n    address: 192.0.2.1\n    hostKeys: ["${hostKey} comment"]\n`;
    const cert = (extra: string) => `certificates:\n  - name: shop\n    domains: [shop.example.com]\n    challenge: { type: http-01-listener }\n${extra}`;
    assert.equal(parseConfig(base + cert('    hosts: [web1]\n'), 'c.yaml').hosts['web1']?.hostKeys[0], hostKey, 'the comment is dropped');
    assert.match(configErrorOf(base + cert('    hosts: [web1, web3]\n')).message, /certificates\[0\]\.hosts\[1\]: host "web3" is not defined under hosts \(defined: web1\)/);
    assert.match(configErrorOf(base + cert('    hosts: [web1]\n    targets: [{ dir: /etc/x }]\n')).message, /certificates\[0\]\.targets: a certificate delivered to hosts is installed by those hosts/);
    assert.match(configErrorOf('hosts:\n  web1:\n    address: 192.0.2.1\n    hostKeys: ["ssh-dss AAAAB3NzaC1kc3MAAACBAP"]\n').message, /c?ertsep\.yaml:4: hosts\.web1\.hostKeys\[0\]: .* is not an SSH public key/);
    assert.match(configErrorOf('hosts:\n  web1:\n    address: 192.0.2.1\n    identityFile: "/etc/key %d"\n    hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFake"]\n').message, /hosts\.web1\.identityFile: identityFile may hold only/);
    assert.match(configErrorOf('hosts:\n  web1:\n    address: 192.0.2.1\n    user: "-oProxyCommand=x"\n    hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFake"]\n').message, /hosts\.web1\.user: .* is not a login name/);
  });

  it('a certificate without a challenge is refused unless this host has the remote role', () => {
    const err = configErrorOf('certificates:\n  - name: www\n    domains: [example.com]\n');
    assert.equal(err.message, 'certsep.yaml:2: certificates[0].challenge: a challenge is required (only a host with the remote role, users.remote, installs certificates another host orders)');
    const remote = parseConfig('users: { remote: 61005 }\ncertificates:\n  - name: www\n    domains: [example.com]\n', 'certsep.yaml');
    assert.equal(remote.certificates[0]?.challenge, undefined);
  });

  it('a target naming an undefined service is reported with the defined ones', () => {
    const text = `services:
  nginx:
    reload: { systemd: nginx.service }
certificates:
${webCertificate('[example.com]')}    targets:
      - dir: /etc/nginx/certs
        services: [nginx, apache]
`;
    const err = configErrorOf(text);
    assert.equal(err.message, 'certsep.yaml:10: certificates[0].targets[0].services[1]: service "apache" is not defined under services (defined: nginx)');
  });

  it('a YAML syntax error is reported with its line and without the quoted source', () => {
    const err = configErrorOf('paths:\n  runDir: [/run/certsep\nrpc: {}\n');
    assert.equal(err.issues.length, 1);
    assert.match(err.message, /^certsep\.yaml:3: YAML syntax error: /);
    assert.doesNotMatch(err.message, /\n/);
  });

  it('a duplicate YAML key is a syntax error, not a silent override', () => {
    const err = configErrorOf('rpc:\n  maxFrameBytes: 4096\n  maxFrameBytes: 8192\n');
    assert.equal(err.message, 'certsep.yaml:3: YAML syntax error: Map keys must be unique');
  });

  it('every problem in the file is listed in one error, in line order', () => {
    const text = `rpc:
  idleExitSeconds: -1
users:
  keyd: [root]
cas:
  default: { directory: "http://ca.example/dir" }
`;
    const err = configErrorOf(text);
    assert.deepEqual(err.message.split('\n'), [
      'certsep.yaml:2: rpc.idleExitSeconds: must be at least 0',
      'certsep.yaml:4: users.keyd: expected a string, got a list',
      'certsep.yaml:6: cas.default.directory: "http://ca.example/dir" must be "letsencrypt", "letsencrypt-staging" or an https:// directory URL',
    ]);
    assert.equal(err.issues.length, 3);
    assert.deepEqual(err.issues[0], { file: 'certsep.yaml', line: 2, path: 'rpc.idleExitSeconds', message: 'must be at least 0' });
  });

  it('loadConfig names the file by its basename', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certsep-config-'));
    try {
      const path = join(dir, 'mine.yaml');
      writeFileSync(path, 'rpc:\n  bogus: 1\n');
      assert.throws(() => loadConfig(path), (err: unknown) => err instanceof ConfigError && err.message === 'mine.yaml:2: rpc.bogus: unknown key');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing config file is an E_CONFIG error naming the path', () => {
    assert.throws(() => loadConfig('/nonexistent/certsep.yaml'), (err: unknown) =>
      err instanceof ConfigError && err.code === 'E_CONFIG' && err.message === 'certsep.yaml: cannot read /nonexistent/certsep.yaml: ENOENT');
  });
});

describe('config values', () => {
  it('an internationalized domain name is stored as punycode', () => {
    const config = parseConfig(`certificates:\n${webCertificate('[bücher.example, WWW.Example.COM]')}`, 'c.yaml');
    assert.deepEqual(config.certificates[0]?.domains, ['xn--bcher-kva.example', 'www.example.com']);
  });

  it('a wildcard domain with an http-01 challenge is refused', () => {
    const err = configErrorOf(`certificates:\n${webCertificate('["*.example.com"]')}`);
    assert.equal(err.message, 'certsep.yaml:3: certificates[0].domains[0]: wildcard "*.example.com" needs a dns-01 challenge, not http-01-webroot');
  });

  it('a wildcard domain with a dns-01 challenge is accepted', () => {
    const config = parseConfig(`certificates:
  - name: wild
    domains: ["*.example.com", example.com]
    challenge: { type: dns-01-hook, command: [/usr/local/bin/dns-hook] }
`, 'c.yaml');
    assert.deepEqual(config.certificates[0]?.domains, ['*.example.com', 'example.com']);
  });

  it('names that are not DNS names are refused: IP addresses, single labels, bad hyphens, trailing dots', () => {
    for (const bad of ['192.0.2.1', '0x7f.1', 'intranet', '-a.example', 'a-.example', 'example.com.', 'ex%61mple.com', 'a..example', `${'a'.repeat(64)}.example`]) {
      const err = configErrorOf(`certificates:\n${webCertificate(JSON.stringify([bad]))}`);
      assert.equal(err.issues[0]?.message, `${JSON.stringify(bad)} is not a valid DNS name`, bad);
    }
  });

  it('the same domain twice in one certificate is refused, also when spelled differently', () => {
    const err = configErrorOf(`certificates:\n${webCertificate('[example.com, EXAMPLE.com]')}`);
    assert.equal(err.message, 'certsep.yaml:3: certificates[0].domains[1]: duplicate domain "example.com" (also domains[0])');
  });

  it('an unquoted file mode is refused with a hint to quote it', () => {
    const err = configErrorOf(`certificates:\n${webCertificate('[example.com]')}    targets:\n      - { dir: /etc/x, mode: 0640 }\n`);
    assert.match(err.message, /^certsep\.yaml:6: certificates\[0\]\.targets\[0\]\.mode: file modes must be quoted octal strings like "0640"/);
  });

  it('a world-readable mode for a private key is refused', () => {
    const err = configErrorOf(`certificates:\n${webCertificate('[example.com]')}    targets:\n      - { dir: /etc/x, mode: "0644", files: [fullchain, privkey] }\n`);
    assert.match(err.message, /targets\[0\]\.mode: mode 0644 would make the private key world-readable/);
  });

  it('a relative program in a command is refused', () => {
    const err = configErrorOf('services:\n  x:\n    reload: { command: [bin/reload] }\n');
    assert.equal(err.message, 'certsep.yaml:3: services.x.reload.command[0]: "bin/reload" must be an absolute program path or a bare program name without "/"');
  });

  it('an empty config file means all defaults', () => {
    const config = parseConfig('# nothing yet\n', 'c.yaml');
    assert.equal(config.paths.auditDir, '/var/log/certsep');
    assert.equal(config.users.keyd, 'certsep-key');
    assert.equal(config.rpc.maxFrameBytes, 262144);
    assert.deepEqual(config.cas, { default: { directory: 'letsencrypt' } });
    assert.deepEqual(config.certificates, []);
  });

  it('defaults are filled in for a certificate and its targets', () => {
    const config = parseConfig(`certificates:\n${webCertificate('[example.com]')}    targets:\n      - dir: /etc/x\n`, 'c.yaml');
    const certificate = certificateByName(config, 'www');
    assert.equal(certificate?.keyPolicy, 'rotate');
    assert.deepEqual(certificate?.keyTypes, ['ec-p256']);
    assert.equal(certificate?.ca, 'default');
    assert.deepEqual(certificate?.targets[0], { dir: '/etc/x', owner: 'root', group: 'root', mode: '0640', files: ['cert', 'chain', 'fullchain', 'privkey'], services: [] });
    assert.equal(certificateByName(config, 'other'), undefined);
  });

  it('the example config loads and uses every section', () => {
    const config = loadConfig(EXAMPLE);
    assert.deepEqual(Object.keys(config.cas).sort(), ['default', 'internal', 'staging']);
    assert.deepEqual(Object.keys(config.services).sort(), ['haproxy', 'nginx']);
    assert.deepEqual(Object.keys(config.exposures).sort(), ['router', 'wan80']);
    assert.deepEqual(config.certificates.map((c) => c.challenge?.type), ['http-01-webroot', 'http-01-listener', 'dns-01-hook', 'dns-01-rfc2136', 'http-01-webroot']);
    assert.deepEqual(Object.keys(config.hosts).sort(), ['web1', 'web2']);
    assert.equal(config.hosts['web2']?.user, 'certsep-remote');
    assert.deepEqual(certificateByName(config, 'shop')?.hosts, ['web1', 'web2']);
    assert.ok(certificateByName(config, 'www')?.domains.includes('xn--bcher-kva.example.com'));
  });

  it('defaultConfigPath honors CERTSEP_CONFIG', () => {
    const saved = process.env['CERTSEP_CONFIG'];
    try {
      process.env['CERTSEP_CONFIG'] = '/srv/certsep.yaml';
      assert.equal(defaultConfigPath(), '/srv/certsep.yaml');
      delete process.env['CERTSEP_CONFIG'];
      assert.equal(defaultConfigPath(), '/etc/certsep/certsep.yaml');
    } finally {
      if (saved === undefined) delete process.env['CERTSEP_CONFIG'];
      else process.env['CERTSEP_CONFIG'] = saved;
    }
  });
});

describe('isSafeName', () => {
  it('accepts certificate-style names', () => {
    for (const name of ['www', 'example.com', 'a_b-c.9', 'x'.repeat(63)]) assert.equal(isSafeName(name), true, name);
  });

  it('refuses anything that could escape or confuse a directory', () => {
    for (const name of ['', '..', 'a..b', '.hidden', 'a/b', '/', 'a\0b', 'a\nb', 'UPPER', '-x', 'x'.repeat(64), 42, null]) {
      assert.equal(isSafeName(name), false, JSON.stringify(name));
    }
  });
});
