import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeTempDir, removeTempDir } from './tmp.ts';
import { execAs, TEST_IDS } from './uids.ts';

test('makeTempDir gives a root-owned 0755 directory with no writable ancestor', () => {
  const dir = makeTempDir('tmp-test');
  try {
    for (let d = dir; d !== '/'; d = dirname(d)) {
      const st = statSync(d);
      assert.equal(st.uid, 0, `${d} is owned by root`);
      assert.equal(st.mode & 0o022, 0, `${d} is not group/world-writable`);
    }
    assert.equal(statSync(dir).mode & 0o777, 0o755);
  } finally {
    removeTempDir(dir);
  }
  assert.equal(existsSync(dir), false);
});

test('another uid can read a file in a temp directory but not write there', async () => {
  const dir = makeTempDir('tmp-test');
  try {
    writeFileSync(join(dir, 'public.txt'), 'readable\n', { mode: 0o644 });
    const read = await execAs(TEST_IDS.other, 'cat', [join(dir, 'public.txt')]);
    assert.equal(read.stdout, 'readable\n', read.stderr);
    const write = await execAs(TEST_IDS.other, 'touch', [join(dir, 'intruder')]);
    assert.notEqual(write.code, 0);
  } finally {
    removeTempDir(dir);
  }
});

test('removeTempDir refuses a path outside the test base', () => {
  assert.throws(() => removeTempDir('/var/tmp/../lib/certsep-test/../dpkg'), /not under/);
});
