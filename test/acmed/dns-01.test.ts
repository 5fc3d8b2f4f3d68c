// acmed answering dns-01 for a wildcard and its apex against a real Pebble: through a hook
// script that sets TXT records in challtestsrv (Pebble's DNS), and through RFC 2136 updates
// (nsupdate, TSIG) to a real BIND 9 that a second Pebble resolves through. Records must be gone
// afterwards, after a success and after a failed validation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { startBind9, type Bind9 } from './bind9.ts';
import { assertChainsToRoot, dnsNames, startAcmed, type AcmedUnderTest } from './start-acmed.ts';

async function txtAt(port: number, name: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 2_000, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  try {
    return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(''));
  } catch (e) {
    if (['ENODATA', 'ENOTFOUND'].includes((e as NodeJS.ErrnoException).code ?? '')) return [];
    throw e;
  }
}

// The hook a sysadmin would write for challtestsrv's API; it also logs what it was asked to do.
const HOOK = `#!/bin/sh
set -eu
echo "$CERTSEP_ACTION $CERTSEP_DOMAIN $CERTSEP_TXT_NAME" >> "$2"
case "$CERTSEP_ACTION" in
  present) curl -sf -X POST -d "{\\"host\\":\\"$CERTSEP_TXT_NAME.\\",\\"value\\":\\"$CERTSEP_TXT_VALUE\\"}" "$1/set-txt" ;;
  cleanup) curl -sf -X POST -d "{\\"host\\":\\"$CERTSEP_TXT_NAME.\\"}" "$1/clear-txt" ;;
  *) exit 64 ;;
esac
`;

describe('acmed with a dns-01 hook against challtestsrv', () => {
  let pebble: Pebble;
  /** Another challtestsrv: records put there are invisible to `pebble`, so its validation fails. */
  let elsewhere: Pebble;
  let acmed: AcmedUnderTest;
  let hookLog: string;

  before(async () => {
    [pebble, elsewhere] = await Promise.all([startPebble(), startPebble()]);
    acmed = await startAcmed((dir) => {
      const hook = join(dir, 'dns-hook.sh');
      hookLog = join(dir, 'hook.log');
      return {
        config: {
          cas: { pebble: { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath } },
          certificates: [
            {
              name: 'wild', domains: ['wild.example.com', '*.wild.example.com'], ca: 'pebble',
              challenge: { type: 'dns-01-hook', command: [hook, pebble.challtestsrvUrl, hookLog], resolver: `127.0.0.1:${pebble.dnsPort}`, propagationTimeoutSeconds: 10 },
            },
            {
              name: 'misplaced', domains: ['misplaced.example.com', '*.misplaced.example.com'], ca: 'pebble',
              challenge: { type: 'dns-01-hook', command: [hook, elsewhere.challtestsrvUrl, hookLog], resolver: `127.0.0.1:${elsewhere.dnsPort}`, propagationTimeoutSeconds: 10 },
            },
          ],
        },
        prepare: () => {
          writeFileSync(hook, HOOK, { mode: 0o755 });
          writeFileSync(hookLog, '', { mode: 0o644 });
          chownSync(hookLog, TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);
        },
      };
    });
  });
  after(async () => {
    await acmed?.stop();
    await Promise.all([pebble?.stop(), elsewhere?.stop()]);
  });

  test('acmed issues a wildcard plus apex certificate and the hook removes both TXT values', async () => {
    const result = await acmed.orderKeydCsr('wild');
    assert.deepEqual(dnsNames(assertChainsToRoot(result.chainPem, await pebble.fetchRoot())), ['*.wild.example.com', 'wild.example.com']);
    assert.deepEqual(await txtAt(pebble.dnsPort, '_acme-challenge.wild.example.com'), []);
    const calls = readFileSync(hookLog, 'utf8').trim().split('\n').sort();
    assert.deepEqual(calls, [
      'cleanup wild.example.com _acme-challenge.wild.example.com',
      'cleanup wild.example.com _acme-challenge.wild.example.com',
      'present wild.example.com _acme-challenge.wild.example.com',
      'present wild.example.com _acme-challenge.wild.example.com',
    ]);
  });

  test('a failed validation (records where the CA does not look) answers a DNS error and still cleans up', async () => {
    await assert.rejects(
      acmed.orderKeydCsr('misplaced'),
      (e: Error & { code?: string }) => ['E_DNS', 'E_UNAUTHORIZED'].includes(e.code ?? '') && /misplaced\.example\.com/.test(e.message),
    );
    assert.match(readFileSync(hookLog, 'utf8'), /present misplaced\.example\.com/);
    assert.deepEqual(await txtAt(elsewhere.dnsPort, '_acme-challenge.misplaced.example.com'), []);
    assert.equal(readFileSync(hookLog, 'utf8').match(/^cleanup misplaced/gm)?.length, 2);
  });
});

describe('acmed with RFC 2136 updates to a real BIND 9', () => {
  let bind: Bind9;
  let pebble: Pebble;
  let acmed: AcmedUnderTest;

  before(async () => {
    bind = await startBind9('dyn.example.com');
    pebble = await startPebble({ dnsServer: `127.0.0.1:${bind.port}` });
    acmed = await startAcmed((dir) => {
      const keyFile = join(dir, 'tsig.key');
      const wrongKeyFile = join(dir, 'wrong-tsig.key');
      const challenge = { type: 'dns-01-rfc2136', server: '127.0.0.1', port: bind.port, zone: bind.zone, tsigKeyFile: keyFile };
      return {
        config: {
          cas: { pebble: { directory: pebble.directoryUrl, trustBundle: pebble.caBundlePath } },
          certificates: [
            { name: 'dyn', domains: ['dyn.example.com', '*.dyn.example.com'], ca: 'pebble', challenge },
            { name: 'wrong-key', domains: ['w.dyn.example.com'], ca: 'pebble', challenge: { ...challenge, tsigKeyFile: wrongKeyFile } },
          ],
        },
        prepare: () => {
          // The TSIG key is a secret only acmed reads.
          writeFileSync(keyFile, bind.keyFileText, { mode: 0o400 });
          chownSync(keyFile, TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);
          writeFileSync(wrongKeyFile, bind.keyFileText.replace(/secret "[^"]+"/, `secret "${Buffer.alloc(32, 7).toString('base64')}"`), { mode: 0o400 });
          chownSync(wrongKeyFile, TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);
        },
      };
    });
  });
  after(async () => {
    await acmed?.stop();
    await pebble?.stop();
    await bind?.stop();
  });

  test('acmed issues a wildcard plus apex certificate through TSIG-signed updates and deletes the records', async () => {
    const result = await acmed.orderKeydCsr('dyn');
    assert.deepEqual(dnsNames(assertChainsToRoot(result.chainPem, await pebble.fetchRoot())), ['*.dyn.example.com', 'dyn.example.com']);
    assert.deepEqual(await txtAt(bind.port, '_acme-challenge.dyn.example.com'), []);
  });

  test('an update BIND refuses (wrong TSIG key) fails with E_CHALLENGE and leaves no record', async () => {
    await assert.rejects(
      acmed.orderKeydCsr('wrong-key'),
      (e: Error & { code?: string }) => e.code === 'E_CHALLENGE' && /nsupdate/.test(e.message),
    );
    assert.deepEqual(await txtAt(bind.port, '_acme-challenge.w.dyn.example.com'), []);
  });
});
