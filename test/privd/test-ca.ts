// A two-level test CA (root → intermediate → leaf) made with @peculiar/x509, because the tests
// need certificates openssl 3.0's `x509 -req` cannot make: already expired, for a foreign key,
// for other names, a leaf that is a CA, an intermediate that may not sign. Leaves are issued for
// the public key in a CSR from the real keyd, with serverAuth as a real CA's are.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY = 86_400_000;

interface Authority {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

export interface IssueOptions {
  names: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Sign for this public key instead of the CSR's (a chain whose key does not match). */
  publicKey?: CryptoKey;
  /** A leaf that says it is a CA itself (basicConstraints CA:TRUE). */
  leafIsCa?: boolean;
  /** The leaf's extended key usages (OIDs); default serverAuth; [] leaves the extension out. */
  extendedKeyUsages?: string[];
}

/** How the intermediate is made: by default a CA that may sign certificates, as every real one. */
export interface IntermediateOptions {
  ca?: boolean;
  keyUsages?: x509.KeyUsageFlags;
  /** An extended key usage extension on the intermediate (OIDs); none by default. */
  extendedKeyUsages?: string[];
}

export class TestCa {
  private constructor(readonly root: Authority, readonly intermediate: Authority) {}

  static async create(name = 'certsep privd test', intermediate: IntermediateOptions = {}): Promise<TestCa> {
    const rootKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      name: `CN=${name} root`,
      keys: rootKeys,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
      signingAlgorithm: ALG,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const interKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const inter = await x509.X509CertificateGenerator.create({
      subject: `CN=${name} intermediate`,
      issuer: root.subject,
      publicKey: interKeys.publicKey,
      signingKey: rootKeys.privateKey,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(intermediate.ca ?? true, intermediate.ca === false ? undefined : 0, true),
        new x509.KeyUsagesExtension(intermediate.keyUsages ?? x509.KeyUsageFlags.keyCertSign, true),
        ...(intermediate.extendedKeyUsages ? [new x509.ExtendedKeyUsageExtension(intermediate.extendedKeyUsages)] : []),
      ],
    });
    return new TestCa({ cert: root, keys: rootKeys }, { cert: inter, keys: interKeys });
  }

  /** A leaf for the CSR's key (or opts.publicKey), signed by the intermediate. */
  async issue(csrPem: string, opts: IssueOptions): Promise<x509.X509Certificate> {
    const publicKey = opts.publicKey ?? new x509.Pkcs10CertificateRequest(csrPem).publicKey;
    const usages = opts.extendedKeyUsages ?? [x509.ExtendedKeyUsage.serverAuth];
    return x509.X509CertificateGenerator.create({
      subject: `CN=${opts.names[0]}`,
      issuer: this.intermediate.cert.subject,
      publicKey,
      signingKey: this.intermediate.keys.privateKey,
      notBefore: opts.notBefore ?? new Date(Date.now() - 60_000),
      notAfter: opts.notAfter ?? new Date(Date.now() + 7 * DAY),
      signingAlgorithm: ALG,
      extensions: [
        new x509.SubjectAlternativeNameExtension(opts.names.map((value) => ({ type: 'dns' as const, value }))),
        new x509.BasicConstraintsExtension(opts.leafIsCa ?? false, undefined, true),
        ...(usages.length > 0 ? [new x509.ExtendedKeyUsageExtension(usages)] : []),
      ],
    });
  }

  /** A leaf and its own fresh key, as PEM: the certificate a target held before privd's first install. */
  async issueWithNewKey(names: string[]): Promise<{ chainPem: string; keyPem: string }> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const leaf = await this.issue('', { names, publicKey: keys.publicKey });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    return { chainPem: this.chainPem(leaf), keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n` };
  }

  get rootPem(): string {
    return `${this.root.cert.toString('pem')}\n`;
  }

  /** leaf + intermediate, the order a CA serves it. */
  chainPem(leaf: x509.X509Certificate): string {
    return [leaf, this.intermediate.cert].map((c) => `${c.toString('pem')}\n`).join('');
  }
}

export type { CryptoKey };
/** Re-exported from here, where reflect-metadata (which @peculiar/x509 needs first) is imported. */
export { ExtendedKeyUsage, KeyUsageFlags } from '@peculiar/x509';

export async function foreignPublicKey(): Promise<CryptoKey> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])).publicKey;
}
