// Which services a set of certificates affects, and reloading them: each service at most once per
// call, in the order the config lists services, with `systemctl <action> <unit>` (unit from the
// config) or the configured command.
import type { CertificateConfig, Config, ServiceConfig } from '../config/schema.ts';
import { describeFailure, runCommand } from './run-command.ts';

export function affectedServices(config: Config, certs: readonly CertificateConfig[]): string[] {
  const named = new Set(certs.flatMap((cert) => cert.targets.flatMap((target) => target.services)));
  return Object.keys(config.services).filter((service) => named.has(service));
}

function reloadArgv(service: ServiceConfig): string[] {
  return 'systemd' in service.reload ? ['systemctl', service.reload.action, service.reload.systemd] : [...service.reload.command];
}

export interface ReloadOutcome {
  reloaded: string[];
  failures: string[];
}

/** Stops at the first failure unless keepGoing (used when reloading the restored files). */
export async function reloadServices(config: Config, services: readonly string[], keepGoing: boolean): Promise<ReloadOutcome> {
  const outcome: ReloadOutcome = { reloaded: [], failures: [] };
  for (const name of services) {
    const service = config.services[name]!;
    const argv = reloadArgv(service);
    const result = await runCommand(argv, service.timeoutSeconds * 1000);
    if (result.ok) {
      outcome.reloaded.push(name);
      continue;
    }
    outcome.failures.push(describeFailure(name, argv, result));
    if (!keepGoing) break;
  }
  return outcome;
}
