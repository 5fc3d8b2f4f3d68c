// netd's authority is CAP_NET_ADMIN and nothing else: never root, so a compromised netd can
// change the network (and only within the namespace it runs in) but not read keys or files.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.ts';

const CAP_NET_ADMIN = 12n;

/** Effective capabilities of this process, from /proc/self/status. */
export function effectiveCapabilities(): bigint {
  const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return line ? BigInt(`0x${line[1]}`) : 0n;
}

/** Why netd must not start as it is, or null. */
export function privilegeProblem(config: Config): string | null {
  if (process.getuid?.() === 0 || process.geteuid?.() === 0) {
    return 'netd must not run as root: run it as certsep-net with AmbientCapabilities=CAP_NET_ADMIN';
  }
  const extra = effectiveCapabilities() & ~(1n << CAP_NET_ADMIN);
  if (extra !== 0n) return `netd holds capabilities beyond CAP_NET_ADMIN (CapEff mask 0x${extra.toString(16)}); give it CAP_NET_ADMIN alone`;
  const needsNft = Object.values(config.exposures).some((x) => x.method === 'nft');
  if (needsNft && (effectiveCapabilities() & (1n << CAP_NET_ADMIN)) === 0n) {
    return 'nft exposures are configured but netd lacks CAP_NET_ADMIN (AmbientCapabilities=CAP_NET_ADMIN in its unit)';
  }
  return null;
}
