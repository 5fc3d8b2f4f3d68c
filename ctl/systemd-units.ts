// doctor's view of how the daemons get started. With systemd, certsep is nothing but five socket
// units and a timer: a unit that is missing or not enabled means a daemon that never starts after
// the next boot, found only when a certificate expires. Unit files and the .wants symlinks are read
// below `root` (what `systemctl enable` writes), so the check works on an image or a fake root.
// Without systemd, certsep-supervisor starts the daemons, and the sockets answering is the proof.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { DaemonName } from '../proto/api.ts';
import { socketPathOf } from '../runtime/daemon.ts';
import type { Finding } from './finding.ts';
import { canConnect } from './reach.ts';
import { pathExists, unitEnabled, unitMasked } from './unit-state.ts';

const DAEMONS: DaemonName[] = ['privd', 'keyd', 'acmed', 'netd', 'deployd'];

/** Each unit certsep enables, with the target its [Install] section names. */
const ENTRY_UNITS: { unit: string; wantedBy: string }[] = [
  ...DAEMONS.map((d) => ({ unit: `certsep-${d}.socket`, wantedBy: 'sockets.target' })),
  { unit: 'certsep-renew.timer', wantedBy: 'timers.target' },
];

// Where `systemctl enable` looks for unit files; ./install writes them to /etc/systemd/system.
const UNIT_DIRS = ['etc/systemd/system', 'usr/lib/systemd/system', 'lib/systemd/system'];

/** Whether to read units: systemd is PID 1 here, or the admin pointed doctor at another root. */
export function systemdManages(root: string): boolean {
  return root !== '/' || existsSync('/run/systemd/system');
}

export function checkUnits(root: string): Finding[] {
  const enable = root === '/' ? 'systemctl enable --now' : `systemctl --root=${root} enable`;
  return ENTRY_UNITS.map(({ unit, wantedBy }) => {
    const check = `unit ${unit}`;
    if (unitMasked(root, unit)) {
      return { level: 'fail', check, detail: `${unit} is masked (/etc/systemd/system/${unit} -> /dev/null)`, fix: `systemctl unmask ${unit} && ${enable} ${unit}` };
    }
    const file = UNIT_DIRS.map((d) => join(d, unit)).find((p) => pathExists(join(root, p)));
    if (!file) {
      return { level: 'fail', check, detail: `${unit} is not installed (no unit file in /${UNIT_DIRS.join(', /')})`, fix: 'sudo ./install (from a certsep checkout) installs and enables the units' };
    }
    const wants = `etc/systemd/system/${wantedBy}.wants/${unit}`;
    if (!unitEnabled(root, unit, wantedBy)) {
      return { level: 'fail', check, detail: `${unit} is installed (/${file}) but not enabled: nothing starts it at boot (no /${wants})`, fix: `${enable} ${unit}` };
    }
    return { level: 'ok', check, detail: `enabled (/${wants})` };
  });
}

/** Without systemd: the supervisor is the only thing that starts the daemons; say so and look. */
export async function checkSupervisor(config: Config): Promise<Finding> {
  const silent: string[] = [];
  for (const daemon of DAEMONS) if (!(await canConnect(socketPathOf(config, daemon)))) silent.push(daemon);
  const check = 'supervisor';
  const why = 'systemd is not running (no /run/systemd/system), so certsep-supervisor must run as root to start the daemons and the renewal schedule';
  if (silent.length === 0) return { level: 'ok', check, detail: `${why}; every daemon's socket answers` };
  return {
    level: 'fail',
    check,
    detail: `${why}; no answer from ${silent.join(', ')} (${config.paths.runDir})`,
    fix: 'start certsep-supervisor (sudo ./install starts it where systemd does not run), and keep it running from your init system',
  };
}
