// ACME Renewal Information (RFC 9773), which acme-client 5.4 lacks: the CA's suggested renewal
// window for a certificate, fetched with an unauthenticated GET of <renewalInfo>/<certID> and cut
// to the certificate's validity, and the certID that newOrder's `replaces` carries for a renewal.
import 'reflect-metadata';
import { AuthorityKeyIdentifierExtension, X509Certificate } from '@peculiar/x509';
import acme from 'acme-client';
import { RpcError } from '../proto/errors.ts';
import type { Logger } from '../proto/log.ts';
import type { RenewalInfo } from './api.ts';
import { AcmedError, toAcmedError } from './errors.ts';
import { parseRetryAfter } from './transport.ts';

/** RFC 9773 section 4.3.3: without Retry-After, ask again in six hours; never more often than a minute. */
const DEFAULT_RETRY_AFTER_S = 6 * 3600;
const MIN_RETRY_AFTER_S = 60;
const MAX_RETRY_AFTER_S = 24 * 3600;

/** The serial's DER INTEGER contents: minimal, with a leading 00 when the high bit is set. */
function serialDerBytes(serialHex: string): Buffer {
  let bytes = Buffer.from(serialHex.length % 2 === 0 ? serialHex : `0${serialHex}`, 'hex');
  while (bytes.length > 1 && bytes[0] === 0 && (bytes[1]! & 0x80) === 0) bytes = bytes.subarray(1);
  return (bytes[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}

function readCertificate(certPem: string): X509Certificate {
  try {
    return new X509Certificate(certPem);
  } catch (e) {
    throw new RpcError(AcmedError.CERT, `the certificate given is not readable PEM: ${(e as Error).message}`);
  }
}

/** RFC 9773 section 4.1: base64url(AKI keyIdentifier) "." base64url(serial). */
export function ariCertId(certPem: string): string {
  const cert = readCertificate(certPem);
  const aki = cert.extensions.find((e): e is AuthorityKeyIdentifierExtension => e instanceof AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new RpcError(AcmedError.CERT, 'the certificate has no Authority Key Identifier, so the CA cannot identify it for renewal information');
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${serialDerBytes(cert.serialNumber).toString('base64url')}`;
}

const directories = new Map<string, Promise<Record<string, unknown>>>();

/** The CA's directory object, fetched once per process. */
async function directoryOf(directoryUrl: string): Promise<Record<string, unknown>> {
  let pending = directories.get(directoryUrl);
  if (!pending) {
    pending = acme.axios.get(directoryUrl).then((res) => res.data as Record<string, unknown>);
    directories.set(directoryUrl, pending);
    pending.catch(() => directories.delete(directoryUrl));
  }
  return pending;
}

export async function renewalInfoUrlOf(directoryUrl: string): Promise<string | null> {
  const directory = await directoryOf(directoryUrl).catch((e: unknown) => { throw toAcmedError(e, `reading the ACME directory ${directoryUrl}`); });
  return typeof directory.renewalInfo === 'string' ? directory.renewalInfo : null;
}

function clampRetryAfter(seconds: number | null): number {
  return Math.min(MAX_RETRY_AFTER_S, Math.max(MIN_RETRY_AFTER_S, seconds ?? DEFAULT_RETRY_AFTER_S));
}

/**
 * The CA's window cut to the certificate's validity: its advice cannot ask for a renewal before
 * the certificate existed (that part means "now", RFC 9773 section 4.2) or after it expired. A
 * window of 1970 to 2100 would otherwise let the renewal fall anywhere up to 2100.
 */
function clampToValidity(start: number, end: number, cert: X509Certificate): { start: number; end: number } {
  const notBefore = cert.notBefore.getTime();
  const notAfter = cert.notAfter.getTime();
  const clamp = (t: number) => Math.min(notAfter, Math.max(notBefore, t));
  return { start: clamp(start), end: clamp(end) };
}

export async function fetchRenewalInfo(directoryUrl: string, certPem: string, log: Logger): Promise<RenewalInfo> {
  const base = await renewalInfoUrlOf(directoryUrl);
  if (base === null) return { supported: false };
  const cert = readCertificate(certPem);
  const certId = ariCertId(certPem);
  const url = `${base.replace(/\/$/, '')}/${certId}`;
  let res;
  try {
    res = await acme.axios.get(url);
  } catch (e) {
    throw toAcmedError(e, `fetching renewal information ${url}`);
  }
  const body = res.data as { suggestedWindow?: { start?: unknown; end?: unknown }; explanationURL?: unknown };
  const start = Date.parse(String(body?.suggestedWindow?.start));
  const end = Date.parse(String(body?.suggestedWindow?.end));
  // Section 4.2: a window whose end is not after its start is invalid and must be ignored.
  if (Number.isNaN(start) || Number.isNaN(end) || end <= start) {
    throw new RpcError(AcmedError.CA, `the CA's renewal information at ${url} has no valid suggestedWindow`);
  }
  const window = clampToValidity(start, end, cert);
  if (window.start !== start || window.end !== end) {
    const asSent = { start: new Date(start).toISOString(), end: new Date(end).toISOString() };
    log.warn({ url, ...asSent }, "the CA's renewal window reaches outside the certificate's validity; cut to it");
  }
  return {
    supported: true,
    start: new Date(window.start).toISOString(),
    end: new Date(window.end).toISOString(),
    retryAfterSeconds: clampRetryAfter(parseRetryAfter(res.headers['retry-after'])),
    ...(typeof body.explanationURL === 'string' && URL.canParse(body.explanationURL) ? { explanationUrl: body.explanationURL } : {}),
  };
}
