// A config edit in a running suite under certsep-supervisor (real Pebble, nginx, every daemon under
// its own uid, certsepctl as root): an added certificate renews at once, an added host is pinned in
// deployd's known_hosts, a CA's new profile reaches acmed's next order, an edit made during a run
// waits for it (and status says so), and a broken edit (a YAML error, a schema error) is refused by
// every daemon with its file:line, audited, while the config they had keeps renewing. No daemon
// restarts at any point.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { StatusJson } from '../../ctl/status-json.ts';
import type { DaemonName } from '../../proto/api.ts';
import { waitFor } from '../harness/proc.ts';
import { startCertsep, type CertsepUnderTest } from './certsep-under-test.ts';

const DAEMONS: DaemonName[] = ['privd', 'keyd', 'acmed', 'netd', 'deployd'];

interface AuditLine {
  seq: number;
  method: string;
  outcome: string;
  code?: string;
  message?: string;
  detail?: { trigger?: string };
}

describe('a config edit in a running suite under certsep-supervisor', () => {
  let certsep: CertsepUnderTest;
  let pids: Map<DaemonName, number>;
  interface ConfigDoc {
    cas: Record<string, Record<string, unknown>>;
    services: Record<string, { check: string[][] }>;
    certificates: Record<string, unknown>[];
    hosts?: Record<string, unknown>;
  }
  const readConfig = () => parse(readFileSync(certsep.configPath, 'utf8')) as ConfigDoc;
  const edit = (change: (doc: ConfigDoc) => void) => {
    const doc = readConfig();
    change(doc);
    writeFileSync(certsep.configPath, stringify(doc));
  };
  const newCertificate = (name: string, services: string[]) => {
    const dir = join(certsep.dir, 'targets', name);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const ec = readConfig().certificates[0]!;
    const targets = [{ dir, mode: '0600', files: ['fullchain', 'privkey'], services }];
    return { name, domains: [`${name}.example.com`], keyTypes: ['ec-p256'], challenge: ec['challenge'], targets };
  };
  const audit = (daemon: DaemonName): AuditLine[] =>
    readFileSync(join(certsep.dir, 'audit', `${daemon}.audit.jsonl`), 'utf8')
      .split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditLine);
  const lastSeq = (daemon: DaemonName) => audit(daemon).at(-1)?.seq ?? 0;
  const refusalsSince = (daemon: DaemonName, seq: number) =>
    audit(daemon).filter((r) => r.seq > seq && r.method === 'config.reload' && r.outcome === 'refused');
  const statusJson = async (args: string[] = []) => {
    const r = await certsep.ctl([...args, 'status', '--json']);
    return { code: r.code, status: StatusJson.parse(JSON.parse(r.stdout)) };
  };
  const assertNoRestart = () => {
    for (const d of DAEMONS) assert.equal(certsep.pidOf(d), pids.get(d), `${d} was not restarted`);
  };

  before(async () => {
    certsep = await startCertsep({ sites: ['ec'] });
    const first = await certsep.ctl(['renew', '--all']);
    assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
    pids = new Map(DAEMONS.map((d) => [d, certsep.pidOf(d)]));
  });
  after(async () => {
    await certsep?.stop();
  });

  test('a certificate added to the file renews with renew NAME, into its target, with its service', async () => {
    edit((doc) => doc.certificates.push(newCertificate('second', ['marker'])));
    const r = await certsep.ctl(['renew', 'second']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /1 renewed/);
    assert.ok(existsSync(join(certsep.dir, 'targets', 'second', 'fullchain.pem')));
    assert.equal(readFileSync(certsep.markerFile, 'utf8'), 'reload\n', 'privd reloaded the new config\'s service');
    const { status } = await statusJson();
    assert.deepEqual(status.certs.map((c) => c.cert), ['ec', 'second']);
    assert.deepEqual(status.config?.daemons.map((d) => `${d.daemon}:${d.state}`), DAEMONS.map((d) => `${d}:current`));
    assertNoRestart();
  });

  test('a host added to hosts: is pinned in deployd\'s known_hosts at its next request; removed, no more', async () => {
    const knownHosts = join(certsep.dir, 'state', 'deployd', 'ssh', 'known_hosts');
    const hostKey = `ssh-ed25519 ${Buffer.from('certsep test host key, not a real one').toString('base64')}`;
    edit((doc) => { doc.hosts = { web9: { address: '192.0.2.9', hostKeys: [hostKey] } }; });
    assert.equal((await certsep.ctl(['status'])).code, 0);
    assert.equal(readFileSync(knownHosts, 'utf8'), `certsep-host-web9 ${hostKey}\n`);
    edit((doc) => { delete doc.hosts; });
    assert.equal((await certsep.ctl(['status'])).code, 0);
    assert.equal(readFileSync(knownHosts, 'utf8'), '');
    assertNoRestart();
  });

  test('a CA\'s new profile is in acmed\'s next order', async () => {
    edit((doc) => { doc.cas['default']!['profile'] = 'shortlived'; });
    const r = await certsep.ctl(['renew', '--force', 'ec']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const orders = readFileSync(join(certsep.dir, 'supervisor.log'), 'utf8').split('\n')
      .filter((l) => l.includes('"msg":"order created"'))
      .map((l) => JSON.parse(l) as { cert: string; profile?: string });
    assert.deepEqual(orders.map((o) => `${o.cert}:${o.profile ?? '-'}`), ['ec:-', 'second:-', 'ec:shortlived']);
    assertNoRestart();
  });

  test('an edit made during a run waits for it; status says which daemons run an older config and why', async () => {
    const inCheck = join(certsep.dir, 'in-check');
    const gate = join(certsep.dir, 'check-gate');
    // The edit that makes nginx's check wait for a gate is itself taken at the next request.
    edit((doc) => {
      const nginxArgs = doc.services['nginx']!.check[0]!.slice(3);
      const waitForGate = `touch ${inCheck}; while [ ! -e ${gate} ]; do sleep 0.1; done; exec nginx -t -q "$@"`;
      doc.services['nginx']!.check = [['/bin/sh', '-c', waitForGate, 'check', ...nginxArgs]];
    });
    const run = certsep.ctl(['renew', '--force', 'ec']);
    await waitFor(() => existsSync(inCheck), 60_000, 'the run to reach nginx\'s check');
    edit((doc) => doc.certificates.push(newCertificate('third', [])));
    const { status } = await statusJson();
    const byDaemon = new Map(status.config!.daemons.map((d) => [d.daemon, d]));
    assert.equal(byDaemon.get('deployd')?.state, 'older');
    assert.match(byDaemon.get('deployd')?.waiting ?? '', /^renewal run \S+ .* is in progress$/);
    assert.equal(byDaemon.get('privd')?.state, 'older');
    assert.match(byDaemon.get('privd')?.waiting ?? '', /^run \S+ of ec is installed/);
    assert.equal(byDaemon.get('keyd')?.state, 'current', 'an idle daemon takes the edit at once');
    assert.deepEqual(status.certs.map((c) => c.cert), ['ec', 'second'], 'deployd answers from the config of its run');
    const text = await certsep.ctl(['status']);
    const older = '^deployd runs an older config than \\S+certsep\\.yaml \\(sha256 [0-9a-f]{12}, loaded [^)]+\\) '
      + 'while renewal run \\S+ .* is in progress; it switches when that is done$';
    assert.match(text.stdout, new RegExp(older, 'm'));
    writeFileSync(gate, '');
    const done = await run;
    assert.equal(done.code, 0, `${done.stdout}\n${done.stderr}`);
    const { status: after } = await statusJson();
    assert.deepEqual(after.certs.map((c) => c.cert), ['ec', 'second', 'third']);
    assert.ok(after.config!.daemons.every((d) => d.state === 'current'), JSON.stringify(after.config));
    assertNoRestart();
  });

  test('a YAML error is refused by every daemon on SIGHUP, with its line, audited; the old config renews', async () => {
    const good = join(certsep.dir, 'good.yaml');
    copyFileSync(certsep.configPath, good);
    const marks = new Map(DAEMONS.map((d) => [d, lastSeq(d)]));
    writeFileSync(certsep.configPath, `${readFileSync(good, 'utf8')}certificates: [ {name: broken\n`);
    certsep.signalSupervisor('SIGHUP');
    for (const d of DAEMONS) {
      const [refusal] = await waitFor(() => {
        const found = refusalsSince(d, marks.get(d)!);
        return found.length > 0 ? found : undefined;
      }, 20_000, `${d} to refuse the edit on SIGHUP`);
      assert.equal(refusal!.code, 'E_CONFIG', d);
      assert.equal(refusal!.detail?.trigger, 'SIGHUP', d);
      assert.match(refusal!.message ?? '', /^certsep\.yaml:\d+: YAML syntax error/, d);
    }
    // certsepctl itself cannot read the broken file; given the last good copy it reaches the daemons.
    const own = await certsep.ctl(['status']);
    assert.equal(own.code, 1);
    assert.match(own.stderr, /certsep\.yaml:\d+: YAML syntax error/);
    const shown = await certsep.ctl(['--config', good, 'status']);
    assert.equal(shown.code, 1, 'a refused edit fails status');
    const grouped = '^privd, keyd, acmed, netd, deployd REFUSED \\S+certsep\\.yaml as it is now \\(E_CONFIG\\) '
      + 'and keep the config they had \\(sha256 [0-9a-f]{12}\\):\\n  certsep\\.yaml:\\d+: YAML syntax error';
    assert.match(shown.stdout, new RegExp(grouped, 'm'));
    assert.match(own.stderr, /the running daemons keep the config they loaded until the file is correct/);
    const doctor = await certsep.ctl(['--config', good, 'doctor', '--no-network']);
    for (const d of DAEMONS) {
      const finding = `^FAIL config in ${d}: refused \\S+certsep\\.yaml as it is now \\(E_CONFIG\\)`;
      assert.match(doctor.stdout, new RegExp(finding, 'm'));
    }
    const renewed = await certsep.ctl(['--config', good, 'renew', '--force', 'second']);
    assert.equal(renewed.code, 0, `${renewed.stdout}\n${renewed.stderr}`);
    for (const d of DAEMONS) assert.equal(refusalsSince(d, marks.get(d)!).length, 1, `${d} recorded the refusal once`);
    assertNoRestart();
  });

  test('a schema error is refused at the next request with file:line: key:; the old config renews', async () => {
    const good = join(certsep.dir, 'good.yaml');
    const marks = new Map(DAEMONS.map((d) => [d, lastSeq(d)]));
    const doc = parse(readFileSync(good, 'utf8')) as ConfigDoc;
    doc.certificates[1]!['domains'] = ['exa mple.com'];
    writeFileSync(certsep.configPath, stringify(doc));
    const renewed = await certsep.ctl(['--config', good, 'renew', '--force', 'ec']);
    assert.equal(renewed.code, 0, `${renewed.stdout}\n${renewed.stderr}`);
    // Each daemon the run called refused the file at that call.
    for (const d of ['deployd', 'privd', 'keyd', 'acmed'] as const) {
      const [refusal] = refusalsSince(d, marks.get(d)!);
      const issue = /^certsep\.yaml:\d+: certificates\[1\]\.domains\[0\]: "exa mple\.com" is not a valid DNS/;
      assert.match(refusal?.message ?? '', issue, d);
      assert.equal(refusal?.detail?.trigger, 'request', d);
    }
    copyFileSync(good, certsep.configPath);
    const reload = await certsep.ctl(['reload']);
    assert.equal(reload.code, 0, `${reload.stdout}\n${reload.stderr}`);
    assert.deepEqual(reload.stdout.trim().split('\n').map((l) => l.split(':')[0]), DAEMONS);
    for (const line of reload.stdout.trim().split('\n')) {
      assert.match(line, /^\w+: runs \S+certsep\.yaml \(sha256 [0-9a-f]{12}, loaded /);
    }
    const { code, status } = await statusJson();
    assert.equal(code, 0);
    assert.ok(status.config!.daemons.every((d) => d.state === 'current' && d.refused === undefined));
    assertNoRestart();
  });
});
