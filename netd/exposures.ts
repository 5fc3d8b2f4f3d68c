// Which exposure a lease request may use. Everything that ends up in a router or in nftables
// (method, interface, ports, addresses) comes from the config; the wire only picks a name.
import { isIP } from 'node:net';
import { certificateByName, type Config, type ExposureConfig } from '../config/schema.ts';
import { RpcError } from '../proto/errors.ts';
import { NetdError } from './api.ts';

export function exposureForLease(config: Config, cert: string, exposure: string, ttlSeconds: number): ExposureConfig {
  const x = Object.hasOwn(config.exposures, exposure) ? config.exposures[exposure] : undefined;
  if (!x) {
    const names = Object.keys(config.exposures);
    throw new RpcError(NetdError.UNKNOWN_EXPOSURE, `no exposure "${exposure}" in the config (${names.length > 0 ? `configured: ${names.join(', ')}` : 'none are configured'})`);
  }
  const certificate = certificateByName(config, cert);
  if (!certificate) throw new RpcError(NetdError.EXPOSURE_NOT_ALLOWED, `certificate "${cert}" is not in the config, so it may not use any exposure`);
  if (certificate.exposure !== exposure) {
    const allowed = certificate.exposure === undefined ? 'names no exposure' : `names exposure "${certificate.exposure}"`;
    throw new RpcError(NetdError.EXPOSURE_NOT_ALLOWED, `certificate "${cert}" may not use exposure "${exposure}": its config ${allowed}`);
  }
  if (ttlSeconds > x.maxTtlSeconds) {
    throw new RpcError(NetdError.TTL, `a lease on exposure "${exposure}" lasts at most ${x.maxTtlSeconds} s (maxTtlSeconds); ${ttlSeconds} s was asked`);
  }
  return x;
}

/**
 * Problems that make the exposures unusable, found before netd serves: two exposures of one
 * method on the same interface and external port would fight over one set element or mapping,
 * and IPv6 has no route_localnet, so DNAT to ::1 from outside can never work.
 */
export function exposureConfigProblems(config: Config): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const [name, x] of Object.entries(config.exposures)) {
    const key = `${x.method} ${x.interface} ${x.externalPort}`;
    const other = seen.get(key);
    if (other !== undefined) problems.push(`exposures "${other}" and "${name}" both use ${x.method} on ${x.interface} port ${x.externalPort}`);
    else seen.set(key, name);
    if (x.method === 'nft' && isIP(x.internalAddress) === 6 && x.internalAddress.replace(/^[0:]+/, '') === '1') {
      problems.push(`exposure "${name}": DNAT to the IPv6 loopback address is not possible; use 127.0.0.1 or a local address`);
    }
  }
  return problems;
}
