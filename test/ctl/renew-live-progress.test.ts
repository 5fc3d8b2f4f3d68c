// certsepctl renew on a real terminal: tmux gives it a pty (so process.stdout.isTTY is true), the
// whole suite runs for real (Pebble, nginx, every daemon under its own uid via certsep-supervisor),
// and the screen tmux shows afterwards must hold the progress table once — redrawn in place, not
// appended — with every certificate's final state, then the summary.
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
    certsep = await startCertsep();
  });
  after(async () => {
    if (certsep) await tmux(['kill-server']);
    await certsep?.stop();
  });

  test('renew --all on a tty redraws one line per certificate in place and ends with each final state', async () => {
    // remain-on-exit keeps the pane (its screen and exit status) after certsepctl exits.
    const tmuxConf = join(certsep.dir, 'tmux.conf');
    writeFileSync(tmuxConf, 'set -g remain-on-exit on\nset -g history-limit 1000\n');
    const started = await tmux([
      '-f', tmuxConf, 'new-session', '-d', '-s', 'renew', '-x', '200', '-y', '50', '-e', 'CERTSEP_LOG_LEVEL=warn',
      process.execPath, join(REPO, 'dist', 'certsepctl.mjs'), '--config', certsep.configPath, 'renew', '--all',
    ]);
    assert.equal(started.code, 0, started.stderr);
    const capture = async () => (await tmux(['capture-pane', '-p', '-t', 'renew', '-S', '-'])).stdout;
    const exit = await waitFor(async () => {
      const pane = await tmux(['display-message', '-p', '-t', 'renew', '#{pane_dead} #{pane_dead_status}']);
      const [dead, status] = pane.stdout.trim().split(' ');
      // tmux may mark the pane dead a moment before it has the exit status.
      return dead === '1' && /^\d+$/.test(status ?? '') ? { status: Number(status) } : undefined;
    }, 120_000, 'certsepctl renew to exit in the tmux pane').catch(async (e: Error) => {
      throw new Error(`${e.message}; the pane shows:\n${await capture()}`);
    });
    const screen = await capture();
    assert.equal(exit.status, 0, `exit status ${exit.status}:\n${screen}`);

    assert.equal(screen.match(/^NAME +STEP +STATE +ELAPSED +DETAIL$/gm)?.length, 1, `the table is drawn once and redrawn in place:\n${screen}`);
    for (const site of sites) {
      assert.match(screen, new RegExp(`^${site} +\\S+(?: \\[[a-z0-9-]+\\])? +renewed +\\d+\\.\\ds `, 'm'), `${site} ends as renewed:\n${screen}`);
    }
    assert.doesNotMatch(screen, /\[[a-z0-9-]+\]: \w+ (?:\.\.\.|ok)/, 'no plain progress lines on a terminal');
    assert.doesNotMatch(screen, /\\x1b/, 'no escaped control characters leaked into the table');
    assert.match(screen, /^NAME +RESULT +ISSUED +DETAIL$/m, 'the summary follows the table');
    assert.match(screen, /run [0-9a-f]{16}: 3 renewed; reloaded [^;]+; exit 0/);
  });
});
