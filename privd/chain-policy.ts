// What makes a chain one privd may install for a certificate, beyond its key and names: it is a
// TLS server certificate (RFC 5280 §4.2.1.9 basicConstraints, §4.2.1.3 keyUsage, §4.2.1.12
// extKeyUsage), it leads to a root the admin trusts for the certificate's CA, and it lives no
// longer than that CA's cap. Without these, whoever hands privd a chain (a compromised deployd, a
// hostile CA) could install a self-made CA's certificate valid for decades.
import 'reflect-metadata';
import type { X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { RpcError } from '../proto/errors.ts';
import { PrivdErrorCode } from './api.ts';
import type { TrustAnchors } from './trust-anchors.ts';

const DAY_MS = 86_400_000;
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

/**
 * The CA/Browser Forum's maximum validity of a TLS server certificate by issuance date (Baseline
 * Requirements §6.3.2, ballot SC-081v3), newest first.
 */
const CABF_MAX_LIFETIME = [
  { issued: 'from 2029-03-15', from: new Date('2029-03-15T00:00:00Z'), days: 47 },
  { issued: 'from 2027-03-15', from: new Date('2027-03-15T00:00:00Z'), days: 100 },
  { issued: 'from 2026-03-15', from: new Date('2026-03-15T00:00:00Z'), days: 200 },
  { issued: 'before 2026-03-15', from: new Date(0), days: 398 },
] as const;

export interface ChainPolicy {
  /** Reads the CA's roots: only once the chain is well formed, so a malformed one is E_CHAIN. */
  anchors: () => TrustAnchors;
  /** The CA's own cap (maxLifetimeDays), or undefined for the CA/Browser Forum maximum. */
  maxLifetimeDays: number | undefined;
}

/**
 * The leaf is a TLS server certificate and every certificate after it a CA that may sign one.
 * Checked before the signatures: OpenSSL's issuer check already fails without keyCertSign, and
 * "may not sign certificates" says more than "not signed by".
 */
export function verifyUsage(certs: readonly X509Certificate[]): void {
  certs.forEach((cert, i) => (i === 0 ? verifyLeafUsage(cert) : verifyIssuerUsage(cert, i)));
}

/** certs: the chain in issuer order, each already checked to be signed by the next. */
export function verifyTrustAndLifetime(certs: readonly X509Certificate[], policy: ChainPolicy, now: Date): void {
  const anchors = policy.anchors();
  verifyTrusted(certs, anchors, now);
  verifyLifetime(certs[0]!, anchors.ca, policy.maxLifetimeDays);
}

function extensionOf<T extends x509.Extension>(cert: X509Certificate, type: new (raw: ArrayBuffer) => T): T | null {
  return new x509.X509Certificate(cert.raw).getExtension(type);
}

function verifyLeafUsage(leaf: X509Certificate): void {
  const refuse = (why: string) =>
    new RpcError(PrivdErrorCode.CONSTRAINTS, `the certificate ${why}; privd installs TLS server certificates only`);
  if (extensionOf(leaf, x509.BasicConstraintsExtension)?.ca) throw refuse('is a CA (basicConstraints CA:TRUE)');
  const usages = extensionOf(leaf, x509.ExtendedKeyUsageExtension)?.usages ?? [];
  if (!usages.includes(x509.ExtendedKeyUsage.serverAuth)) {
    throw refuse('is not for TLS servers (no serverAuth in its extended key usage)');
  }
}

function verifyIssuerUsage(cert: X509Certificate, index: number): void {
  const which = `chain certificate ${index + 1} (${cert.subject.replace(/\n/g, ', ')})`;
  const refuse = (why: string) => new RpcError(PrivdErrorCode.CONSTRAINTS, `${which} ${why}`);
  if (!extensionOf(cert, x509.BasicConstraintsExtension)?.ca) throw refuse('is not a CA (no basicConstraints CA:TRUE)');
  const keyUsage = extensionOf(cert, x509.KeyUsagesExtension);
  if (!keyUsage || (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw refuse('may not sign certificates (no keyCertSign)');
  }
  const extended = extensionOf(cert, x509.ExtendedKeyUsageExtension)?.usages;
  if (extended && !extended.includes(x509.ExtendedKeyUsage.serverAuth) && !extended.includes(ANY_EXTENDED_KEY_USAGE)) {
    throw refuse('may not issue TLS server certificates (its extended key usage has no serverAuth)');
  }
}

/** Walks up the chain until a certificate is a trusted root or is signed by one that is valid now. */
function verifyTrusted(certs: readonly X509Certificate[], anchors: TrustAnchors, now: Date): void {
  const validNow = (root: X509Certificate) => new Date(root.validFrom) <= now && now < new Date(root.validTo);
  for (const cert of certs) {
    if (anchors.roots.some((root) => root.fingerprint256 === cert.fingerprint256 && validNow(root))) return;
    if (anchors.roots.some((root) => cert.checkIssued(root) && validNow(root) && cert.verify(root.publicKey))) return;
  }
  const top = certs[certs.length - 1]!.issuer.replace(/\n/g, ', ');
  throw new RpcError(
    PrivdErrorCode.UNTRUSTED,
    `the chain (up to ${top}) does not lead to a root trusted for CA "${anchors.ca}" (${anchors.source}); ` +
      'add the CA\'s root to its roots file if it is yours',
  );
}

function verifyLifetime(leaf: X509Certificate, ca: string, maxLifetimeDays: number | undefined): void {
  const from = new Date(leaf.validFrom);
  const to = new Date(leaf.validTo);
  // RFC 5280 §4.1.2.5: both ends are inclusive, so a 90-day certificate ends one second early.
  const lifetimeMs = to.getTime() - from.getTime() + 1000;
  const cabf = CABF_MAX_LIFETIME.find((step) => from >= step.from) ?? CABF_MAX_LIFETIME[CABF_MAX_LIFETIME.length - 1]!;
  const maxDays = maxLifetimeDays ?? cabf.days;
  if (lifetimeMs <= maxDays * DAY_MS) return;
  const why = maxLifetimeDays !== undefined
    ? `maxLifetimeDays of CA "${ca}"`
    : `the CA/Browser Forum maximum for certificates issued ${cabf.issued}; a private CA may set maxLifetimeDays`;
  const days = (lifetimeMs / DAY_MS).toFixed(1);
  throw new RpcError(
    PrivdErrorCode.LIFETIME,
    `the certificate is valid for ${days} days (${from.toISOString()} to ${to.toISOString()}); ` +
      `certificates of this CA may live at most ${maxDays} days (${why})`,
  );
}
