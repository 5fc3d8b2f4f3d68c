import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNetns, createVethPair, deleteNetns, execInNetns, startDaemonInNetns } from './netns.ts';
import { killTree, runCommand, waitFor, waitForExit } from './proc.ts';
import { makeTempDir, removeTempDir } from './tmp.ts';

test('two namespaces joined by a veth pair reach each other and are deleted afterwards', async () => {
  const dir = makeTempDir('netns');
  const server = await createNetns('srv');
  const client = await createNetns('cli');
  try {
    await createVethPair({ ns: server, ifname: 'eth0', address: '10.79.0.1/24' }, { ns: client, ifname: 'eth0', address: '10.79.0.2/24' });
    writeFileSync(join(dir, 'index.html'), 'across the veth\n');
    const http = startDaemonInNetns(server, 'python3', ['-m', 'http.server', '8080', '--bind', '10.79.0.1', '--directory', dir], {
      logPath: join(dir, 'http.log'),
    });
    try {
      const body = await waitFor(async () => {
        const res = await execInNetns(client, 'curl', ['-sf', '-m', '2', 'http://10.79.0.1:8080/index.html']);
        return res.code === 0 ? res.stdout : undefined;
      }, 10_000, 'the HTTP server across the veth pair');
      assert.equal(body, 'across the veth\n');
    } finally {
      await killTree(http.pid!);
      await waitForExit(http);
    }
  } finally {
    await deleteNetns(client);
    await deleteNetns(server);
    removeTempDir(dir);
  }
  const list = await runCommand('ip', ['netns', 'list']);
  assert.doesNotMatch(list.stdout, new RegExp(`${server}|${client}`));
});

test('deleteNetns refuses a namespace the harness did not create', async () => {
  await assert.rejects(deleteNetns('lab-router'), /not created by the harness/);
});
