// Text from peers reaches certsepctl's output: a CA's error detail (relayed by acmed), method names
// and messages in audit records (chosen by whoever connected), names in a config. None of it may
// reach the terminal as a control sequence (ESC, CSI, BEL, C1) or a bidi override, in human output
// or in --json. The CA here is a hostile one (Pebble cannot be made to send such a detail): it
// answers every ACME request with a problem document whose detail is a terminal attack; acmed is
// the real one under its uid, and the refused calls come from another local user.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeLocalTls } from '../harness/certs.ts';
import { runCommand } from '../harness/proc.ts';
import { assertBuilt } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { startAcmed, type AcmedUnderTest } from '../acmed/start-acmed.ts';
import { startKeyd, type KeydUnderTest } from '../keyd/start-keyd.ts';

// Sets the window title, clears the screen, CSI (C1) in red, and reverses the rest of the line.
const ATTACK = 'x\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eevil';
/** What a terminal must never receive raw. */
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

const ctl = (...args: string[]) => runCommand(process.execPath, [assertBuilt('ctl'), ...args], { timeoutMs: 120_000 });

async function startHostileCa(dir: string): Promise<{ url: string; caPath: string; server: Server }> {
  const tls = await makeLocalTls(dir, 'hostile test CA');
  let nonces = 0;
  const server = createServer({ cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) }, (req, res) => {
    const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const nonce = { 'replay-nonce': `nonce-${++nonces}` };
    req.resume();
    if (req.url === '/dir') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ newNonce: `${base}/nonce`, newAccount: `${base}/account`, newOrder: `${base}/order`, keyChange: `${base}/key-change` }));
    } else if (req.url === '/nonce') {
      res.writeHead(200, nonce).end();
    } else {
      res.writeHead(400, { 'content-type': 'application/problem+json', ...nonce });
      res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:malformed', detail: ATTACK, status: 400 }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/dir`, caPath: tls.caPath, server };
}

describe('peer text in certsepctl output', () => {
  let dir = '';
  let ca: Awaited<ReturnType<typeof startHostileCa>>;
  let acmed: AcmedUnderTest;
  let keyd: KeydUnderTest;
  before(async () => {
    dir = makeTempDir('ctl-hostile-text');
    ca = await startHostileCa(dir);
    acmed = await startAcmed({ config: { cas: { hostile: { directory: ca.url, trustBundle: ca.caPath } } } });
    keyd = await startKeyd([]);
  });
  after(async () => {
    await acmed?.stop();
    await keyd?.stop();
    ca?.server.close();
    removeTempDir(dir);
  });

  it('a hostile CA\'s error detail relayed by acmed is printed with its control characters escaped', async () => {
    const r = await ctl('--config', join(acmed.dir, 'certsep.yaml'), 'account', 'rollover');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^certsepctl account rollover: E_\w+: .*x\\u001b\]0;pwned\\u0007\\u001b\[2J\\u009b31m\\u202eevil/m);
    assert.doesNotMatch(r.stderr, RAW_CONTROL);
  });

  it('audit --json escapes C1 and bidi controls in method names a local user chose, and still parses to them', async () => {
    const method = `csr.create${ATTACK}`;
    const { answer } = await keyd.callAs(TEST_IDS.other, method, {});
    assert.equal(answer.ok ? 'ok' : answer.error.code, 'E_SCHEMA');
    const json = await ctl('audit', '--json', '--audit-dir', join(keyd.dir, 'audit'));
    assert.equal(json.code, 0, json.stderr);
    assert.doesNotMatch(json.stdout, RAW_CONTROL);
    const records = JSON.parse(json.stdout) as { method: string }[];
    assert.ok(records.some((rec) => rec.method === method.slice(0, 64)), 'the method name survives, escaped');
    const table = await ctl('audit', '--audit-dir', join(keyd.dir, 'audit'));
    assert.doesNotMatch(table.stdout, RAW_CONTROL);
    assert.match(table.stdout, /csr\.createx\\u001b\]0;pwned\\u0007/);
  });

  it('a config error naming a hostile key is printed escaped', async () => {
    const config = join(dir, 'hostile.yaml');
    writeFileSync(config, `rpc:\n  "${ATTACK.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}": 1\n`);
    const r = await ctl('--config', config, 'status');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown key/);
    assert.doesNotMatch(r.stderr, RAW_CONTROL);
  });
});
