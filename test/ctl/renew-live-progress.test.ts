// certsepctl renew on a real terminal: tmux gives it a pty (so process.stdout.isTTY is true), the
// whole suite runs for real (Pebble, nginx, every daemon under its own uid via certsep-supervisor),
// nginx's check sleeps 2 s so the screen can be read while a step runs. Every screen read during
// the run holds the table once (redrawn in place, not appended) and one shows a step running with
// its elapsed time growing; the last one holds every certificate's final state, then the summary.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, waitFor } from '../harness/proc.ts';
import { REPO } from '../harness/suite.ts';
import { startCertsep, SITES, type CertsepUnderTest, type Site } from '../deployd/certsep-under-test.ts';

const sites = Object.keys(SITES) as Site[];

describe('certsepctl renew on a terminal', () => {
  let certsep: CertsepUnderTest;
  // A private tmux server whose socket lives in the suite's temp dir: never the user's server,
  // killed with everything in it, its socket removed with the dir.
  const tmux = (args: string[]) => runCommand('tmux', ['-S', join(certsep.dir, 'tmux.sock'), ...args], { timeoutMs: 10_000 });

  before(async () => {
    certsep = await startCertsep({ slowCheckSeconds: 2 });
  });
  after(async () => {
    if (certsep) await tmux(['kill-server']);
    await certsep?.stop();
  });

  test('renew --all on a tty redraws one line per certificate in place and ends with each final state', async () => {
    // remain-on-exit keeps the pane and its screen after certsepctl exits.
    const tmuxConf = join(certsep.dir, 'tmux.conf');
    writeFileSync(tmuxConf, 'set -g remain-on-exit on\nset -g history-limit 1000\n');
    const started = await tmux([
      '-f', tmuxConf, 'new-session', '-d', '-s', 'renew', '-x', '200', '-y', '50', '-e', 'CERTSEP_LOG_LEVEL=warn',
      process.execPath, join(REPO, 'dist', 'certsepctl.mjs'), '--config', certsep.configPath, 'renew', '--all',
    ]);
    assert.equal(started.code, 0, started.stderr);
    const capture = async () => (await tmux(['capture-pane', '-p', '-t', 'renew', '-S', '-'])).stdout;
    const tableHeader = /^NAME +STEP +STATE +ELAPSED +DETAIL$/gm;
    const running: { screen: string; elapsed: number }[] = [];
    // pane_dead only: on this kind of machine tmux 3.3 sometimes never fills in pane_dead_status,
    // so the exit code is read from the summary line, which certsepctl also exits with.
    await waitFor(async () => {
      const during = await capture();
      const check = /^ec +check(?: \[ec-p256\])? +running +(\d+\.\d)s/m.exec(during);
      if (check) running.push({ screen: during, elapsed: Number(check[1]) });
      const pane = await tmux(['display-message', '-p', '-t', 'renew', '#{pane_dead}']);
      return pane.stdout.trim() === '1';
    }, 120_000, 'certsepctl renew to exit in the tmux pane').catch(async (e: Error) => {
      throw new Error(`${e.message}; the pane shows:\n${await capture()}`);
    });
    const screen = await capture();

    assert.ok(running.length >= 2, `the screen showed ec's check running (${running.length} times)`);
    assert.ok(running.at(-1)!.elapsed > running[0]!.elapsed, `elapsed time grows while the check runs: ${running.map((r) => r.elapsed).join(', ')}`);
    for (const { screen: during } of running) assert.equal(during.match(tableHeader)?.length, 1, `mid-run, the table is there once:\n${during}`);
    assert.equal(screen.match(tableHeader)?.length, 1, `the table is drawn once and redrawn in place:\n${screen}`);
    for (const site of sites) {
      assert.match(screen, new RegExp(`^${site} +\\S+(?: \\[[a-z0-9-]+\\])? +renewed +\\d+\\.\\ds `, 'm'), `${site} ends as renewed:\n${screen}`);
    }
    assert.doesNotMatch(screen, /\[[a-z0-9-]+\]: \w+ (?:\.\.\.|ok)/, 'no plain progress lines on a terminal');
    assert.doesNotMatch(screen, /\\u001b/, 'no escaped control characters leaked into the table');
    assert.match(screen, /^NAME +RESULT +ISSUED +DETAIL$/m, 'the summary follows the table');
    assert.match(screen, /run [0-9a-f]{16}: 3 renewed; reloaded [^;]+; exit 0/);
  });
});
