// deployd's pledge: the scheduler answers admins (certsepctl as root or a configured admin) only.
// deployd holds no key and no privilege; it asks keyd for CSRs, netd for leases, acmed for orders
// and privd for installs. What it may do to the system is bounded by those daemons' own pledges.
//  - renew.run: renew what is due (or the named certificates, or everything with force) and
//    deploy what changed; answers when the run is over. One run at a time (else E_BUSY).
//  - renew.progress: the steps of a run so far, for a live display while renew.run is waiting.
//  - status: per certificate, what is installed, when the next renewal is due and why, the last
//    result. Reads privd's status and deployd's journal; never contacts the CA.
//  - leases: netd's open leases, so certsepctl needs only deployd's socket.
//  - push: deliver again, without ordering, what a remote host should have: the chain waiting in
//    the delivery queue, or else the one it last confirmed (a rebuilt host, a restored backup).
import { z } from 'zod';
import { defineApi } from '../proto/api.ts';
import { configStatusMethod } from '../runtime/config-status.ts';
import { CertName, KeyType } from '../keyd/api.ts';
import { Lease } from '../netd/api.ts';

/** deployd's own error codes, beside proto's. */
export const DeploydErrorCode = {
  /** Another renewal run is in progress; its id is in the message. */
  BUSY: 'E_BUSY',
  /** A certificate named in the request is not in the config. */
  UNKNOWN_CERT: 'E_UNKNOWN_CERT',
  /** renew.progress was asked about a run deployd does not remember. */
  NO_RUN: 'E_NO_RUN',
} as const;

/** Chosen by the caller so it can follow renew.progress while renew.run is still waiting. */
export const RunId = z.string().regex(/^[0-9a-f]{16}$/, 'a run id is 16 lowercase hex digits');

const IsoTime = z.iso.datetime({ offset: true });

/** The steps of one certificate's pipeline, in order; also the journal's record of where a certificate got to. */
export const Step = z.enum(['plan', 'connect', 'csr', 'lease', 'order', 'install', 'check', 'reload', 'hook', 'done']);
export type Step = z.infer<typeof Step>;

/** Why a certificate is (or will be) renewed. */
export const DueReason = z.enum(['forced', 'missing', 'mismatch', 'names', 'ari', 'expiry', 'age']);
export type DueReason = z.infer<typeof DueReason>;

export const WireError = z.strictObject({ code: z.string().max(64), message: z.string().max(4096) });
export type WireError = z.infer<typeof WireError>;

export const Outcome = z.enum([
  'renewed', // issued, installed, checked, reloaded, committed
  'staged', // a staging order succeeded; nothing was installed
  'due', // a dry run: would be renewed now
  'not-due',
  'deferred', // failing earlier and backing off; not attempted in this run
  'failed',
]);
export type Outcome = z.infer<typeof Outcome>;

/** A host name from the config's hosts: section. */
const HostName = CertName;

/** What a run did for one remote host of a certificate. */
export const HostResult = z.strictObject({
  host: HostName,
  outcome: z.enum([
    'renewed', // ordered for the host's own key, delivered, checked, reloaded
    'delivered', // a chain from the delivery queue reached the host; nothing was ordered
    'pending', // the chain is queued for this host, which could not take it yet (retried)
    'staged', 'due', 'not-due', 'failed',
  ]),
  detail: z.string().max(1024),
  issued: z.array(z.strictObject({ keyType: KeyType, serial: z.string(), notAfter: IsoTime, reusedOrder: z.boolean() })),
  failedStep: Step.optional(),
  error: WireError.optional(),
  nextAttempt: IsoTime.optional(),
});
export type HostResult = z.infer<typeof HostResult>;

export const CertResult = z.strictObject({
  cert: CertName,
  outcome: Outcome,
  reason: DueReason.optional(),
  /** Human-readable: why due, or when it will be. */
  detail: z.string().max(1024),
  issued: z.array(z.strictObject({ keyType: KeyType, serial: z.string(), notAfter: IsoTime, reusedOrder: z.boolean() })),
  failedStep: Step.optional(),
  error: WireError.optional(),
  nextAttempt: IsoTime.optional(),
  /** A certificate delivered to remote hosts: each host's result. */
  hosts: z.array(HostResult).optional(),
});
export type CertResult = z.infer<typeof CertResult>;

export const RunResult = z.strictObject({
  runId: RunId,
  startedAt: IsoTime,
  finishedAt: IsoTime,
  results: z.array(CertResult),
  /** Services privd reloaded, each once. */
  reloaded: z.array(z.string().max(63)),
  /** 0: something renewed; 2: nothing was due; 1: something failed (OpenBSD acme-client's convention). */
  exitCode: z.union([z.literal(0), z.literal(1), z.literal(2)]),
});
export type RunResult = z.infer<typeof RunResult>;

export const ProgressEvent = z.strictObject({
  seq: z.number().int().min(1),
  at: IsoTime,
  cert: CertName,
  keyType: KeyType.optional(),
  step: Step,
  state: z.enum(['start', 'ok', 'failed']),
  detail: z.string().max(1024).optional(),
});
export type ProgressEvent = z.infer<typeof ProgressEvent>;

export const InstalledKeyType = z.strictObject({
  keyType: KeyType,
  installed: z
    .strictObject({ version: z.number().int().min(1), serial: z.string(), issuer: z.string(), notAfter: IsoTime })
    .optional(),
  targets: z.array(z.strictObject({ dir: z.string(), matches: z.boolean(), differing: z.array(z.string()) })),
});

/** One remote host of a certificate, from deployd's delivery queue (no host is contacted). */
export const HostStatus = z.strictObject({
  host: HostName,
  address: z.string(),
  /** delivered: the host confirmed the current chain; pending: a chain waits for it; failed: the last attempt failed and nothing waits; never: nothing reached it yet. */
  state: z.enum(['delivered', 'pending', 'failed', 'never']),
  delivered: z.strictObject({ at: IsoTime, serials: z.array(z.string()), notAfter: IsoTime }).optional(),
  pending: z.strictObject({ since: IsoTime, serials: z.array(z.string()), attempts: z.number().int().min(0), nextAttempt: IsoTime.optional() }).optional(),
  lastError: z.strictObject({ at: IsoTime, step: Step, error: WireError }).optional(),
  lastContact: IsoTime.optional(),
});
export type HostStatus = z.infer<typeof HostStatus>;

export const CertStatus = z.strictObject({
  cert: CertName,
  domains: z.array(z.string()),
  keyTypes: z.array(InstalledKeyType),
  /** The earliest notAfter among the installed key types. */
  notAfter: IsoTime.optional(),
  daysLeft: z.number().optional(),
  expired: z.boolean(),
  /** privd holds an install of this certificate that awaits check/reload. */
  pending: z.boolean(),
  next: z.strictObject({ at: IsoTime, reason: DueReason, detail: z.string().max(1024), due: z.boolean() }),
  lastSuccess: IsoTime.optional(),
  lastFailure: z.strictObject({ at: IsoTime, step: Step, error: WireError }).optional(),
  /** Set while failing: when the backoff (or the CA's Retry-After) allows the next attempt. */
  nextAttempt: IsoTime.optional(),
  failing: z.boolean(),
  consecutiveFailures: z.number().int().min(0),
  renewals: z.number().int().min(0),
  hosts: z.array(HostStatus).optional(),
});
export type CertStatus = z.infer<typeof CertStatus>;

const Certs = z.array(CertName).max(1000);

export const deploydApi = defineApi('deployd', {
  'renew.run': {
    params: z.strictObject({
      runId: RunId.optional(),
      certs: Certs.optional(),
      all: z.boolean().default(false),
      /** Renew even when not due (and ignore backoff and the CA's Retry-After). */
      force: z.boolean().default(false),
      /** Only report what is due; contact nobody but privd (for its status) and, for remote hosts, their status over ssh. */
      dryRun: z.boolean().default(false),
      /** Order from the CA's staging directory and install nothing. */
      staging: z.boolean().default(false),
    }),
    result: RunResult,
    callers: ['admin'],
    privileged: true,
    // A run is as long as its slowest orders; acmed allows 30 minutes for one.
    timeoutMs: 4 * 3_600_000,
  },
  'renew.progress': {
    params: z.strictObject({ runId: RunId, afterSeq: z.number().int().min(0).default(0) }),
    result: z.strictObject({ runId: RunId, events: z.array(ProgressEvent).max(1000), finished: z.boolean() }),
    callers: ['admin'],
  },
  status: {
    params: z.strictObject({ certs: Certs.optional() }),
    result: z.strictObject({ certs: z.array(CertStatus) }),
    callers: ['admin'],
  },
  push: {
    params: z.strictObject({ hosts: z.array(HostName).max(64).optional(), certs: Certs.optional() }),
    result: z.strictObject({
      results: z.array(z.strictObject({ cert: CertName, host: HostName, outcome: z.enum(['delivered', 'failed', 'nothing']), detail: z.string().max(1024), error: WireError.optional() })),
      exitCode: z.union([z.literal(0), z.literal(1), z.literal(2)]),
    }),
    callers: ['admin'],
    privileged: true,
    timeoutMs: 3_600_000,
  },
  leases: {
    params: z.strictObject({}),
    result: z.strictObject({ leases: z.array(Lease).max(1000) }),
    callers: ['admin'],
  },
  // Which version of the config file this daemon runs (answered by runDaemon, runtime/config-status.ts).
  'config.status': configStatusMethod,
});
