// Every authorization the CA hands back must be for a name this order asked for (RFC 8555 section
// 7.1.4: a wildcard name's authorization carries its base name with "wildcard": true). The
// identifier is the CA's text, and acmed would otherwise pass it on as it came: into a dns-01
// hook's environment (a hook that builds a command or an nsupdate script from it runs what a
// hostile CA wrote there), into nsupdate's update script, into DNS queries and error messages, and
// it decides which TXT records acmed publishes. So it is matched, type and value, against the
// configured names before any challenge is presented.
import type acme from 'acme-client';
import { RpcError } from '../proto/errors.ts';
import { AcmedError } from './errors.ts';

/** Throws E_CA_IDENTIFIER unless each authorization is for a name of `names` ("*.x" for a wildcard's). */
export function assertAuthorizationsAreOrdered(
  authorizations: readonly acme.Authorization[], names: readonly string[],
): void {
  const ordered = new Set(names);
  for (const authz of authorizations) {
    const { type, value } = (authz.identifier ?? {}) as { type?: unknown; value?: unknown };
    const wildcard = (authz as { wildcard?: unknown }).wildcard === true;
    const name = typeof value === 'string' ? (wildcard ? `*.${value}` : value) : undefined;
    if (type !== 'dns' || name === undefined || !ordered.has(name)) {
      throw new RpcError(
        AcmedError.CA_IDENTIFIER,
        `the CA asked to validate ${JSON.stringify({ type, value, wildcard }).slice(0, 300)}, which this order ` +
          `did not ask for (it asked for ${names.join(', ')}); no challenge was answered`,
      );
    }
  }
}
