// A service's check commands (e.g. `nginx -t`) prove it will accept the new files before it is
// asked to load them. Each service is checked once, each of its commands in order.
import type { Config } from '../config/schema.ts';
import { describeFailure, runCommand } from './run-command.ts';

/** The first failure, described for the caller and the audit log; null when every check passed. */
export async function runChecks(config: Config, services: readonly string[]): Promise<string | null> {
  for (const name of services) {
    const service = config.services[name]!;
    for (const argv of service.check) {
      const result = await runCommand(argv, service.timeoutSeconds * 1000);
      if (!result.ok) return describeFailure(name, argv, result);
    }
  }
  return null;
}
