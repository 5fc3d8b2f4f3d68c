// acmed's pledge: everything acmed does, and for whom. acmed is the only process that talks to
// the CA; it holds ACME account keys and nothing else secret.
//  - order.issue: deployd (or an admin) hands over a CSR made by keyd; acmed orders a certificate
//    for it. The names, the challenge, the CA and the profile come from acmed's own config for that
//    certificate, never from the wire, and the CSR's names must equal the configured ones: a
//    compromised deployd cannot get a certificate for a name the config does not list. Its key must
//    be the one keyd holds now for that certificate and key type (acmed asks keyd): nor can it get
//    one for a key of its own.
//  - renewal.info: the CA's suggested renewal window for an installed certificate (ARI, RFC 9773).
//  - account.ensure: create or reuse the account for a configured CA (ahead of a first order).
//  - account.rollover: replace an account key (RFC 8555 section 7.3.5), for `certsepctl account rollover`.
// Errors of its own (see acmed/errors.ts): E_UNKNOWN_CERT, E_UNKNOWN_CA, E_CSR (unreadable CSR, or
// its names or key type differ from the config; nothing is ordered), E_CSR_NOT_KEYD (its key is
// not keyd's current key for the certificate; nothing is ordered), E_CERT (a certificate given
// for ARI is unreadable or has no Authority Key Identifier), E_NO_STAGING, E_ACCOUNT,
// E_CHALLENGE (setting up or removing a challenge failed), E_RATE_LIMITED (message says when to
// retry), E_UNAUTHORIZED, E_DNS, E_CONNECTION (CA unreachable, or it could not reach us), E_CA,
// E_CA_IDENTIFIER (the CA asked to validate a name the order did not ask for; nothing was answered).
import { z } from 'zod';
import { defineApi } from '../proto/api.ts';
import { configStatusMethod } from '../runtime/config-status.ts';
import { CertName, KeyType } from '../keyd/api.ts';

const CsrPem = z.string().startsWith('-----BEGIN CERTIFICATE REQUEST-----').max(64 * 1024);
const CertPem = z.string().startsWith('-----BEGIN CERTIFICATE-----').max(64 * 1024);
/** A leaf followed by its intermediates, PEM, as the CA returned it. */
const ChainPem = z.string().startsWith('-----BEGIN CERTIFICATE-----').max(256 * 1024);
const CaName = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/).refine((s) => !s.includes('..'), 'CA names may not contain ".."');
const IsoTime = z.iso.datetime({ offset: true });

/**
 * Dry runs (`certsepctl renew --staging`): the order goes to the CA's staging directory
 * (letsencrypt → letsencrypt-staging, or the CA's configured `staging:` directory) with a separate
 * account; production accounts are never used for it.
 */
const Staging = z.boolean().default(false);

export const acmedApi = defineApi('acmed', {
  'order.issue': {
    params: z.strictObject({
      cert: CertName,
      csrPem: CsrPem,
      /** The key type keyd made the CSR for; checked against the CSR's public key and the config. */
      keyType: KeyType,
      /** The certificate this order renews: acmed sends its ARI certID as `replaces` when the CA supports ARI. */
      replaces: CertPem.optional(),
      staging: Staging,
    }),
    result: z.strictObject({
      /** The chain chosen by the CA's preferredChain setting (issuer CN), else the CA's default. */
      chainPem: ChainPem,
      /** Every other chain the CA offered (RFC 8555 section 7.4.2, Link rel="alternate"). */
      alternates: z.array(ChainPem).max(8),
      certUrl: z.url(),
      notBefore: IsoTime,
      notAfter: IsoTime,
    }),
    callers: ['deployd', 'admin'],
    privileged: true,
    // Challenges, DNS propagation waits and a busy CA: an order may take many minutes.
    timeoutMs: 30 * 60_000,
  },
  'renewal.info': {
    params: z.strictObject({ cert: CertName, certPem: CertPem, staging: Staging }),
    result: z.discriminatedUnion('supported', [
      z.strictObject({
        supported: z.literal(true),
        start: IsoTime,
        end: IsoTime,
        /** When to ask again (the CA's Retry-After, bounded). */
        retryAfterSeconds: z.number().int().min(0),
        explanationUrl: z.url().optional(),
      }),
      /** The CA has no renewalInfo resource: fall back to the configured renewBeforeDays. */
      z.strictObject({ supported: z.literal(false) }),
    ]),
    callers: ['deployd', 'admin'],
    timeoutMs: 120_000,
  },
  'account.ensure': {
    params: z.strictObject({ ca: CaName, staging: Staging }),
    result: z.strictObject({ ca: CaName, directoryUrl: z.url(), accountUrl: z.url(), created: z.boolean() }),
    callers: ['deployd', 'admin'],
    privileged: true,
    timeoutMs: 120_000,
  },
  'account.rollover': {
    params: z.strictObject({ ca: CaName, staging: Staging }),
    result: z.strictObject({ ca: CaName, directoryUrl: z.url(), accountUrl: z.url(), keyThumbprint: z.string() }),
    callers: ['admin'],
    privileged: true,
    timeoutMs: 120_000,
  },
  // Which version of the config file this daemon runs (answered by runDaemon, runtime/config-status.ts).
  'config.status': configStatusMethod,
});

export type IssueResult = z.output<(typeof acmedApi)['methods']['order.issue']['result']>;
export type RenewalInfo = z.output<(typeof acmedApi)['methods']['renewal.info']['result']>;
