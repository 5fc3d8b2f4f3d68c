// Everything privd checks about a chain before it touches a single file. The chain arrives from
// deployd, which got it from the CA through acmed; privd trusts neither, so it checks the chain
// against what it knows itself: the key keyd holds, the names in its own config, and the roots
// and lifetime cap the admin set for the certificate's CA (chain-policy.ts).
import { X509Certificate, type KeyObject } from 'node:crypto';
import { RpcError } from '../proto/errors.ts';
import { MAX_CHAIN_CERTS, PrivdErrorCode } from './api.ts';
import { verifyTrustAndLifetime, verifyUsage, type ChainPolicy } from './chain-policy.ts';

export interface VerifiedChain {
  /** PEM of the leaf, of the rest of the chain, and of both, each block ending in a newline. */
  leafPem: string;
  chainPem: string;
  fullchainPem: string;
  serial: string;
  notAfter: Date;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/g;

/** The DER of every PEM certificate block in text, whatever else it holds (a bundle's comments). */
export function pemBlocks(text: string): Buffer[] {
  return [...text.matchAll(PEM_BLOCK)].map((block) => Buffer.from(block[1]!.replace(/\s+/g, ''), 'base64'));
}

/** Splits PEM text into certificates; anything else in it (keys, other blocks, junk) is refused. */
export function parsePemChain(text: string): X509Certificate[] {
  const rest = text.replace(PEM_BLOCK, '').trim();
  if (rest !== '') throw new RpcError(PrivdErrorCode.CHAIN, 'the chain contains something other than PEM certificates');
  const blocks = pemBlocks(text);
  if (blocks.length < 1 || blocks.length > MAX_CHAIN_CERTS) {
    throw new RpcError(PrivdErrorCode.CHAIN, `a chain has 1 to ${MAX_CHAIN_CERTS} certificates, this one has ${blocks.length}`);
  }
  return blocks.map((der, i) => {
    try {
      return new X509Certificate(der);
    } catch {
      throw new RpcError(PrivdErrorCode.CHAIN, `certificate ${i + 1} of the chain cannot be parsed`);
    }
  });
}

export function verifyChain(
  pem: string,
  key: KeyObject,
  domains: readonly string[],
  policy: ChainPolicy,
  now = new Date(),
): VerifiedChain {
  const certs = parsePemChain(pem);
  const leaf = certs[0]!;
  if (!leaf.checkPrivateKey(key)) {
    throw new RpcError(PrivdErrorCode.KEY_MISMATCH, `the certificate (serial ${leaf.serialNumber}) is not for the certificate's current key`);
  }
  verifyNames(leaf, domains);
  certs.forEach((cert, i) => verifyValidity(cert, i, now));
  verifyUsage(certs);
  verifyIssuerOrder(certs);
  verifyTrustAndLifetime(certs, policy, now);
  const pems = certs.map((c) => c.toString());
  return {
    leafPem: pems[0]!,
    chainPem: pems.slice(1).join(''),
    fullchainPem: pems.join(''),
    serial: leaf.serialNumber.toUpperCase(),
    notAfter: new Date(leaf.validTo),
  };
}

// Set equality, case-insensitive; a wildcard is compared as the literal string "*.example.com".
function verifyNames(leaf: X509Certificate, domains: readonly string[]): void {
  const entries = leaf.subjectAltName === undefined ? [] : leaf.subjectAltName.split(', ');
  const inCert = new Set<string>();
  for (const entry of entries) {
    // Node quotes a value holding ", " or quotes; no DNS name does, so such an entry fails here.
    const m = /^DNS:([A-Za-z0-9*._-]+)$/.exec(entry);
    if (!m) throw new RpcError(PrivdErrorCode.NAMES, `the certificate names ${JSON.stringify(entry)}, which is not a DNS name of this certificate`);
    inCert.add(m[1]!.toLowerCase());
  }
  const wanted = new Set(domains.map((d) => d.toLowerCase()));
  const missing = [...wanted].filter((d) => !inCert.has(d));
  const extra = [...inCert].filter((d) => !wanted.has(d));
  if (missing.length > 0 || extra.length > 0) {
    const parts = [missing.length > 0 ? `missing ${missing.join(', ')}` : '', extra.length > 0 ? `not configured ${extra.join(', ')}` : ''];
    throw new RpcError(PrivdErrorCode.NAMES, `the certificate's names differ from the configured domains: ${parts.filter(Boolean).join('; ')}`);
  }
}

function verifyValidity(cert: X509Certificate, index: number, now: Date): void {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  const which = index === 0 ? 'the certificate' : `chain certificate ${index + 1} (${cert.subject.replace(/\n/g, ', ')})`;
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) throw new RpcError(PrivdErrorCode.CHAIN, `${which} has an unreadable validity period`);
  if (now < from) throw new RpcError(PrivdErrorCode.EXPIRED, `${which} is not valid before ${from.toISOString()}`);
  if (now >= to) throw new RpcError(PrivdErrorCode.EXPIRED, `${which} expired at ${to.toISOString()}`);
}

function verifyIssuerOrder(certs: readonly X509Certificate[]): void {
  for (let i = 0; i + 1 < certs.length; i++) {
    const cert = certs[i]!;
    const issuer = certs[i + 1]!;
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      throw new RpcError(PrivdErrorCode.CHAIN, `the chain is not in issuer order: certificate ${i + 1} is not signed by certificate ${i + 2}`);
    }
  }
}
