// Who can get at keyd's keys: keyd runs unprivileged, its files are its own, only uid 0 receives a
// key, every refusal is audited with the caller's uid and pid, and bad input changes nothing.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, readdirSync, readFileSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execAs, TEST_IDS, type Identity } from '../harness/uids.ts';
import type { RawAnswer } from '../harness/raw-call.ts';
import { startKeyd, type KeydUnderTest } from './start-keyd.ts';

const OTHER_UIDS: [string, Identity][] = [
  ['acmed', TEST_IDS.acmed],
  ['netd', TEST_IDS.netd],
  ['deployd', TEST_IDS.deployd],
  ['an unrelated uid', TEST_IDS.other],
];

function errorCode(answer: RawAnswer): string {
  assert.equal(answer.ok, false, `expected a refusal, got ${JSON.stringify(answer)}`);
  return answer.ok ? '' : answer.error.code;
}

/** Every path under dir with its type, mode, owner, size and mtime: any write shows up as a difference. */
function snapshot(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => {
      const st = lstatSync(join(dir, name), { bigint: true });
      return `${name} ${st.mode.toString(8)} ${st.uid} ${st.size} ${st.mtimeNs}`;
    })
    .sort();
}

describe('keyd isolation', () => {
  let keyd: KeydUnderTest;
  let keyFile: string;
  let keyId: string;
  before(async () => {
    keyd = await startKeyd([
      { name: 'www', domains: ['www.example.com', 'example.com'], keyTypes: ['ec-p256'] },
      { name: 'kept', domains: ['kept.example.com'], keyTypes: ['ec-p256'], keyPolicy: 'reuse' },
    ]);
    keyId = (await keyd.createCsr('www', 'ec-p256')).keyId;
    keyFile = join(keyd.stateDir, 'www', 'ec-p256', `${keyId}.pem`);
  });
  after(async () => {
    await keyd?.stop();
  });

  it('keyd runs as its own non-root uid and gid with no capabilities', () => {
    const status = readFileSync(`/proc/${keyd.daemon.child.pid}/status`, 'utf8');
    const field = (name: string) => status.match(new RegExp(`^${name}:\\s+(.*)$`, 'm'))?.[1]?.split(/\s+/);
    assert.deepEqual(field('Uid'), Array(4).fill(String(TEST_IDS.keyd.uid)));
    assert.deepEqual(field('Gid'), Array(4).fill(String(TEST_IDS.keyd.gid)));
    assert.deepEqual(field('CapEff'), ['0000000000000000']);
    assert.deepEqual(field('CapPrm'), ['0000000000000000']);
  });

  it('key files are 0600 and directories 0700, all owned by keyd', () => {
    const dirs = [keyd.stateDir, ...readdirSync(keyd.stateDir, { recursive: true, encoding: 'utf8' }).map((name) => join(keyd.stateDir, name))];
    for (const path of dirs) {
      const st = lstatSync(path);
      assert.equal(st.uid, TEST_IDS.keyd.uid, `${path} is owned by keyd`);
      assert.equal(st.mode & 0o7777, st.isDirectory() ? 0o700 : 0o600, `${path} mode`);
      assert.ok(st.isDirectory() || st.isFile(), `${path} is a plain file or directory`);
    }
    assert.ok(lstatSync(keyFile).isFile());
  });

  for (const [who, id] of OTHER_UIDS) {
    it(`${who} (uid ${id.uid}) cannot read a key file or list keyd's state dir`, async () => {
      const cat = await execAs(id, 'cat', [keyFile]);
      assert.notEqual(cat.code, 0);
      assert.match(cat.stderr, /Permission denied/);
      assert.doesNotMatch(cat.stdout, /PRIVATE KEY/);
      const ls = await execAs(id, 'ls', [keyd.stateDir]);
      assert.notEqual(ls.code, 0);
      assert.match(ls.stderr, /Permission denied/);
    });
  }

  for (const [who, id] of OTHER_UIDS) {
    it(`key.export from ${who} (uid ${id.uid}) is refused with E_PEER and audited with its uid and pid`, async () => {
      const { pid, answer } = await keyd.callAs(id, 'key.export', { cert: 'www', keyType: 'ec-p256', keyId });
      assert.equal(errorCode(answer), 'E_PEER');
      const record = keyd.auditRecords().find((r) => r.method === 'key.export' && r.peer?.pid === pid);
      assert.ok(record, `an audit record for pid ${pid}`);
      assert.deepEqual([record.peer?.uid, record.outcome, record.code], [id.uid, 'refused', 'E_PEER']);
    });
  }

  for (const [who, id] of [OTHER_UIDS[0]!, OTHER_UIDS[3]!]) {
    it(`csr.create from ${who} (uid ${id.uid}) is refused with E_PEER and audited`, async () => {
      const before = snapshot(keyd.stateDir);
      const { pid, answer } = await keyd.callAs(id, 'csr.create', { cert: 'www', keyType: 'ec-p256' });
      assert.equal(errorCode(answer), 'E_PEER');
      const record = keyd.auditRecords().find((r) => r.method === 'csr.create' && r.peer?.pid === pid);
      assert.deepEqual([record?.peer?.uid, record?.outcome, record?.code], [id.uid, 'refused', 'E_PEER']);
      assert.deepEqual(snapshot(keyd.stateDir), before);
    });
  }

  it('unknown certificates, path-like names and unconfigured key types get clear errors and write nothing', async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ cert: 'nope', keyType: 'ec-p256' }, 'E_UNKNOWN_CERT', /no certificate named "nope"/],
      [{ cert: '../x', keyType: 'ec-p256' }, 'E_SCHEMA', /certificate names/],
      [{ cert: 'a/b', keyType: 'ec-p256' }, 'E_SCHEMA', /certificate names/],
      [{ cert: '..', keyType: 'ec-p256' }, 'E_SCHEMA', /certificate names/],
      [{ cert: 'www\u0000', keyType: 'ec-p256' }, 'E_SCHEMA', /certificate names/],
      [{ cert: '', keyType: 'ec-p256' }, 'E_SCHEMA', /certificate names/],
      [{ cert: 'WWW', keyType: 'ec-p256' }, 'E_SCHEMA', /certificate names/],
      [{ cert: 'www', keyType: 'rsa-1024' }, 'E_SCHEMA', /keyType/],
      [{ cert: 'www', keyType: '../../etc' }, 'E_SCHEMA', /keyType/],
      [{ cert: 'www', keyType: 'rsa-2048' }, 'E_KEY_TYPE', /configured for key types ec-p256, not rsa-2048/],
      [{ cert: 'www', keyType: 'ec-p256', dir: '/tmp' }, 'E_SCHEMA', /dir/],
    ];
    const before = snapshot(keyd.stateDir);
    for (const [params, code, message] of cases) {
      const { answer } = await keyd.callAs(TEST_IDS.deployd, 'csr.create', params);
      assert.equal(errorCode(answer), code, `csr.create ${JSON.stringify(params)}`);
      assert.match(answer.ok ? '' : answer.error.message, message);
    }
    const exports: [unknown, string][] = [
      [{ cert: 'nope', keyType: 'ec-p256', keyId }, 'E_UNKNOWN_CERT'],
      [{ cert: '../www', keyType: 'ec-p256', keyId }, 'E_SCHEMA'],
      [{ cert: 'www', keyType: 'ec-p256', keyId: '../../../etc/shadow' }, 'E_SCHEMA'],
      [{ cert: 'www', keyType: 'ec-p256', keyId: keyId.toUpperCase() }, 'E_SCHEMA'],
      [{ cert: 'www', keyType: 'rsa-2048', keyId }, 'E_KEY_TYPE'],
      [{ cert: 'www', keyType: 'ec-p256', keyId: '0'.repeat(64) }, 'E_NO_KEY'],
    ];
    for (const [params, code] of exports) {
      assert.equal(errorCode(await keyd.callAsRoot('key.export', params)), code, `key.export ${JSON.stringify(params)}`);
    }
    assert.deepEqual(snapshot(keyd.stateDir), before);
    const refused = keyd.auditRecords().filter((r) => r.outcome !== 'ok' && (r.method === 'csr.create' || r.method === 'key.export'));
    for (const code of ['E_UNKNOWN_CERT', 'E_SCHEMA', 'E_KEY_TYPE', 'E_NO_KEY']) {
      assert.ok(refused.some((r) => r.code === code), `${code} is in the audit log`);
    }
  });

  it('a key file made 0644 or given to root by root is refused by key.export and is audited', async () => {
    chmodSync(keyFile, 0o644);
    try {
      const answer = await keyd.callAsRoot('key.export', { cert: 'www', keyType: 'ec-p256', keyId });
      assert.equal(errorCode(answer), 'E_KEY_TAMPERED');
      assert.match(answer.ok ? '' : answer.error.message, /mode 0644/);
    } finally {
      chmodSync(keyFile, 0o600);
    }
    chownSync(keyFile, 0, 0);
    try {
      assert.equal(errorCode(await keyd.callAsRoot('key.export', { cert: 'www', keyType: 'ec-p256', keyId })), 'E_KEY_TAMPERED');
    } finally {
      chownSync(keyFile, TEST_IDS.keyd.uid, TEST_IDS.keyd.gid);
    }
    const record = keyd.auditRecords().findLast((r) => r.method === 'key.export');
    assert.deepEqual([record?.peer?.uid, record?.outcome, record?.code], [0, 'error', 'E_KEY_TAMPERED']);
    await keyd.exportKey('www', 'ec-p256', keyId);
  });

  it('a key file replaced by a symlink or by another key is refused', async () => {
    const other = (await keyd.createCsr('www', 'ec-p256')).keyId;
    const otherFile = join(keyd.stateDir, 'www', 'ec-p256', `${other}.pem`);
    const aside = `${keyFile}.aside`;
    renameSync(keyFile, aside);
    try {
      symlinkSync(otherFile, keyFile);
      assert.equal(errorCode(await keyd.callAsRoot('key.export', { cert: 'www', keyType: 'ec-p256', keyId })), 'E_KEY_TAMPERED');
      unlinkSync(keyFile);
      renameSync(otherFile, keyFile);
      assert.equal(errorCode(await keyd.callAsRoot('key.export', { cert: 'www', keyType: 'ec-p256', keyId })), 'E_KEY_TAMPERED');
      renameSync(keyFile, otherFile);
    } finally {
      renameSync(aside, keyFile);
    }
    await keyd.exportKey('www', 'ec-p256', keyId);
  });

  it('under keyPolicy reuse a tampered current key is refused instead of being put in a new CSR', async () => {
    const { keyId: kept } = await keyd.createCsr('kept', 'ec-p256');
    const file = join(keyd.stateDir, 'kept', 'ec-p256', `${kept}.pem`);
    chmodSync(file, 0o640);
    try {
      const { answer } = await keyd.callAs(TEST_IDS.deployd, 'csr.create', { cert: 'kept', keyType: 'ec-p256' });
      assert.equal(errorCode(answer), 'E_KEY_TAMPERED');
    } finally {
      chmodSync(file, 0o600);
    }
    assert.equal((await keyd.createCsr('kept', 'ec-p256')).keyId, kept);
  });
});
