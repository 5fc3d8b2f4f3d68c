// What the five file kinds a target may list contain, and what they are called. The names follow
// certbot's, so services configured for certbot's live/ directory need no change; a certificate's
// second key type gets its type before ".pem" (fullchain.rsa-2048.pem) so both fit in one target.
import type { CertificateConfig, CertificateFile } from '../config/schema.ts';
import type { KeyType } from '../keyd/api.ts';

export interface CertificateMaterial {
  leafPem: string;
  chainPem: string;
  fullchainPem: string;
  keyPem: string;
}

/** The four files certbot's lineage holds (combined is derived: fullchain then key). */
export const LINEAGE_FILES = ['cert', 'chain', 'fullchain', 'privkey'] as const;

const PUBLIC_FILES = new Set<CertificateFile>(['cert', 'chain', 'fullchain']);

export function keyTypeSuffix(cert: CertificateConfig, keyType: KeyType): string {
  return cert.keyTypes[0] === keyType ? '' : `.${keyType}`;
}

export function fileName(kind: CertificateFile, suffix: string): string {
  return `${kind}${suffix}.pem`;
}

export function contentOf(kind: CertificateFile, m: CertificateMaterial): string {
  switch (kind) {
    case 'cert': return m.leafPem;
    case 'chain': return m.chainPem;
    case 'fullchain': return m.fullchainPem;
    case 'privkey': return m.keyPem;
    case 'combined': return m.fullchainPem + m.keyPem;
  }
}

/** Certificates are public and world-readable (0644); files holding the key get the target's mode. */
export function modeOf(kind: CertificateFile, targetMode: string): number {
  return PUBLIC_FILES.has(kind) ? 0o644 : parseInt(targetMode, 8);
}
