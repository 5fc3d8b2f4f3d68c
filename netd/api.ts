// netd's pledge: the only things netd does, and for whom. netd opens a port from outside to a
// local http-01 listener for a while — a lease — and nothing else. What is opened (method,
// interface, ports, addresses) is never taken from the wire: a caller names one of the config's
// `exposures:` and netd looks up the rest; a certificate may only use the exposure its config
// names. Every lease has a deadline that the router (UPnP lease duration) or the kernel (nftables
// set element timeout) enforces by itself, so an exposure ends even if netd or its caller dies.
//  - lease.open: deployd (or an admin, by hand) opens an exposure for one certificate.
//  - lease.close: ends a lease early (deployd's cleanup path after the challenge).
//  - lease.list: the live leases and their deadlines.
import { z } from 'zod';
import { defineApi } from '../proto/api.ts';
import { configStatusMethod } from '../runtime/config-status.ts';
import { CertName } from '../keyd/api.ts';

/** An exposure's name as it appears under the config's `exposures:`. */
export const ExposureName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'exposure names are 1-63 of a-z 0-9 _ . - and start with a letter or digit')
  .refine((s) => !s.includes('..'), 'exposure names may not contain ".."');

/** 128 random bits, hex: names a lease without saying anything about it. */
export const LeaseId = z.string().regex(/^[0-9a-f]{32}$/, 'a lease id is 32 lowercase hex digits');

export const ExposureMethod = z.enum(['upnp', 'nft']);

/**
 * The hard ceiling on a lease; each exposure's maxTtlSeconds (default 600) is the real bound,
 * checked by netd against the config (E_TTL).
 */
export const MAX_TTL_SECONDS = 3600;

/**
 * Open leases one exposure may hold at once: deployd holds one per certificate order in flight,
 * at most renewal.concurrency (≤ 64) at a time. A caller opening more is looping or hostile, and
 * every lease is state netd keeps and saves.
 */
export const MAX_LEASES_PER_EXPOSURE = 64;

/** Open leases netd holds at once, over all exposures (what lease.list and its store can hold). */
export const MAX_LEASES = 1000;

export const Lease = z.strictObject({
  id: LeaseId,
  cert: CertName,
  exposure: ExposureName,
  method: ExposureMethod,
  /** The port the CA connects to, on the router's external address (upnp) or the interface (nft). */
  externalPort: z.number().int().min(1).max(65535),
  /** Where the traffic goes: the local http-01 listener. */
  internalAddress: z.string().min(1).max(64),
  internalPort: z.number().int().min(1).max(65535),
  /** The router's external address as the IGD reports it (upnp only). */
  externalAddress: z.string().min(1).max(64).optional(),
  /** ISO 8601 UTC. */
  openedAt: z.iso.datetime(),
  /** ISO 8601 UTC; after this instant the exposure is gone whether netd runs or not. */
  deadline: z.iso.datetime(),
});
export type Lease = z.infer<typeof Lease>;

export const netdApi = defineApi('netd', {
  'lease.open': {
    params: z.strictObject({
      cert: CertName,
      exposure: ExposureName,
      ttlSeconds: z.number().int().min(1).max(MAX_TTL_SECONDS),
    }),
    result: Lease,
    callers: ['deployd', 'admin'],
    privileged: true,
    // SSDP discovery waits up to 2 s per try, then SOAP calls to a slow consumer router.
    timeoutMs: 60_000,
  },
  'lease.close': {
    params: z.strictObject({ id: LeaseId }),
    result: z.strictObject({ id: LeaseId, closed: z.literal(true) }),
    callers: ['deployd', 'admin'],
    privileged: true,
    timeoutMs: 60_000,
  },
  'lease.list': {
    params: z.strictObject({}),
    result: z.strictObject({ leases: z.array(Lease).max(MAX_LEASES) }),
    callers: ['deployd', 'admin'],
  },
  // Which version of the config file this daemon runs (answered by runDaemon, runtime/config-status.ts).
  'config.status': configStatusMethod,
});

/** Error codes netd answers with, beyond proto's. */
export const NetdError = {
  /** The exposure name is not under the config's exposures:. */
  UNKNOWN_EXPOSURE: 'E_UNKNOWN_EXPOSURE',
  /** The certificate is not in the config, or its config names another exposure (or none). */
  EXPOSURE_NOT_ALLOWED: 'E_EXPOSURE_NOT_ALLOWED',
  /** ttlSeconds is above the exposure's maxTtlSeconds. */
  TTL: 'E_TTL',
  /** No live lease has this id (closed, expired, or never existed). */
  NO_LEASE: 'E_NO_LEASE',
  /** The router already maps the port for someone else; netd does not take it over. */
  CONFLICT: 'E_CONFLICT',
  /** No UPnP IGD answered, or it refused the mapping. */
  UPNP: 'E_UPNP',
  /** nft refused the ruleset netd generated. */
  NFT: 'E_NFT',
  /** The exposure already holds MAX_LEASES_PER_EXPOSURE open leases (or netd holds MAX_LEASES). */
  TOO_MANY_LEASES: 'E_TOO_MANY_LEASES',
  /** (audit only) The lease store could not be read at start; it was moved aside. */
  STATE: 'E_STATE',
} as const;
