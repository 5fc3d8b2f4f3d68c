// A hostile CA's authorizations: each names an identifier, which acmed hands to the dns-01 hook
// (CERTSEP_DOMAIN, CERTSEP_TXT_NAME), to nsupdate's script and to its DNS queries. A CA could
// name anything there — `$(…)` and newlines for a hook that builds a command or an nsupdate
// heredoc from them, or a well-formed name outside the config, whose TXT record acmed would then
// publish. acmed must match every authorization against the order's configured names before any
// hook or update runs. A fake CA (fake-ca.ts) plays the CA: Pebble, like every real CA, only ever
// answers with the identifiers it was asked for, so it cannot show this. The keys, CSRs, acmed's
// uid, the hook and nsupdate are real.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { resource, startFakeCa, type FakeCa } from './fake-ca.ts';
import { startAcmed, type AcmedUnderTest } from './start-acmed.ts';

interface Identifier {
  identifier: { type: string; value: string };
  wildcard?: boolean;
}

const TOKEN = 'hostile-ca-token-0123456789abcdefghijklmnop';
// A command for a hook that interpolates, and a line for one that feeds nsupdate a heredoc.
const INJECTION = 'x$(touch /tmp/certsep-pwned)\nupdate add evil.example.com 60 TXT x\n.hooked.example.com';

const HOOK = `#!/bin/sh
printf '%s|%s|%s\\n' "$CERTSEP_ACTION" "$CERTSEP_DOMAIN" "$CERTSEP_TXT_NAME" >> "$1"
`;

/** A UDP socket that records every datagram and answers none: a DNS server that hears all and says nothing. */
async function udpSink(): Promise<{ port: number; received: Buffer[]; close(): void }> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (message) => received.push(message));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: (socket.address() as AddressInfo).port, received, close: () => socket.close() };
}

describe('acmed and a CA that asks to validate identifiers the order did not name', () => {
  let scratch: string;
  let fake: FakeCa;
  let acmed: AcmedUnderTest;
  let hookLog: string;
  let silentResolver: Awaited<ReturnType<typeof udpSink>>;
  let dnsServer: Awaited<ReturnType<typeof udpSink>>;
  /** What the fake CA's next order authorizes. */
  let authorizations: Identifier[] = [];

  before(async () => {
    scratch = makeTempDir('acmed-hostile-ids');
    [silentResolver, dnsServer] = await Promise.all([udpSink(), udpSink()]);
    fake = await startFakeCa(scratch, {
      routes: {
        '/order': (_req, res, { base }) => resource(res, 201, {
          status: 'pending',
          identifiers: [],
          authorizations: authorizations.map((_, i) => `${base}/authz/${i}`),
          finalize: `${base}/finalize`,
        }, { location: `${base}/order/1` }),
        '/authz/': (req, res, { base }) => {
          const i = Number((req.url ?? '').slice('/authz/'.length));
          resource(res, 200, {
            status: 'pending',
            ...authorizations[i],
            challenges: ['dns-01', 'http-01'].map((type) => ({
              type, status: 'pending', url: `${base}/challenge/${i}/${type}`, token: TOKEN,
            })),
          });
        },
      },
    });
    const ca = 'hostile';
    const hookChallenge = (dir: string) => ({
      type: 'dns-01-hook', command: [join(dir, 'hook.sh'), join(dir, 'hook.log')],
      resolver: `127.0.0.1:${silentResolver.port}`, propagationTimeoutSeconds: 1,
    });
    acmed = await startAcmed((dir) => ({
      config: {
        cas: { [ca]: { directory: fake.directoryUrl, trustBundle: fake.caBundlePath } },
        certificates: [
          { name: 'hooked', domains: ['hooked.example.com', '*.hooked.example.com'], ca,
            challenge: hookChallenge(dir) },
          { name: 'plain', domains: ['plain.example.com'], ca, challenge: hookChallenge(dir) },
          {
            name: 'updated', domains: ['updated.example.com'], ca,
            challenge: {
              type: 'dns-01-rfc2136', server: '127.0.0.1', port: dnsServer.port, zone: 'example.com',
              tsigKeyFile: join(dir, 'tsig.key'),
            },
          },
        ],
      },
      prepare: () => {
        hookLog = join(dir, 'hook.log');
        writeFileSync(join(dir, 'hook.sh'), HOOK, { mode: 0o755 });
        writeFileSync(hookLog, '', { mode: 0o644 });
        chownSync(hookLog, TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);
        const secret = Buffer.alloc(32, 7).toString('base64');
        const key = `key "t" {\n  algorithm hmac-sha256;\n  secret "${secret}";\n};\n`;
        writeFileSync(join(dir, 'tsig.key'), key, { mode: 0o644 });
      },
    }));
  });
  after(async () => {
    await acmed?.stop();
    await fake?.stop();
    silentResolver?.close();
    dnsServer?.close();
    if (scratch) removeTempDir(scratch);
  });

  const refusal = async (cert: string, ids: Identifier[]) => {
    let error: (Error & { code?: string }) | undefined;
    authorizations = ids;
    writeFileSync(hookLog, '');
    try {
      await acmed.orderKeydCsr(cert);
    } catch (e) {
      error = e as Error & { code?: string };
    }
    assert.ok(error, 'the order must fail');
    return error;
  };

  const challengesAnswered = () => fake.requests.filter((r) => r.includes('/challenge/'));

  test('a command substitution and a newline in an identifier reach no hook, and no challenge is answered', async () => {
    const error = await refusal('hooked', [
      { identifier: { type: 'dns', value: 'hooked.example.com' } },
      { identifier: { type: 'dns', value: INJECTION } },
    ]);
    assert.equal(error.code, 'E_CA_IDENTIFIER', error.message);
    assert.equal(readFileSync(hookLog, 'utf8'), '', 'the hook never ran, not even for the ordered name');
    assert.deepEqual(challengesAnswered(), []);
  });

  test('a well-formed name outside the config gets no TXT record from the hook', async () => {
    const error = await refusal('hooked', [{ identifier: { type: 'dns', value: 'victim.example.org' } }]);
    assert.equal(error.code, 'E_CA_IDENTIFIER', error.message);
    assert.match(error.message, /victim\.example\.org/);
    assert.equal(readFileSync(hookLog, 'utf8'), '');
  });

  test('no RFC 2136 update is sent for a name outside the config', async () => {
    const error = await refusal('updated', [{ identifier: { type: 'dns', value: 'victim.example.com' } }]);
    assert.equal(error.code, 'E_CA_IDENTIFIER', error.message);
    assert.equal(dnsServer.received.length, 0, 'nsupdate sent nothing to the DNS server');
  });

  test('a wildcard authorization for a name ordered without a wildcard, and an IP identifier, are refused', async () => {
    for (const ids of [
      [{ identifier: { type: 'dns', value: 'plain.example.com' }, wildcard: true }],
      [{ identifier: { type: 'ip', value: '127.0.0.1' } }],
      [{ identifier: { type: 'dns', value: '*.plain.example.com' } }],
    ]) {
      const error = await refusal('plain', ids);
      assert.equal(error.code, 'E_CA_IDENTIFIER', `${JSON.stringify(ids)}: ${error.message}`);
      assert.equal(readFileSync(hookLog, 'utf8'), '');
    }
  });

  test('authorizations for exactly the ordered names (the wildcard as its base name) reach the hook', async () => {
    const error = await refusal('hooked', [
      { identifier: { type: 'dns', value: 'hooked.example.com' } },
      { identifier: { type: 'dns', value: 'hooked.example.com' }, wildcard: true },
    ]);
    // The silent resolver never shows the record: the order stops there, after the hook ran.
    assert.equal(error.code, 'E_DNS', error.message);
    const presented = readFileSync(hookLog, 'utf8').split('\n').filter((l) => l.startsWith('present'));
    assert.deepEqual(presented, Array(2).fill('present|hooked.example.com|_acme-challenge.hooked.example.com'));
  });
});
