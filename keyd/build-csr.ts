// PKCS#10 certificate requests (RFC 2986) for one certificate's names, signed with its key. The
// CSR is parsed back and checked before it leaves keyd: a CSR that names the wrong key or the
// wrong domains would be signed by the CA and installed next to a key it does not match.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, type KeyObject } from 'node:crypto';
import type { KeyType } from './api.ts';
import { spkiOf } from './generate-key.ts';

// x509's types name DOM's Crypto, which this Node-only project does not load; the object is the same API.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CsrParams = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0];

const SUBJECT_ALT_NAME_OID = '2.5.29.17';
// RFC 5280 appendix A: ub-common-name is 64; a longer first name lives in the SAN only.
const MAX_COMMON_NAME = 64;

interface Algorithms {
  importAs: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;
  signWith: CsrParams['signingAlgorithm'];
}

// ECDSA uses the hash that matches the curve's strength (RFC 5480 section 4); RSA uses PKCS#1 v1.5
// with SHA-256, which every public CA accepts.
const ALGORITHMS: Record<KeyType, Algorithms> = {
  'ec-p256': { importAs: { name: 'ECDSA', namedCurve: 'P-256' }, signWith: { name: 'ECDSA', hash: 'SHA-256' } },
  'ec-p384': { importAs: { name: 'ECDSA', namedCurve: 'P-384' }, signWith: { name: 'ECDSA', hash: 'SHA-384' } },
  'rsa-2048': { importAs: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signWith: { name: 'RSASSA-PKCS1-v1_5' } },
  'rsa-3072': { importAs: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signWith: { name: 'RSASSA-PKCS1-v1_5' } },
  'rsa-4096': { importAs: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signWith: { name: 'RSASSA-PKCS1-v1_5' } },
};

/**
 * A CSR for `domains` (already ASCII/punycode, as the config parser leaves them), subject CN = the
 * first name when it fits, every name as a dNSName SAN, signed with privateKey. Returns PEM.
 */
export async function buildCsr(privateKey: KeyObject, keyType: KeyType, domains: readonly string[]): Promise<string> {
  const { importAs, signWith } = ALGORITHMS[keyType];
  const spki = spkiOf(privateKey);
  const keys: webcrypto.CryptoKeyPair = {
    // Not extractable: the webcrypto copy exists only to sign this one request.
    privateKey: await webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), importAs, false, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', spki, importAs, true, ['verify']),
  };
  const commonName = domains[0] !== undefined && domains[0].length <= MAX_COMMON_NAME ? domains[0] : undefined;
  // RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
  const san = new x509.SubjectAlternativeNameExtension(domains.map((value) => ({ type: 'dns' as const, value })), commonName === undefined);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(commonName === undefined ? {} : { name: [{ CN: [commonName] }] }),
    keys: keys as unknown as CsrParams['keys'],
    signingAlgorithm: signWith,
    extensions: [san],
  });
  const pem = csr.toString('pem');
  await assertCsrMatches(pem, spki, commonName, domains);
  return pem;
}

/** Parses the PEM again and checks signature, public key, subject and names; throws on any mismatch. */
async function assertCsrMatches(pem: string, spki: Buffer, commonName: string | undefined, domains: readonly string[]): Promise<void> {
  const csr = new x509.Pkcs10CertificateRequest(pem);
  if (!(await csr.verify())) throw new Error('the CSR keyd built does not verify with its own key');
  if (!Buffer.from(csr.publicKey.rawData).equals(spki)) throw new Error('the CSR keyd built carries a different public key');
  const expectedSubject = commonName === undefined ? '' : `CN=${commonName}`;
  if (csr.subject !== expectedSubject) throw new Error(`the CSR keyd built has subject "${csr.subject}", expected "${expectedSubject}"`);
  const san = csr.getExtension(SUBJECT_ALT_NAME_OID);
  const names = san instanceof x509.SubjectAlternativeNameExtension ? san.names.items : [];
  const same = names.length === domains.length && names.every((name, i) => name.type === 'dns' && name.value === domains[i]);
  if (!same) throw new Error('the CSR keyd built does not name exactly the configured domains');
}
