// The supervisor runs as root, started from an admin's shell: none of that shell's environment
// may reach the daemons. NODE_OPTIONS=--require would run the admin's (or an attacker's) code
// inside every daemon, privd included.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSupervisor, SUPERVISED, type Supervisor } from '../harness/supervisor.ts';
import { writeTestConfig } from '../harness/suite.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';

function environOf(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return new Map(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

describe('the environment certsep-supervisor gives its daemons', () => {
  let dir = '';
  let marker = '';
  let supervisor: Supervisor;
  before(async () => {
    dir = makeTempDir('supervisor-env');
    const configPath = writeTestConfig(dir);
    // Every daemon's uid may append here, so a daemon that loaded evil.js would leave its pid.
    const drop = join(dir, 'drop');
    mkdirSync(drop);
    chmodSync(drop, 0o777);
    marker = join(drop, 'loaded-by');
    writeFileSync(marker, '', { mode: 0o666 });
    chmodSync(marker, 0o666);
    const evil = join(dir, 'evil.cjs');
    writeFileSync(evil, `require('node:fs').appendFileSync(${JSON.stringify(marker)}, process.pid + '\\n');\n`, { mode: 0o644 });
    supervisor = await startSupervisor(dir, configPath, {
      ...process.env,
      NODE_OPTIONS: `--require=${evil}`,
      LD_PRELOAD: '',
      CERTSEP_ADMIN_SECRET: 'from-roots-shell',
      CERTSEP_LOG_LEVEL: 'warn',
    });
  });
  after(async () => {
    await supervisor?.stop();
    removeTempDir(dir);
  });

  it('NODE_OPTIONS=--require in the supervisor\'s environment does not reach a daemon', () => {
    const loadedBy = existsSync(marker) ? readFileSync(marker, 'utf8').split('\n').filter(Boolean).map(Number) : [];
    // The supervisor itself was started with it (that is root's own shell); no daemon may be.
    const daemons = SUPERVISED.map((d) => supervisor.pidOf(d));
    assert.deepEqual(loadedBy.filter((pid) => daemons.includes(pid)), []);
    for (const pid of daemons) assert.equal(environOf(pid).has('NODE_OPTIONS'), false, `pid ${pid} has NODE_OPTIONS`);
  });

  it('each daemon gets a fixed PATH and locale, the CERTSEP_* settings certsep reads, its socket and anchor fds and nothing else, in /', () => {
    for (const daemon of SUPERVISED) {
      const env = environOf(supervisor.pidOf(daemon));
      assert.equal(env.get('PATH'), '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', daemon);
      assert.equal(env.get('LANG'), 'C.UTF-8', daemon);
      assert.equal(env.get('CERTSEP_LOG_LEVEL'), 'warn', daemon);
      // sh exports PWD; LISTEN_FDNAMES names the fds as systemd does; the daemon removes LISTEN_* once it took its
      // socket (sd_listen_fds), /proc still shows them.
      assert.equal(env.get('PWD'), '/', daemon);
      assert.equal(env.get('CERTSEP_AUDIT_ANCHOR_FD'), '4', daemon);
      const expected = ['PATH', 'LANG', 'CERTSEP_LOG_LEVEL', 'CERTSEP_AUDIT_ANCHOR_FD', 'PWD', 'LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'];
      const unexpected = [...env.keys()].filter((k) => !expected.includes(k));
      assert.deepEqual(unexpected, [], `${daemon} has ${unexpected.join(', ')}`);
    }
  });
});
