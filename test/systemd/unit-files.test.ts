// The shipped unit files as systemd 252 reads them, without booting anything: `systemd-analyze
// verify` must say nothing at all (it exits 0 even on unknown keys, so any stderr line fails), and
// `systemd-analyze security --offline=yes` exposure scores are printed and held to thresholds.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCommand } from '../harness/proc.ts';
import { parseConfig } from '../../config/load.ts';
import { SOCKET_GROUPS, SOCKET_MODE } from '../../supervisor/socket-access.ts';
import { REPO } from '../harness/suite.ts';

const UNITS = join(REPO, 'systemd');
// privd is root and writes other owners' files; everything else is an unprivileged daemon.
const MAX_EXPOSURE: Record<string, number> = {
  'certsep-privd.service': 3.0,
  'certsep-keyd.service': 1.5,
  'certsep-acmed.service': 1.5,
  'certsep-netd.service': 1.5,
  'certsep-deployd.service': 1.5,
  'certsep-renew.service': 1.5,
};

test('systemd-analyze verify says nothing about any certsep unit', async () => {
  const units = readdirSync(UNITS).filter((f) => /^certsep-.*\.(service|socket|timer)$/.test(f)).map((f) => join(UNITS, f));
  assert.equal(units.length, 12);
  const r = await runCommand('systemd-analyze', ['verify', ...units], { cwd: UNITS });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('every service stays within its systemd-analyze security exposure threshold', async () => {
  const rows: string[] = [];
  for (const [unit, max] of Object.entries(MAX_EXPOSURE)) {
    const r = await runCommand('systemd-analyze', ['security', '--offline=yes', '--no-pager', join(UNITS, unit)]);
    const score = Number(/Overall exposure level for \S+: ([0-9.]+)/.exec(r.stdout)?.[1]);
    assert.ok(Number.isFinite(score), `no score for ${unit}:\n${r.stdout}\n${r.stderr}`);
    rows.push(`| ${unit} | ${score.toFixed(1)} | ≤ ${max.toFixed(1)} |`);
    assert.ok(score <= max, `${unit}: exposure ${score} above ${max}`);
  }
  console.log(['| unit | exposure | threshold |', '|---|---|---|', ...rows].map((l) => `# ${l}`).join('\n'));
});

test('each .socket unit has the owner, group and mode certsep-supervisor gives the same socket', () => {
  // The supervisor's owner is the daemon's configured account: the default names, as installed.
  const users: Record<string, unknown> = parseConfig('', 'defaults').users;
  for (const [daemon, group] of Object.entries(SOCKET_GROUPS)) {
    const unit = readFileSync(join(UNITS, `certsep-${daemon}.socket`), 'utf8');
    const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1];
    assert.deepEqual([value('SocketUser'), value('SocketGroup'), value('SocketMode')],
      [daemon === 'privd' ? 'root' : users[daemon], group, `0${SOCKET_MODE.toString(8)}`], daemon);
  }
});
