// privd installs a chain only from a CA the admin trusts for that certificate: it must lead to a
// root of the CA's `roots` file (or, without one, of the system trust store), be a TLS server
// certificate (leaf CA:false with serverAuth, intermediates CA:true with keyCertSign), live no
// longer than the CA's lifetime cap (default the CA/Browser Forum maximum in force), and be for
// the key of this run's CSR — not one of the older keys keyd keeps. Without these a compromised
// deployd (or a hostile CA) installs a self-made CA's leaf valid until 2100, and the scheduler
// then plans its next renewal decades away.
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertInstallRefused, startPrivdSuite, targetDir, type Issued, type PrivdSuite } from './privd-suite.ts';
import { ExtendedKeyUsage, KeyUsageFlags, TestCa } from './test-ca.ts';

const DAY = 86_400_000;
const CERTS = ['site', 'brief', 'public', 'later', 'missing'] as const;
type Cert = (typeof CERTS)[number];
const namesOf = (cert: Cert) => [`${cert}.certsep.test`];

describe('privd and the trust in a chain', () => {
  let suite: PrivdSuite;
  let dirs: Record<Cert, string>;
  let laterRoots: string;
  let selfMade: TestCa;
  let noKeyCertSign: TestCa;
  let notACa: TestCa;

  before(async () => {
    [selfMade, noKeyCertSign, notACa] = await Promise.all([
      TestCa.create('self-made'),
      TestCa.create('intermediate without keyCertSign', { keyUsages: KeyUsageFlags.digitalSignature }),
      TestCa.create('intermediate that is no CA', { ca: false }),
    ]);
    suite = await startPrivdSuite((dir, ca, rootsPath) => {
      // Roots that pass the trust check, so what these chains show is their other flaw.
      appendFileSync(rootsPath, noKeyCertSign.rootPem + notACa.rootPem);
      laterRoots = join(dir, 'later-roots.pem');
      writeFileSync(laterRoots, ca.rootPem, { mode: 0o644 });
      dirs = Object.fromEntries(CERTS.map((cert) => [cert, targetDir(dir, cert)])) as Record<Cert, string>;
      return {
        cas: {
          default: { directory: 'letsencrypt', roots: rootsPath },
          short: { directory: 'letsencrypt', roots: rootsPath, maxLifetimeDays: 30 },
          public: { directory: 'letsencrypt' },
          later: { directory: 'letsencrypt', roots: laterRoots },
          missing: { directory: 'letsencrypt', roots: join(dir, 'no-such-roots.pem') },
        },
        certificates: CERTS.map((cert) => ({
          name: cert,
          domains: namesOf(cert),
          ca: { site: 'default', brief: 'short', public: 'public', later: 'later', missing: 'missing' }[cert],
          challenge: { type: 'dns-01-hook', command: ['/bin/true'] },
          targets: [{ dir: dirs[cert], files: ['fullchain', 'privkey'] }],
        })),
      };
    });
  });

  after(async () => {
    await suite?.stop();
  });

  const issue = (cert: Cert, opts: { by?: TestCa; days?: number; notAfter?: Date; leafIsCa?: boolean; extendedKeyUsages?: string[] } = {}) => {
    const { days, ...rest } = opts;
    return suite.issue(cert, 'ec-p256', { names: namesOf(cert), notAfter: new Date(Date.now() + (days ?? 7) * DAY), ...rest });
  };
  const refused = (cert: Cert, issued: Issued, code: string, message: RegExp) => assertInstallRefused(suite, cert, issued, code, message, [dirs[cert]]);
  const installThenRollBack = async (cert: Cert, issued: Issued) => {
    await suite.install(cert, 'ec-p256', issued);
    assert.ok((await suite.call('deploy.rollback', { certs: [cert] })).ok);
  };

  it('privd refuses a chain from a self-made CA the config does not trust, even with that CA\'s root appended', async () => {
    const until2100 = await issue('site', { by: selfMade, notAfter: new Date('2100-01-01T00:00:00Z') });
    await refused('site', until2100, 'E_UNTRUSTED', /does not lead to a root trusted for CA "default" \(.*ca-roots\.pem\)/);
    await refused('site', { ...until2100, chainPem: until2100.chainPem + selfMade.rootPem }, 'E_UNTRUSTED', /CA "default"/);
  });

  it('privd refuses a trusted CA\'s leaf that lives longer than the CA/Browser Forum maximum or the CA\'s own cap', async () => {
    await refused('site', await issue('site', { notAfter: new Date('2100-01-01T00:00:00Z') }), 'E_LIFETIME', /at most 200 days/);
    await refused('site', await issue('site', { days: 201 }), 'E_LIFETIME', /at most 200 days .*CA\/Browser Forum/);
    await installThenRollBack('site', await issue('site', { days: 199 }));
    await refused('brief', await issue('brief', { days: 31 }), 'E_LIFETIME', /at most 30 days \(maxLifetimeDays of CA "short"\)/);
    await installThenRollBack('brief', await issue('brief', { days: 29 }));
  });

  it('privd refuses a leaf that is a CA or not for TLS servers, and a chain through an intermediate that may not sign', async () => {
    await refused('site', await issue('site', { leafIsCa: true }), 'E_CONSTRAINTS', /the certificate is a CA/);
    await refused('site', await issue('site', { extendedKeyUsages: [ExtendedKeyUsage.clientAuth] }), 'E_CONSTRAINTS', /not for TLS servers \(no serverAuth/);
    await refused('site', await issue('site', { extendedKeyUsages: [] }), 'E_CONSTRAINTS', /not for TLS servers/);
    await refused('site', await issue('site', { by: noKeyCertSign }), 'E_CONSTRAINTS', /chain certificate 2 .* may not sign certificates \(no keyCertSign\)/);
    await refused('site', await issue('site', { by: notACa }), 'E_CONSTRAINTS', /chain certificate 2 .* is not a CA/);
  });

  it('privd refuses a chain for one of the older keys keyd still keeps, not the key of the last CSR', async () => {
    const older = await issue('site');
    const current = await issue('site');
    assert.notEqual(older.keyId, current.keyId, 'keyPolicy rotate: a new key per CSR');
    await refused('site', older, 'E_KEY_NOT_CURRENT', /not keyd's current key/);
    await installThenRollBack('site', current);
  });

  it('privd reads a CA\'s roots file at each install: a root the admin adds is trusted without a restart', async () => {
    const other = await TestCa.create('added later');
    const issued = await issue('later', { by: other });
    await refused('later', issued, 'E_UNTRUSTED', /CA "later"/);
    appendFileSync(laterRoots, other.rootPem);
    await installThenRollBack('later', issued);
  });

  it('privd refuses a roots file others could write, and one that is missing', async () => {
    chmodSync(laterRoots, 0o664);
    try {
      await refused('later', await issue('later'), 'E_TRUST_STORE', /refusing to trust .*later-roots\.pem: .* writable by its group/);
    } finally {
      chmodSync(laterRoots, 0o644);
    }
    await refused('missing', await issue('missing'), 'E_TRUST_STORE', /no-such-roots\.pem.*ENOENT/);
  });

  it('privd verifies the chains of a CA without roots against the system trust store', async () => {
    await refused('public', await issue('public'), 'E_UNTRUSTED', /CA "public" \(\/etc\/ssl\/certs\/ca-certificates\.crt\)/);
  });
});

