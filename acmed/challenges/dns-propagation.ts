// Waiting until a dns-01 TXT record is visible: asking the CA to validate before the record has
// reached the server it queries fails the authorization, and a failed authorization counts
// against the CA's failed-validation rate limit.
import { Resolver } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcError } from '../../proto/errors.ts';
import { AcmedError } from '../errors.ts';

export async function waitForTxt(name: string, value: string, resolverAddress: string | undefined, timeoutSeconds: number): Promise<void> {
  const resolver = new Resolver({ timeout: 2_000, tries: 1 });
  if (resolverAddress !== undefined) {
    try {
      // setServers takes the config's forms as they are: "1.2.3.4", "1.2.3.4:5353", "[::1]:53".
      resolver.setServers([resolverAddress]);
    } catch (e) {
      throw new RpcError(AcmedError.CHALLENGE, `cannot use resolver ${resolverAddress}: ${(e as Error).message} (give an IP address and port)`);
    }
  }
  const deadline = Date.now() + timeoutSeconds * 1000;
  let pauseMs = 250;
  let last = 'no answer yet';
  for (;;) {
    try {
      const records = await resolver.resolveTxt(name);
      if (records.some((chunks) => chunks.join('') === value)) return;
      last = `${records.length} other TXT record(s)`;
    } catch (e) {
      last = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    }
    if (Date.now() + pauseMs > deadline) {
      throw new RpcError(AcmedError.DNS, `the TXT record ${name} was not visible at ${resolverAddress ?? 'the system resolver'} within ${timeoutSeconds} s (last answer: ${last})`);
    }
    await sleep(pauseMs);
    pauseMs = Math.min(pauseMs * 2, 5_000);
  }
}
