// privd and an edited config, with the real certsep-privd (root) and certsep-keyd: an edit takes
// effect at the next request without a restart; a broken one (YAML, schema, a setting read only at
// start) is refused with its file:line, audited once and the config in force keeps serving; a
// config anyone but root could write is never taken, on reload as at start; the peer check of the
// very next request uses an edited users.admins; and a run installed under one config is checked
// and reloaded under that config, whatever the file says meanwhile.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { AuditRecord } from '../../audit/record.ts';
import type { ConfigStatus } from '../../runtime/config-status.ts';
import { waitFor } from '../harness/proc.ts';
import { testUsers } from '../harness/suite.ts';
import { TEST_IDS } from '../harness/uids.ts';
import { startPrivdSuite, targetDir, type PrivdSuite } from './privd-suite.ts';

const CHALLENGE = { type: 'dns-01-hook', command: ['/bin/true'] };

describe('privd and an edited config', () => {
  let suite: PrivdSuite;
  let sections: {
    services: Record<string, unknown>;
    certificates: Record<string, unknown>[];
    rpc?: Record<string, unknown>;
  };
  let logs: { a: string; b: string };
  let admins: number[] = [];
  // The test CA's root, which the suite's config trusts for CA default; every rewrite keeps it.
  let cas: Record<string, unknown>;

  const certificate = (name: string, services: string[], dir = suite.dir) => {
    const targets = [{ dir: targetDir(dir, name), files: ['fullchain', 'privkey'], services }];
    return { name, domains: [`${name}.certsep.test`], challenge: CHALLENGE, targets };
  };
  const service = (log: string) => ({
    check: [['/bin/sh', '-c', `echo check >> ${log}`]],
    reload: { command: ['/bin/sh', '-c', `echo reload >> ${log}`] },
  });
  /** The whole file as writeTestConfig writes it. */
  const configText = () => {
    const under = (name: string) => join(suite.dir, name);
    const paths = { runDir: under('run'), stateDir: under('state'), auditDir: under('audit') };
    return stringify({ users: { ...testUsers(), admins }, paths, cas, ...sections });
  };
  /** Rewritten in place, as an editor saving it would. */
  const writeConfig = (text = configText()) => writeFileSync(suite.configPath, text);
  const configStatus = async (): Promise<ConfigStatus> => {
    const answer = await suite.call('config.status', {});
    assert.ok(answer.ok, JSON.stringify(answer));
    return answer.result as unknown as ConfigStatus;
  };
  const knows = async (cert: string) => (await suite.call('status', { certs: [cert] })).ok;
  const reloadRecords = (mark: number): AuditRecord[] =>
    suite.auditRecords().filter((r) => r.seq > mark && r.method === 'config.reload');

  before(async () => {
    suite = await startPrivdSuite((dir, _ca, rootsPath) => {
      cas = { default: { directory: 'letsencrypt', roots: rootsPath } };
      logs = { a: join(dir, 'a.log'), b: join(dir, 'b.log') };
      sections = {
        services: { a: service(logs.a), b: service(logs.b) },
        certificates: [certificate('site', ['a'], dir)],
      };
      return sections;
    });
  });

  after(async () => {
    await suite?.stop();
  });

  it('privd knows a certificate added to the file at its next request, in the same process; audited', async () => {
    const pid = suite.privd().child.pid;
    const before = await configStatus();
    assert.equal(await knows('second'), false);
    const mark = suite.auditMark();
    sections.certificates.push(certificate('second', ['a']));
    writeConfig();
    assert.equal(await knows('second'), true);
    assert.equal(suite.privd().child.pid, pid, 'no restart');
    const now = await configStatus();
    assert.notEqual(now.sha256, before.sha256);
    assert.equal(now.refused, undefined);
    const [record] = reloadRecords(mark);
    assert.equal(record?.outcome, 'ok');
    assert.equal(record?.peer, null);
    assert.equal((record?.detail as { trigger?: string }).trigger, 'request');
  });

  it('a YAML error is refused with its line, audited once for any number of requests; the old one serves', async () => {
    const good = readFileSync(suite.configPath, 'utf8');
    const mark = suite.auditMark();
    writeConfig(`${good}certificates: [ {name: broken\n`);
    for (let i = 0; i < 5; i++) assert.equal(await knows('second'), true, 'the config in force still serves');
    const { refused } = await configStatus();
    assert.equal(refused?.code, 'E_CONFIG');
    assert.match(refused?.issues[0] ?? '', /^certsep\.yaml:\d+: YAML syntax error/);
    const records = reloadRecords(mark);
    assert.equal(records.length, 1, 'one record for one version of the file');
    assert.equal(records[0]!.outcome, 'refused');
    assert.match(records[0]!.message ?? '', /certsep\.yaml:\d+: YAML syntax error/);
  });

  it('a schema error is refused with file:line: key:, and its error answers say which config privd keeps', async () => {
    const mark = suite.auditMark();
    sections.certificates.push({ ...certificate('third', ['a']), domains: ['exa mple.com'] });
    writeConfig();
    const answer = await suite.call('status', { certs: ['third'] });
    assert.equal(answer.ok, false);
    assert.equal(answer.error.code, 'E_UNKNOWN_CERT');
    assert.match(answer.error.message, /keeps the config it loaded at .*refused/);
    const { refused } = await configStatus();
    const issue = /^certsep\.yaml:\d+: certificates\[2\]\.domains\[0\]: "exa mple\.com" is not a valid DNS name/m;
    assert.match(refused?.issues.join('\n') ?? '', issue);
    assert.equal(reloadRecords(mark).length, 1);
    assert.equal(await knows('second'), true);
  });

  it('privd refuses a reload of a config made group-writable, until root alone can write it', async () => {
    sections.certificates[2] = certificate('third', ['a']);
    writeConfig();
    chmodSync(suite.configPath, 0o664);
    const mark = suite.auditMark();
    try {
      const answer = await suite.call('status', { certs: ['third'] });
      assert.equal(answer.ok, false, 'a config a group could have written must not be taken');
      assert.equal(answer.error.code, 'E_UNKNOWN_CERT');
      const { refused } = await configStatus();
      assert.equal(refused?.code, 'E_CONFIG_PERMS');
      assert.match(refused?.issues[0] ?? '', /refusing to trust \S+: \S+\.yaml is writable by its group \(mode 0664\)/);
      const records = reloadRecords(mark);
      assert.equal(records.length, 1);
      assert.equal(records[0]!.code, 'E_CONFIG_PERMS');
    } finally {
      chmodSync(suite.configPath, 0o644);
    }
    assert.equal(await knows('third'), true, 'taken once the file is root\'s alone again');
  });

  it('privd refuses a config renamed into a directory its group can write', async () => {
    const dirMode = 0o755;
    chmodSync(suite.dir, 0o775);
    try {
      sections.certificates.push(certificate('fourth', ['a']));
      writeFileSync(`${suite.configPath}.new`, configText(), { mode: 0o644 });
      renameSync(`${suite.configPath}.new`, suite.configPath);
      assert.equal(await knows('fourth'), false);
      assert.match((await configStatus()).refused?.issues[0] ?? '', /is writable by its group \(mode 0775\)/);
    } finally {
      chmodSync(suite.dir, dirMode);
    }
    // Mending the directory changes nothing about the file: privd looks at the path again anyway.
    assert.equal(await knows('fourth'), true);
  });

  it('a setting read only at start refuses the whole edit; SIGHUP reads the file again and audits again', async () => {
    sections.rpc = { requestTimeoutSeconds: 120 };
    sections.certificates.push(certificate('fifth', ['a']));
    writeConfig();
    const mark = suite.auditMark();
    assert.equal(await knows('fifth'), false, 'nothing of a refused edit is taken');
    const { refused } = await configStatus();
    assert.equal(refused?.code, 'E_CONFIG_RESTART');
    const issue = /^certsep\.yaml: rpc\.requestTimeoutSeconds: changed from 300 to 120, but certsep-privd reads it/;
    assert.match(refused?.issues[0] ?? '', issue);
    process.kill(suite.privd().child.pid!, 'SIGHUP');
    const byHangup = () => reloadRecords(mark).find((r) => (r.detail as { trigger?: string }).trigger === 'SIGHUP');
    const again = await waitFor(byHangup, 10_000, 'the SIGHUP re-read');
    assert.equal(again.outcome, 'refused');
    assert.equal(suite.privd().child.exitCode, null, 'SIGHUP does not end privd');
    delete sections.rpc;
    writeConfig();
    assert.equal(await knows('fifth'), true);
  });

  it('an admin added to users.admins may call at once, and one removed is refused at the next request', async () => {
    const asOther = async () => (await suite.callAs(TEST_IDS.other, 'status', { certs: ['site'] })).answer;
    assert.equal((await asOther()).ok, false);
    admins = [TEST_IDS.other.uid];
    writeConfig();
    assert.equal((await asOther()).ok, true, 'the new admin is let in by the config in force');
    admins = [];
    writeConfig();
    const refused = await asOther();
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, 'E_PEER', 'the peer check itself uses the edited config');
  });

  it('an edit made while a run is pending waits: check and reload use the services it was installed with', async () => {
    const issued = await suite.issue('site', 'ec-p256', { names: ['site.certsep.test'] });
    await suite.install('site', 'ec-p256', issued);
    const inForce = (await configStatus()).sha256;
    (sections.certificates[0]!['targets'] as { services: string[] }[])[0]!.services = ['b'];
    writeConfig();
    const checked = await suite.call('deploy.check', { certs: ['site'] });
    assert.ok(checked.ok, JSON.stringify(checked));
    assert.deepEqual(checked.result['checked'], ['a']);
    const waiting = await configStatus();
    assert.equal(waiting.sha256, inForce);
    assert.match(waiting.waiting ?? '', /^run \S+ of site is checked, not yet committed or rolled back$/);
    const reloaded = await suite.call('deploy.reload', { certs: ['site'] });
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
    assert.deepEqual(reloaded.result['reloaded'], ['a']);
    const after = await configStatus();
    assert.notEqual(after.sha256, inForce, 'taken at the first request after the commit');
    assert.equal(after.waiting, undefined);
    assert.equal(readFileSync(logs.a, 'utf8'), 'check\nreload\n');
    assert.throws(() => readFileSync(logs.b), /ENOENT/, 'the new config\'s service was never run for the old run');
  });
});
