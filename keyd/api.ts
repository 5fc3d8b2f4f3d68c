// keyd's pledge: the only four things keyd does, and for whom.
//  - csr.create: deployd (or, on a remote host, the ssh forced command remote-serve) asks for a CSR for one certificate and key type. keyd makes (or, under
//    keyPolicy "reuse", reuses) the key, keeps it in its own 0700 state dir, and returns only
//    public material: the CSR and the key's id.
//  - key.export: the private key itself, to uid 0 (privd) alone, which installs it, and whether
//    it is the current key of that certificate and key type. No other caller can ever receive a
//    certificate's private key.
//  - key.current: the id of the key the last CSR for a certificate and key type carries, to acmed
//    alone, which orders only for that key: a CSR for a key anyone else made (a compromised
//    deployd's own) is refused before it reaches the CA. A key id is a hash of public material.
//  - key.import: an existing key (a certbot lineage's privkey.pem), from uid 0 (certsepctl
//    import-certbot) alone, stored like a generated key so privd can install the certificate it
//    belongs to without re-issuing. keyd checks it is a private key of the named type and size.
import { z } from 'zod';
import { defineApi } from '../proto/api.ts';
import { configStatusMethod } from '../runtime/config-status.ts';

export const KeyType = z.enum(['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']);
export type KeyType = z.infer<typeof KeyType>;

/** A certificate's name as it appears in the config (it becomes a directory name). */
export const CertName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'certificate names are 1-63 of a-z 0-9 _ . - and start with a letter or digit')
  .refine((s) => !s.includes('..'), 'certificate names may not contain ".."');

/** sha256 of the key's SubjectPublicKeyInfo (DER), hex: names a key version without revealing it. */
export const KeyId = z.string().regex(/^[0-9a-f]{64}$/, 'a key id is 64 lowercase hex digits');

/** keyd's own error codes, beside proto's; stable because callers and sysadmins match on them. */
export const KeydErrorCode = {
  /** The certificate named on the wire is not in keyd's config. */
  UNKNOWN_CERT: 'E_UNKNOWN_CERT',
  /** The key type is not one the config lists for that certificate. */
  KEY_TYPE: 'E_KEY_TYPE',
  /** No stored key has that id (never made here, or pruned as an old version). */
  NO_KEY: 'E_NO_KEY',
  /** A key file's owner, mode or contents changed behind keyd's back; it is not handed out. */
  KEY_TAMPERED: 'E_KEY_TAMPERED',
  /** key.import got something that is not an unencrypted private key of the named key type. */
  BAD_KEY: 'E_BAD_KEY',
} as const;

export const keydApi = defineApi('keyd', {
  'csr.create': {
    params: z.strictObject({ cert: CertName, keyType: KeyType }),
    result: z.strictObject({
      csrPem: z.string().startsWith('-----BEGIN CERTIFICATE REQUEST-----').max(64 * 1024),
      keyId: KeyId,
      /** True when a new key was generated for this CSR (rotate policy or first issue). */
      newKey: z.boolean(),
    }),
    // remote: on a host with the remote role, certsepctl remote-serve asks for the central deployd.
    callers: ['deployd', 'remote'],
    privileged: true,
    timeoutMs: 120_000, // RSA-4096 generation can take seconds on a slow machine
  },
  'key.export': {
    params: z.strictObject({ cert: CertName, keyType: KeyType, keyId: KeyId }),
    result: z.strictObject({
      keyPem: z.string().startsWith('-----BEGIN PRIVATE KEY-----').max(16 * 1024),
      /** Whether this is the key of the last CSR (or import): privd installs chains for that key only. */
      current: z.boolean(),
    }),
    callers: ['root'],
    privileged: true,
  },
  'key.current': {
    params: z.strictObject({ cert: CertName, keyType: KeyType }),
    /** null: keyd holds no key for it (never made here, or removed by hand). */
    result: z.strictObject({ keyId: KeyId.nullable() }),
    callers: ['acmed'],
  },
  'key.import': {
    params: z.strictObject({
      cert: CertName,
      keyType: KeyType,
      // PKCS#8, SEC1 or PKCS#1 PEM: certbot has written each over its versions.
      keyPem: z.string().includes('PRIVATE KEY-----').max(16 * 1024),
    }),
    result: z.strictObject({ keyId: KeyId }),
    // Only root: a daemon that could hand keyd a key would know a private key privd then installs.
    callers: ['root'],
    privileged: true,
  },
  // Which version of the config file this daemon runs (answered by runDaemon, runtime/config-status.ts).
  'config.status': configStatusMethod,
});
