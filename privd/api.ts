// privd's pledge: everything the only root process of certsep will ever do, and for whom.
// Callers are deployd (the scheduler), admins (root/certsepctl) and, on a host with the remote
// role, certsepctl remote-serve (the ssh forced command the central deployd speaks to). A request
// names a certificate only; which directories, owners, modes, check commands and units that means
// is read from privd's own root-owned config. No path, command, unit, owner or mode is ever accepted from the wire (every
// params object is strict: an extra key is refused with E_SCHEMA).
//
// A run, as deployd drives it:
//   1. deploy.install {cert, keyType, chainPem, keyId}   once per key type of the certificate.
//      privd fetches the key from keyd, verifies chain and key, then replaces the files of every
//      target of the certificate (each target atomically as a set; crash safe through a journal).
//      The previous files are kept: the install is *pending* until step 3 succeeds.
//   2. deploy.check {certs}    runs the check commands (e.g. `nginx -t`) of the affected services.
//      On failure privd restores the previous files of those certificates' pending installs
//      (nothing was reloaded yet, so the old certificate never stopped serving) → E_CHECK_FAILED.
//   3. deploy.reload {certs}   reloads each affected service once, in config order. deployd (and a
//      remote host's forced command) may reload only certificates whose pending install passed
//      step 2 (else E_NOT_CHECKED); an admin may reload at any time. On success the
//      pending installs are committed: the lineage <stateDir>/live/<cert>/ points at the new
//      version and the backups are dropped. On failure privd restores the previous files, reloads
//      again so the old certificate keeps serving, and answers E_RELOAD_FAILED (both outcomes).
//   deploy.rollback {certs}   abandons pending installs (restores the previous files, no reload);
//      for when deployd gives up between 1 and 3 (e.g. the second key type was refused).
// A new install of a certificate whose previous run is still pending joins that run: the backups
// taken first (the files as they were before the run) stay the ones a rollback restores.
// If privd dies between 1 and 3, it rolls the run back when it starts again (see journal.ts).
//
// File names: the first key type of a certificate's keyTypes gets cert.pem, chain.pem,
// fullchain.pem, privkey.pem, combined.pem; a second key type gets its type before ".pem":
// fullchain.rsa-2048.pem, privkey.rsa-2048.pem, ... Targets get only the files their `files` lists.
import { z } from 'zod';
import { defineApi } from '../proto/api.ts';
import { configStatusMethod } from '../runtime/config-status.ts';
import { CertName, KeyId, KeyType } from '../keyd/api.ts';

/** privd's own error codes, beside proto's; callers and sysadmins match on them. */
export const PrivdErrorCode = {
  /** The certificate is not in privd's config. */
  UNKNOWN_CERT: 'E_UNKNOWN_CERT',
  /** The key type is not one of the certificate's configured keyTypes. */
  KEY_TYPE: 'E_KEY_TYPE',
  /** chainPem is not 1 to 10 PEM certificates in issuer order, each signed by the next. */
  CHAIN: 'E_CHAIN',
  /** The leaf certificate's public key is not the key keyd holds under keyId. */
  KEY_MISMATCH: 'E_KEY_MISMATCH',
  /** The leaf's subjectAltName DNS names are not exactly the certificate's configured domains. */
  NAMES: 'E_NAMES',
  /** A certificate of the chain is not valid now (expired or not yet valid). */
  EXPIRED: 'E_EXPIRED',
  /** The chain does not lead to a root trusted for the certificate's CA (its `roots`, else the system store). */
  UNTRUSTED: 'E_UNTRUSTED',
  /** The leaf is a CA or lacks serverAuth, or a chain certificate above it may not sign TLS server certificates. */
  CONSTRAINTS: 'E_CONSTRAINTS',
  /** The leaf lives longer than its CA's maxLifetimeDays (default: the CA/Browser Forum maximum in force). */
  LIFETIME: 'E_LIFETIME',
  /** The CA's roots file (or the system trust store) is missing, unreadable or writable by someone but root. */
  TRUST_STORE: 'E_TRUST_STORE',
  /** keyId names a key keyd keeps but not its current one for that certificate and key type (a stale chain). */
  KEY_NOT_CURRENT: 'E_KEY_NOT_CURRENT',
  /** A target directory or an existing file in it is not safe for root to write (see install-targets.ts). */
  TARGET: 'E_TARGET',
  /** keyd could not hand over the key. */
  KEY_UNAVAILABLE: 'E_KEY_UNAVAILABLE',
  /** A check command failed; the previous files were restored. */
  CHECK_FAILED: 'E_CHECK_FAILED',
  /**
   * deploy.reload from deployd or a remote host's forced command names a certificate with no
   * pending install that passed deploy.check: nothing of a run is waiting to be reloaded.
   */
  NOT_CHECKED: 'E_NOT_CHECKED',
  /** A reload failed; the previous files were restored and reloaded. */
  RELOAD_FAILED: 'E_RELOAD_FAILED',
  /**
   * The previous files could not all be put back (e.g. a target directory is no longer root's);
   * the run stays pending, and privd tries again at its next start or deploy.rollback.
   */
  ROLLBACK_FAILED: 'E_ROLLBACK_FAILED',
} as const;

/** Refusals of the chain itself: the same chain can never be installed, so a caller should not keep it. */
export const CHAIN_REFUSALS: ReadonlySet<string> = new Set([
  PrivdErrorCode.CHAIN, PrivdErrorCode.NAMES, PrivdErrorCode.KEY_MISMATCH, PrivdErrorCode.EXPIRED,
  PrivdErrorCode.KEY_TYPE, PrivdErrorCode.UNTRUSTED, PrivdErrorCode.CONSTRAINTS, PrivdErrorCode.LIFETIME,
]);

/** Ten certificates of a few KB each; anything larger is not a certificate chain. */
export const MAX_CHAIN_BYTES = 100 * 1024;
/** The largest file privd writes is combined.pem (a chain and a key); a target file larger is not one of them. */
export const MAX_TARGET_FILE_BYTES = 1024 * 1024;
export const MAX_CHAIN_CERTS = 10;

const Certs = z
  .array(CertName)
  .min(1)
  .max(1000)
  .refine((certs) => new Set(certs).size === certs.length, 'a certificate is named twice');

const RunId = z.string().regex(/^[0-9a-f]{16}$/, 'a run id is 16 lowercase hex digits');

const ServiceName = z.string().max(63);

export const privdApi = defineApi('privd', {
  'deploy.install': {
    params: z.strictObject({
      cert: CertName,
      keyType: KeyType,
      chainPem: z.string().min(1).max(MAX_CHAIN_BYTES),
      keyId: KeyId,
    }),
    result: z.strictObject({
      runId: RunId,
      cert: CertName,
      keyType: KeyType,
      /** The lineage version this becomes when the run is committed (certbot's cert<N>.pem). */
      version: z.number().int().min(1),
      serial: z.string().regex(/^[0-9A-F]+$/),
      notAfter: z.iso.datetime(),
      /** Target directories whose files were replaced (from the config, never from the caller). */
      changedTargets: z.array(z.string()),
    }),
    callers: ['deployd', 'admin', 'remote'],
    privileged: true,
    timeoutMs: 120_000,
  },
  'deploy.check': {
    params: z.strictObject({ certs: Certs }),
    result: z.strictObject({ checked: z.array(ServiceName) }),
    callers: ['deployd', 'admin', 'remote'],
    privileged: true,
    timeoutMs: 3_600_000, // a service's checks may take up to its timeoutSeconds (≤ 3600)
  },
  'deploy.reload': {
    params: z.strictObject({ certs: Certs }),
    result: z.strictObject({
      reloaded: z.array(ServiceName),
      committed: z.array(z.strictObject({ cert: CertName, runId: RunId, versions: z.partialRecord(KeyType, z.number().int().min(1)) })),
    }),
    callers: ['deployd', 'admin', 'remote'],
    privileged: true,
    timeoutMs: 3_600_000,
  },
  'deploy.rollback': {
    params: z.strictObject({ certs: Certs }),
    result: z.strictObject({ rolledBack: z.array(z.strictObject({ cert: CertName, runId: RunId, targets: z.number().int().min(0) })) }),
    callers: ['deployd', 'admin', 'remote'],
    privileged: true,
  },
  status: {
    params: z.strictObject({ certs: Certs.optional() }),
    result: z.strictObject({
      certs: z.array(
        z.strictObject({
          cert: CertName,
          /** An install of this certificate awaits check/reload. */
          pending: z.boolean(),
          keyTypes: z.array(
            z.strictObject({
              keyType: KeyType,
              /** Absent until a version of this key type was committed. */
              installed: z
                .strictObject({
                  version: z.number().int().min(1),
                  serial: z.string(),
                  issuer: z.string(),
                  notAfter: z.iso.datetime(),
                  /** The installed leaf (public), so deployd can ask for the CA's renewal window (ARI) and name it in `replaces`. */
                  leafPem: z.string(),
                  /** The leaf's subjectAltName DNS names, lowercased: deployd compares them with the config. */
                  names: z.array(z.string()),
                })
                .optional(),
              /** Per target: does every file it lists hold exactly the lineage's bytes (sha256)? */
              targets: z.array(z.strictObject({ dir: z.string(), matches: z.boolean(), differing: z.array(z.string()) })),
            }),
          ),
        }),
      ),
    }),
    callers: ['deployd', 'admin', 'remote'],
  },
  // Which version of the config file this daemon runs (answered by runDaemon, runtime/config-status.ts).
  'config.status': configStatusMethod,
});
