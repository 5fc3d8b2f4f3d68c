// acmed's own http-01 listener, under certsep-supervisor with every daemon under its uid: the port
// (here Pebble's validation port on 127.0.0.1) is held for acmed all the time, as systemd holds a
// ListenStream=, so a local user can neither bind it (to make orders fail, or to answer the CA's
// validation with something of their own) nor slip in while acmed restarts. The attack: a process
// of another uid binds the port while no order runs; acmed, which used to bind it only during an
// order, then could not, and the renewal failed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { runCommand, waitFor } from '../harness/proc.ts';
import { execAs, spawnAs, TEST_IDS } from '../harness/uids.ts';
import { startCertsep, type CertsepUnderTest } from '../deployd/certsep-under-test.ts';

// Binds host:port the ways a squatter would: plainly, on the wildcard address, and sharing the port
// with SO_REUSEPORT. Prints one JSON object: label -> "bound" or the errno's name. With "hold", it
// keeps the first socket it could bind and serves its own answer on it until killed.
const SQUATTER = `
import errno, json, socket, sys
port, hold = int(sys.argv[1]), len(sys.argv) > 2
attempts = [('127.0.0.1', '127.0.0.1', []), ('0.0.0.0', '0.0.0.0', []),
            ('127.0.0.1 SO_REUSEPORT', '127.0.0.1', [socket.SO_REUSEPORT])]
result, held = {}, None
for label, host, options in attempts:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for option in options:
        s.setsockopt(socket.SOL_SOCKET, option, 1)
    try:
        s.bind((host, port))
        s.listen()
        result[label] = 'bound'
        if hold and held is None:
            held = s
            continue
    except OSError as e:
        result[label] = errno.errorcode[e.errno]
    s.close()
print(json.dumps(result), flush=True)
while held is not None:
    conn, _ = held.accept()
    conn.recv(4096)
    conn.sendall(b'HTTP/1.0 200 OK\\r\\ncontent-type: text/plain\\r\\n\\r\\nthe squatter answers')
    conn.close()
`;
const REFUSED = { '127.0.0.1': 'EADDRINUSE', '0.0.0.0': 'EADDRINUSE', '127.0.0.1 SO_REUSEPORT': 'EADDRINUSE' };

async function tryToBind(port: number): Promise<Record<string, string>> {
  const run = await execAs(TEST_IDS.other, '/usr/bin/python3', ['-c', SQUATTER, String(port)]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as Record<string, string>;
}

/** GET of a challenge path on 127.0.0.1:port: who answers, and what. */
function challengeAnswer(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const path = '/.well-known/acme-challenge/no-such-token';
    const req = request({ host: '127.0.0.1', port, path, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => { body += chunk.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe("acmed's http-01 listener port, under certsep-supervisor", () => {
  let certsep: CertsepUnderTest;
  let port: number;

  before(async () => {
    certsep = await startCertsep({ sites: ['ec'], listener: true });
    port = certsep.pebble.httpPort;
  });
  after(async () => {
    await certsep?.stop();
  });

  test('another uid cannot bind the port while no order runs: not plainly, not on 0.0.0.0, not with SO_REUSEPORT', async () => {
    assert.deepEqual(await tryToBind(port), REFUSED);
    const answer = await challengeAnswer(port);
    assert.deepEqual([answer.status, answer.body], [404, 'not found\n'], 'acmed itself answers on the port');
    // Who has the listening socket open: acmed, and the supervisor that holds it; no other daemon.
    const ss = await runCommand('ss', ['-Hltnp', `sport = :${port}`]);
    const holders = [...new Set([...ss.stdout.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))];
    const programOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[1]?.split('/').pop();
    const programs = holders.map((pid) => (pid === certsep.pidOf('acmed') ? 'acmed' : programOf(pid)));
    assert.deepEqual(programs.sort(), ['acmed', 'certsep-supervisor.mjs'], ss.stdout);
  });

  test('a squatter started before the renewal holds nothing, answers nothing, and the renewal goes through', async () => {
    const args = ['-c', SQUATTER, String(port), 'hold'];
    const squatter = spawnAs(TEST_IDS.other, '/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = await once(squatter.stdout!, 'data') as [Buffer];
      assert.deepEqual(JSON.parse(line.toString()), REFUSED);
      const placeholder = await certsep.servedSerial('ec');
      const renew = await certsep.ctl(['renew', '--all']);
      assert.equal(renew.code, 0, `${renew.stdout}\n${renew.stderr}`);
      // nginx's new workers take over a moment after the reload returned.
      assert.doesNotMatch(await certsep.servedSerialOtherThan('ec', placeholder), /^untrusted/);
    } finally {
      squatter.kill('SIGKILL');
    }
  });

  test('the port stays held while acmed is killed and restarted, and the next order is answered by acmed', async () => {
    const before = certsep.pidOf('acmed');
    process.kill(before, 'SIGKILL');
    await waitFor(() => certsep.pidOf('acmed') !== before, 20_000, 'the supervisor to notice acmed died');
    assert.deepEqual(await tryToBind(port), REFUSED, 'no one can take the port between acmed dying and coming back');
    await certsep.waitForDaemons();
    const served = await certsep.servedSerial('ec');
    const renew = await certsep.ctl(['renew', '--force', 'ec']);
    assert.equal(renew.code, 0, `${renew.stdout}\n${renew.stderr}`);
    await certsep.servedSerialOtherThan('ec', served);
  });
});
