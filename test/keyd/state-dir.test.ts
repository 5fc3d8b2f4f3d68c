// keyd's state dir as it finds it at start: missing (made 0700), too open (tightened to 0700), or
// someone else's (keyd will not keep keys there and does not start).
import assert from 'node:assert/strict';
import { chmodSync, chownSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TEST_IDS } from '../harness/uids.ts';
import { startKeyd } from './start-keyd.ts';

const CERTS = [{ name: 'www', domains: ['www.example.com'] }];

describe('keyd state dir', () => {
  it('keyd creates a missing state dir 0700 and keeps its first key there', async () => {
    const keyd = await startKeyd(CERTS, {
      prepare(dir) {
        rmdirSync(join(dir, 'state', 'keyd'));
        // Like systemd's StateDirectory=, the parent is where keyd may create its own dir.
        chownSync(join(dir, 'state'), TEST_IDS.keyd.uid, TEST_IDS.keyd.gid);
      },
    });
    try {
      const st = statSync(keyd.stateDir);
      assert.deepEqual([st.uid, st.mode & 0o7777], [TEST_IDS.keyd.uid, 0o700]);
      const { keyId } = await keyd.createCsr('www', 'ec-p256');
      const key = statSync(join(keyd.stateDir, 'www', 'ec-p256', `${keyId}.pem`));
      assert.deepEqual([key.uid, key.mode & 0o7777], [TEST_IDS.keyd.uid, 0o600]);
    } finally {
      await keyd.stop();
    }
  });

  it('keyd tightens a group- and world-readable state dir of its own to 0700', async () => {
    const keyd = await startKeyd(CERTS, { prepare: (dir) => chmodSync(join(dir, 'state', 'keyd'), 0o755) });
    try {
      assert.equal(statSync(keyd.stateDir).mode & 0o7777, 0o700);
    } finally {
      await keyd.stop();
    }
  });

  it('keyd refuses to start when its state dir belongs to another uid', async () => {
    await assert.rejects(
      startKeyd(CERTS, { prepare: (dir) => chownSync(join(dir, 'state', 'keyd'), TEST_IDS.acmed.uid, TEST_IDS.acmed.gid) }),
      /exited during start-up[\s\S]*owned by uid 61002, not keyd's uid 61001/,
    );
  });
});
