// The CSR deployd hands over must ask for exactly the names the config lists for that certificate,
// with the key type deployd claims and the config allows. This is what keeps a compromised deployd
// from getting a certificate for a name nobody configured: the CA would sign whatever the CSR says.
import 'reflect-metadata';
import { createHash, createPublicKey } from 'node:crypto';
import { Pkcs10CertificateRequest, SubjectAlternativeNameExtension } from '@peculiar/x509';
import type { CertificateConfig, KeyType } from '../config/schema.ts';
import { RpcError } from '../proto/errors.ts';
import { AcmedError } from './errors.ts';

function refuse(cert: string, why: string): never {
  throw new RpcError(AcmedError.CSR, `refusing the CSR for certificate "${cert}": ${why}; nothing was ordered`);
}

function describeKey(spkiDer: ArrayBuffer): string {
  const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') return { prime256v1: 'ec-p256', secp384r1: 'ec-p384' }[details.namedCurve ?? ''] ?? `ec ${details.namedCurve}`;
  if (key.asymmetricKeyType === 'rsa') return `rsa-${details.modulusLength}`;
  return String(key.asymmetricKeyType);
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  return left.size === b.length && new Set(b).size === b.length && b.every((n) => left.has(n));
}

export interface CheckedCsr {
  /** The names to order: the configured ones. */
  names: string[];
  /** sha256 of the CSR's SubjectPublicKeyInfo, hex: keyd names its keys the same way. */
  keyId: string;
}

/** Checks the CSR against the certificate's config. */
export async function checkCsr(certificate: CertificateConfig, csrPem: string, keyType: KeyType): Promise<CheckedCsr> {
  let csr: Pkcs10CertificateRequest;
  try {
    csr = new Pkcs10CertificateRequest(csrPem);
  } catch (e) {
    refuse(certificate.name, `it is not a PEM certificate request (${(e as Error).message})`);
  }
  if (!(await csr.verify())) refuse(certificate.name, 'its signature does not verify');
  if (!certificate.keyTypes.includes(keyType)) refuse(certificate.name, `key type ${keyType} is not among the configured ${certificate.keyTypes.join(', ')}`);
  const actualKey = describeKey(csr.publicKey.rawData);
  if (actualKey !== keyType) refuse(certificate.name, `its key is ${actualKey}, not ${keyType}`);

  const san = csr.extensions.find((e): e is SubjectAlternativeNameExtension => e instanceof SubjectAlternativeNameExtension);
  const entries = san?.names.items ?? [];
  const other = entries.filter((n) => n.type !== 'dns');
  if (other.length > 0) refuse(certificate.name, `it asks for non-DNS names (${other.map((n) => `${n.type}:${n.value}`).join(', ')})`);
  const names = entries.map((n) => n.value.toLowerCase());
  if (!sameNames(names, certificate.domains)) {
    refuse(certificate.name, `it asks for [${names.join(', ')}] but the config lists [${certificate.domains.join(', ')}]`);
  }
  const commonName = csr.subjectName.getField('CN')[0];
  if (commonName !== undefined && !certificate.domains.includes(commonName.toLowerCase())) {
    refuse(certificate.name, `its common name ${commonName} is not a configured name`);
  }
  const keyId = createHash('sha256').update(Buffer.from(csr.publicKey.rawData)).digest('hex');
  return { names: [...certificate.domains], keyId };
}
