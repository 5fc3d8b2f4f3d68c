// Which config each daemon runs, against the file certsepctl read (sha256 of its bytes): for
// status, reload and doctor. Under systemd a daemon that is not running is not started just to be
// asked: a socket-activated daemon reads the file when it starts, so it cannot run an older one.
import { execFile } from 'node:child_process';
import type { ConfigFile } from '../config/load.ts';
import { defineApi, type DaemonName } from '../proto/api.ts';
import { configStatusMethod, type ConfigStatus } from '../runtime/config-status.ts';
import { callDaemon } from './deployd-call.ts';
import type { ConfigAgreement, DaemonConfig } from './status-json.ts';
import { systemdManages } from './systemd-units.ts';

const DAEMONS = ['privd', 'keyd', 'acmed', 'netd', 'deployd'] as const;

/** Asks each daemon (reread: look at the file again even if it seems unchanged, as SIGHUP does). */
export async function compareDaemonConfigs(file: ConfigFile, reread: boolean): Promise<ConfigAgreement> {
  const units = systemdManages('/') ? await unitStates() : new Map<DaemonName, string>();
  const daemons = await Promise.all(DAEMONS.map(async (daemon): Promise<DaemonConfig> => {
    const unit = units.get(daemon);
    if (unit === 'inactive') return { daemon, state: 'not-running' };
    const service = `certsep-${daemon}.service`;
    if (unit === 'failed') return { daemon, state: 'failed', error: `${service} failed (journalctl -u ${service})` };
    let answer: ConfigStatus;
    try {
      answer = await askConfigStatus(file, daemon, reread);
    } catch (e) {
      return { daemon, state: 'unreachable', error: (e as Error).message };
    }
    const { path, sha256, loadedAt, refused, waiting } = answer;
    const state = refused ? 'refused' : sha256 === file.sha256 ? 'current' : 'older';
    return { daemon, state, path, sha256, loadedAt, ...(refused ? { refused } : {}), ...(waiting ? { waiting } : {}) };
  }));
  return { path: file.path, sha256: file.sha256, daemons };
}

/** Every daemon's api.ts lists config.status with this one spec, so one call shape reaches them all. */
function askConfigStatus(file: ConfigFile, daemon: DaemonName, reread: boolean): Promise<ConfigStatus> {
  const api = defineApi(daemon, { 'config.status': configStatusMethod });
  return callDaemon(file.config, api, 'config.status', { reread });
}

/** `systemctl is-active` of the five services: active, inactive, failed, activating, ... */
function unitStates(): Promise<Map<DaemonName, string>> {
  return new Promise((resolve) => {
    const units = DAEMONS.map((d) => `certsep-${d}.service`);
    execFile('systemctl', ['is-active', ...units], { timeout: 10_000 }, (_error, stdout) => {
      // is-active exits 3 when any unit is not active, and still prints one state per unit.
      const states = String(stdout).trim().split('\n');
      resolve(new Map(states.length === DAEMONS.length ? DAEMONS.map((d, i) => [d, states[i]!.trim()]) : []));
    });
  });
}

/** True when a daemon will not take the file as it is: it refused it, or its unit failed. */
export function someDaemonRefused(agreement: ConfigAgreement): boolean {
  return agreement.daemons.some((d) => d.state === 'failed' || d.state === 'refused');
}

/**
 * What differs from the file: a line per daemon that runs another config or failed (the same
 * refusal once for all that share it); none when all run it. A daemon that did not answer is left
 * to reload and doctor: its config is unknown, and a non-root admin cannot reach keyd's socket.
 */
export function describeDisagreement(agreement: ConfigAgreement): string[] {
  return describe(agreement, agreement.daemons.filter((d) => ['refused', 'older', 'failed'].includes(d.state)));
}

/** Every daemon's state (the same refusal once for all that share it): certsepctl reload. */
export function describeEveryDaemon(agreement: ConfigAgreement): string[] {
  return describe(agreement, agreement.daemons);
}

function describe(agreement: ConfigAgreement, daemons: DaemonConfig[]): string[] {
  const refusals = new Map<string, DaemonConfig[]>();
  for (const d of daemons.filter((d) => d.state === 'refused')) {
    const key = JSON.stringify([d.path, d.sha256, d.refused!.code, d.refused!.issues]);
    refusals.set(key, [...(refusals.get(key) ?? []), d]);
  }
  return daemons.flatMap((d) => {
    if (d.state !== 'refused') return [describeDaemon(agreement, d)];
    const key = JSON.stringify([d.path, d.sha256, d.refused!.code, d.refused!.issues]);
    const same = refusals.get(key)!;
    if (same[0] !== d) return [];
    const who = same.map((s) => s.daemon).join(', ');
    const keep = same.length > 1 ? 'keep the config they had' : 'keeps the config it had';
    const head = `${who} REFUSED ${d.path ?? agreement.path} as it is now (${d.refused!.code})`;
    return [`${head} and ${keep} (sha256 ${d.sha256?.slice(0, 12)}):`, ...d.refused!.issues.map((i) => `  ${i}`)];
  });
}

function describeDaemon(agreement: ConfigAgreement, d: DaemonConfig): string {
  const runs = `sha256 ${d.sha256?.slice(0, 12)}, loaded ${d.loadedAt}`;
  switch (d.state) {
    case 'current': return `${d.daemon}: runs ${agreement.path} (${runs})`;
    case 'not-running': return `${d.daemon}: not running; it reads ${agreement.path} when it starts`;
    case 'failed':
    case 'unreachable': return `${d.daemon}: ${d.state === 'failed' ? 'FAILED' : 'no answer'}: ${d.error}`;
    case 'refused':
    case 'older': {
      const head = `${d.daemon} runs an older config than ${agreement.path} (${runs})`;
      if (d.waiting) return `${head} while ${d.waiting}; it switches when that is done`;
      return `${head}; it takes the file at its next request`;
    }
  }
}
