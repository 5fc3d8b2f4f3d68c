// The CA's preferredChain setting against a real Pebble that offers an alternate chain per
// certificate (PEBBLE_ALTERNATE_ROOTS=1, RFC 8555 section 7.4.2 Link rel="alternate"). Pebble's
// roots are generated at start, so the alternate root's CN is read from its management API before
// acmed's config is written. acmed keeps one account, with the CA settings it was registered
// under, per directory URL; so each CA entry here reaches the one Pebble by a URL of its own
// (127.0.0.1, or localhost, which Pebble's certificate also names), and the third entry gets an
// acmed of its own.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { requestText } from '../harness/http.ts';
import { assertChainsToRoot, splitPem, startAcmed, type AcmedUnderTest } from './start-acmed.ts';

/** Pebble's root number `n` (0 is the default chain's), PEM, from its management API. */
async function fetchRoot(pebble: Pebble, n: number): Promise<string> {
  const res = await requestText(`${pebble.managementUrl}/roots/${n}`, { ca: readFileSync(pebble.caBundlePath) });
  assert.equal(res.status, 200, `Pebble /roots/${n} answered ${res.status}`);
  return res.body;
}

function commonName(dn: string): string {
  return /^CN=(.*)$/m.exec(dn)?.[1] ?? '';
}

/** The issuer CN of the chain's last certificate: the root it leads to. */
function topIssuerCn(chainPem: string): string {
  return commonName(splitPem(chainPem).at(-1)!.issuer);
}

describe('acmed chooses the chain by preferredChain', () => {
  let pebble: Pebble;
  let acmed: AcmedUnderTest;
  let unmatchedAcmed: AcmedUnderTest;
  let defaultRoot: string;
  let alternateRoot: string;

  before(async () => {
    pebble = await startPebble({ alternateRoots: 1 });
    [defaultRoot, alternateRoot] = await Promise.all([fetchRoot(pebble, 0), fetchRoot(pebble, 1)]);
    const alternateCn = commonName(new X509Certificate(alternateRoot).subject);
    assert.notEqual(alternateCn, commonName(new X509Certificate(defaultRoot).subject), 'the two roots have different CNs');
    const ca = { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath };
    const viaLocalhost = { ...ca, directory: pebble.directoryUrl.replace('127.0.0.1', 'localhost') };
    const challenge = { type: 'http-01-listener', address: '127.0.0.1', port: pebble.httpPort };
    const certificate = (name: string) => ({ name, domains: [`${name}.example.com`], ca: name, challenge });
    [acmed, unmatchedAcmed] = await Promise.all([
      startAcmed({
        config: {
          cas: { 'no-preference': ca, alternate: { ...viaLocalhost, preferredChain: alternateCn } },
          certificates: [certificate('no-preference'), certificate('alternate')],
        },
      }),
      startAcmed({
        config: { cas: { unmatched: { ...ca, preferredChain: 'No Such Issuer CN' } }, certificates: [certificate('unmatched')] },
      }),
    ]);
  });
  after(async () => {
    await Promise.all([acmed?.stop(), unmatchedAcmed?.stop()]);
    await pebble?.stop();
  });

  const issue = (name: string, by = acmed) => by.orderKeydCsr(name);

  test('without a preference the CA\'s default chain is returned, and the alternate is offered too', async () => {
    const result = await issue('no-preference');
    assertChainsToRoot(result.chainPem, defaultRoot);
    assert.equal(topIssuerCn(result.chainPem), commonName(new X509Certificate(defaultRoot).subject));
    assert.equal(result.alternates.length, 1);
    assertChainsToRoot(result.alternates[0]!, alternateRoot);
  });

  test('a preferredChain naming the alternate root\'s CN returns the chain that verifies to that root', async () => {
    const result = await issue('alternate');
    assert.equal(topIssuerCn(result.chainPem), commonName(new X509Certificate(alternateRoot).subject));
    assertChainsToRoot(result.chainPem, alternateRoot);
    assert.equal(result.alternates.length, 1);
    assertChainsToRoot(result.alternates[0]!, defaultRoot);
  });

  test('a preferredChain that matches no chain falls back to the default chain, not an error (as certbot does)', async () => {
    const result = await issue('unmatched', unmatchedAcmed);
    assertChainsToRoot(result.chainPem, defaultRoot);
    assert.equal(result.alternates.length, 1);
  });
});
