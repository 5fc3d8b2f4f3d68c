// privd against a real nginx serving TLS on a loopback port: install → `nginx -t` → reload, and
// the two ways a deploy can fail after the files were replaced (the check, the reload), which
// must leave the old files and the old certificate serving.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startNginx, type Nginx } from '../harness/nginx.ts';
import { freePort } from '../harness/ports.ts';
import { waitFor } from '../harness/proc.ts';
import { nginxService, readTarget, snapshot, startPrivdSuite, targetDir, type PrivdSuite } from './privd-suite.ts';

const NAMES = ['web.certsep.test', 'www.web.certsep.test'];

/** The fingerprint of the certificate nginx serves, verified against the test CA. */
function servedFingerprint(port: number, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: NAMES[0], ca: caPem }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once('error', reject);
  });
}

describe('privd deploying to a real nginx', () => {
  let suite: PrivdSuite;
  let nginx: Nginx;
  let port: number;
  let webDir: string;
  let sidecarDir: string;
  let snippet: string;
  let sidecarFlag: string;
  let bootstrapFingerprint: string;

  before(async () => {
    suite = await startPrivdSuite(async (dir, ca) => {
      webDir = targetDir(dir, 'nginx');
      sidecarDir = targetDir(dir, 'sidecar');
      // What the target held before certsep: nginx cannot start without a certificate.
      const bootstrap = await ca.issueWithNewKey(NAMES);
      writeFileSync(join(webDir, 'fullchain.pem'), bootstrap.chainPem);
      writeFileSync(join(webDir, 'privkey.pem'), bootstrap.keyPem, { mode: 0o600 });
      snippet = join(dir, 'snippet.conf');
      writeFileSync(snippet, 'add_header X-Certsep-Test ok;\n');
      sidecarFlag = join(dir, 'sidecar-reloads');
      writeFileSync(sidecarFlag, '');
      port = await freePort();
      nginx = await startNginx({
        servers: [{ listen: port, tls: { certPath: join(webDir, 'fullchain.pem'), keyPath: join(webDir, 'privkey.pem') }, extra: `include ${snippet};` }],
      });
      return {
        services: {
          nginx: nginxService(nginx),
          // A second service whose reload fails when the test removes its flag file.
          sidecar: { reload: { command: ['test', '-e', sidecarFlag] } },
        },
        certificates: [{
          name: 'web',
          domains: NAMES,
          challenge: { type: 'dns-01-hook', command: ['/bin/true'] },
          targets: [
            { dir: webDir, files: ['cert', 'chain', 'fullchain', 'privkey'], services: ['nginx'] },
            { dir: sidecarDir, files: ['combined'], mode: '0600', services: ['sidecar'] },
          ],
        }],
      };
    });
    bootstrapFingerprint = await servedFingerprint(port, suite.ca.rootPem);
  });

  after(async () => {
    await nginx?.stop();
    await suite?.stop();
  });

  const awaitServed = async (fingerprint: string) => {
    await waitFor(async () => (await servedFingerprint(port, suite.ca.rootPem)) === fingerprint, 10_000, `nginx to serve ${fingerprint}`);
    await nginx.oldWorkersGone();
  };

  it('privd installs a chain, checks nginx, reloads it, and nginx serves the new certificate', async () => {
    const issued = await suite.issue('web', 'ec-p256', { names: NAMES });
    const installed = await suite.install('web', 'ec-p256', issued);
    assert.deepEqual(installed['changedTargets'], [webDir, sidecarDir]);
    assert.equal(installed['version'], 1);

    const checked = await suite.call('deploy.check', { certs: ['web'] });
    assert.deepEqual(checked, { ok: true, result: { checked: ['nginx'] } });
    const reloaded = await suite.call('deploy.reload', { certs: ['web'] });
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
    assert.deepEqual(reloaded.result['reloaded'], ['nginx', 'sidecar']);
    assert.deepEqual(reloaded.result['committed'], [{ cert: 'web', runId: installed['runId'], versions: { 'ec-p256': 1 } }]);
    await awaitServed(issued.fingerprint);
    assert.notEqual(issued.fingerprint, bootstrapFingerprint);

    const files = readTarget(webDir);
    assert.deepEqual(Object.keys(files), ['cert.pem', 'chain.pem', 'fullchain.pem', 'privkey.pem']);
    assert.equal(files['cert.pem'], issued.leafPem);
    assert.equal(files['fullchain.pem'], issued.chainPem);
    assert.equal(files['privkey.pem'], issued.keyPem);
    assert.deepEqual(readTarget(sidecarDir), { 'combined.pem': issued.chainPem + issued.keyPem });
    const modes = snapshot(webDir, sidecarDir);
    assert.match(modes[join(webDir, 'cert.pem')]!, / 0:0 644$/);
    assert.match(modes[join(webDir, 'privkey.pem')]!, / 0:0 640$/);
    assert.match(modes[join(sidecarDir, 'combined.pem')]!, / 0:0 600$/);

    const lineage = snapshot(join(suite.dir, 'state', 'live'));
    assert.equal(lineage[join(suite.dir, 'state', 'live', 'web', 'fullchain.pem')], '-> ../../archive/web/fullchain1.pem');
    const status = await suite.call('status', { certs: ['web'] });
    assert.ok(status.ok);
    const [web] = status.result['certs'] as { pending: boolean; keyTypes: { installed: { version: number; leafPem: string; names: string[] }; targets: { matches: boolean }[] }[] }[];
    assert.equal(web!.pending, false);
    assert.equal(web!.keyTypes[0]!.installed.version, 1);
    assert.equal(web!.keyTypes[0]!.installed.leafPem, issued.leafPem, 'status carries the installed leaf, for ARI');
    assert.deepEqual(web!.keyTypes[0]!.installed.names, NAMES, 'and its names, to compare with the config');
    assert.doesNotMatch(JSON.stringify(status.result), /PRIVATE KEY/);
    assert.ok(web!.keyTypes[0]!.targets.every((t) => t.matches), JSON.stringify(web));
  });

  it('privd rolls back when nginx -t fails: files byte-identical, nginx still serves the old certificate', async () => {
    const before = snapshot(webDir, sidecarDir, join(suite.dir, 'state', 'live'), join(suite.dir, 'state', 'archive'));
    const served = await servedFingerprint(port, suite.ca.rootPem);
    const reloads = nginx.reloadCount();
    const mark = suite.auditMark();
    writeFileSync(snippet, 'this_is_not_an_nginx_directive on;\n');
    try {
      const issued = await suite.issue('web', 'ec-p256', { names: NAMES });
      await suite.install('web', 'ec-p256', issued);
      assert.equal(readTarget(webDir)['cert.pem'], issued.leafPem, 'the install itself replaced the files');

      const checked = await suite.call('deploy.check', { certs: ['web'] });
      assert.equal(checked.ok, false);
      assert.equal(checked.error.code, 'E_CHECK_FAILED');
      assert.match(checked.error.message, /unknown directive "this_is_not_an_nginx_directive"/);
      assert.match(checked.error.message, /restored the previous files of 2 target\(s\)/);

      assert.deepEqual(snapshot(webDir, sidecarDir, join(suite.dir, 'state', 'live'), join(suite.dir, 'state', 'archive')), before);
      assert.equal(await servedFingerprint(port, suite.ca.rootPem), served);
      assert.equal(nginx.reloadCount(), reloads, 'nginx was not reloaded');

      const check = await suite.awaitAudit(mark, (r) => r.method === 'deploy.check');
      const records = suite.auditRecords();
      const install = records.findLast((r) => r.method === 'deploy.install');
      const rollback = records.findLast((r) => r.method === 'run.rollback');
      assert.equal(install?.outcome, 'ok');
      assert.equal(install?.peer?.uid, 0);
      assert.equal(check.outcome, 'error');
      assert.equal(check.code, 'E_CHECK_FAILED');
      // The rollback happens inside deploy.check, whose outcome is recorded when it answers.
      assert.ok(install && rollback && mark < install.seq && install.seq < rollback.seq && rollback.seq < check.seq, 'install, rollback, failed check, in that order');
      assert.match(rollback.message ?? '', /check failed/);
      assert.equal(rollback.detail?.['cert'], 'web');
    } finally {
      writeFileSync(snippet, 'add_header X-Certsep-Test ok;\n');
    }
  });

  it('privd rolls back when a reload fails and reloads the old files, so nginx serves the old certificate again', async () => {
    const before = snapshot(webDir, sidecarDir, join(suite.dir, 'state', 'live'), join(suite.dir, 'state', 'archive'));
    const served = await servedFingerprint(port, suite.ca.rootPem);
    const reloads = nginx.reloadCount();
    rmSync(sidecarFlag);
    try {
      const issued = await suite.issue('web', 'ec-p256', { names: NAMES });
      await suite.install('web', 'ec-p256', issued);
      assert.ok((await suite.call('deploy.check', { certs: ['web'] })).ok);

      const reloaded = await suite.call('deploy.reload', { certs: ['web'] });
      assert.equal(reloaded.ok, false);
      assert.equal(reloaded.error.code, 'E_RELOAD_FAILED');
      assert.match(reloaded.error.message, /service sidecar: `test -e .*` exit 1/);
      assert.match(reloaded.error.message, /reload with the previous files failed too/, 'the sidecar fails again, and says so');

      assert.deepEqual(snapshot(webDir, sidecarDir, join(suite.dir, 'state', 'live'), join(suite.dir, 'state', 'archive')), before);
      // nginx was reloaded twice: with the new files, then with the restored ones.
      await waitFor(() => nginx.reloadCount() >= reloads + 2, 10_000, 'nginx to be reloaded twice');
      await awaitServed(served);
      const rollback = suite.auditRecords().findLast((r) => r.method === 'run.rollback');
      assert.match(rollback?.message ?? '', /reload failed: service sidecar/);
    } finally {
      writeFileSync(sidecarFlag, '');
    }
  });
});
