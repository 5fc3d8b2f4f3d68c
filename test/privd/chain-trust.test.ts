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
const YEAR_2100 = new Date('2100-01-01T00:00:00Z');
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
  let clientsOnly: TestCa;

  before(async () => {
    [selfMade, noKeyCertSign, notACa, clientsOnly] = await Promise.all([
      TestCa.create('self-made'),
      TestCa.create('intermediate without keyCertSign', { keyUsages: KeyUsageFlags.digitalSignature }),
      TestCa.create('intermediate that is no CA', { ca: false }),
      TestCa.create('intermediate for TLS clients only', { extendedKeyUsages: [ExtendedKeyUsage.clientAuth] }),
    ]);
    suite = await startPrivdSuite((dir, ca, rootsPath) => {
      // Roots that pass the trust check, so what these chains show is their other flaw.
      appendFileSync(rootsPath, noKeyCertSign.rootPem + notACa.rootPem + clientsOnly.rootPem);
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

  type Options = { by?: TestCa; days?: number; notAfter?: Date; leafIsCa?: boolean; extendedKeyUsages?: string[] };
  const issue = (cert: Cert, opts: Options = {}) => {
    const { days, ...rest } = opts;
    const notAfter = new Date(Date.now() + (days ?? 7) * DAY);
    return suite.issue(cert, 'ec-p256', { names: namesOf(cert), notAfter, ...rest });
  };
  const refused = (cert: Cert, issued: Issued, code: string, message: RegExp) =>
    assertInstallRefused(suite, cert, issued, code, message, [dirs[cert]]);
  const installThenRollBack = async (cert: Cert, issued: Issued) => {
    await suite.install(cert, 'ec-p256', issued);
    assert.ok((await suite.call('deploy.rollback', { certs: [cert] })).ok);
  };

  it('privd refuses a chain from a self-made CA the config does not trust, even with its root appended', async () => {
    const until2100 = await issue('site', { by: selfMade, notAfter: YEAR_2100 });
    const untrusted = /does not lead to a root trusted for CA "default" \(.*ca-roots\.pem\)/;
    await refused('site', until2100, 'E_UNTRUSTED', untrusted);
    const withRoot = { ...until2100, chainPem: until2100.chainPem + selfMade.rootPem };
    await refused('site', withRoot, 'E_UNTRUSTED', /CA "default"/);
  });

  it('privd refuses a trusted leaf living longer than the CA/Browser Forum maximum or the CA\'s cap', async () => {
    await refused('site', await issue('site', { notAfter: YEAR_2100 }), 'E_LIFETIME', /at most 200 days/);
    await refused('site', await issue('site', { days: 201 }), 'E_LIFETIME', /at most 200 days .*CA\/Browser Forum/);
    await installThenRollBack('site', await issue('site', { days: 199 }));
    const ownCap = /at most 30 days \(maxLifetimeDays of CA "short"\)/;
    await refused('brief', await issue('brief', { days: 31 }), 'E_LIFETIME', ownCap);
    await installThenRollBack('brief', await issue('brief', { days: 29 }));
  });

  it('privd refuses a leaf that is a CA or not for TLS servers, or under a CA that may not sign', async () => {
    const constrained = async (opts: Options, message: RegExp) =>
      refused('site', await issue('site', opts), 'E_CONSTRAINTS', message);
    await constrained({ leafIsCa: true }, /the certificate is a CA/);
    await constrained({ extendedKeyUsages: [ExtendedKeyUsage.clientAuth] }, /not for TLS servers \(no serverAuth/);
    await constrained({ extendedKeyUsages: [] }, /not for TLS servers/);
    await constrained({ by: noKeyCertSign }, /chain certificate 2 .* may not sign certificates \(no keyCertSign\)/);
    await constrained({ by: notACa }, /chain certificate 2 .* is not a CA/);
    await constrained({ by: clientsOnly }, /chain certificate 2 .* may not issue TLS server certificates/);
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
      const unsafe = /refusing to trust .*later-roots\.pem: .* writable by its group/;
      await refused('later', await issue('later'), 'E_TRUST_STORE', unsafe);
    } finally {
      chmodSync(laterRoots, 0o644);
    }
    await refused('missing', await issue('missing'), 'E_TRUST_STORE', /no-such-roots\.pem.*ENOENT/);
  });

  it('privd verifies the chains of a CA without roots against the system trust store', async () => {
    const systemStore = /CA "public" \(\/etc\/ssl\/certs\/ca-certificates\.crt\)/;
    await refused('public', await issue('public'), 'E_UNTRUSTED', systemStore);
  });
});

