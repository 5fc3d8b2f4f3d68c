// What deployd needs to know about an issued certificate, read from the PEM the CA returned:
// the leaf alone (for ARI and `replaces`), its serial, validity and DNS names.
import { X509Certificate } from 'node:crypto';

export interface LeafFacts {
  leafPem: string;
  /** Uppercase hex without leading zeros, the form privd reports. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  names: string[];
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

export function normalizeSerial(serial: string): string {
  return serial.toUpperCase().replace(/^0+(?=.)/, '');
}

/** Throws with a plain message when the PEM holds no readable certificate. */
export function readLeaf(chainPem: string): LeafFacts {
  const block = PEM_BLOCK.exec(chainPem);
  if (!block) throw new Error('no PEM certificate in the chain');
  const leafPem = `${block[0]}\n`;
  const x509 = new X509Certificate(leafPem);
  const names = (x509.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).toLowerCase());
  return {
    leafPem,
    serial: normalizeSerial(x509.serialNumber),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    names,
  };
}

export function sameNames(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a.map((n) => n.toLowerCase()));
  const right = new Set(b.map((n) => n.toLowerCase()));
  return left.size === right.size && [...left].every((n) => right.has(n));
}
