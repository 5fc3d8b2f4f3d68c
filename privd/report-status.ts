// status: per certificate and key type, the committed lineage version and its leaf (the public
// certificate and its names: deployd's source of truth for what is installed, even for a lineage it
// did not issue), and whether every target file holds exactly its bytes (sha256), so drift (a hand
// edit, a half-finished restore) shows.
import { X509Certificate, createHash } from 'node:crypto';
import { join } from 'node:path';
import type { CertificateConfig } from '../config/schema.ts';
import { readSmallRegularFile } from '../runtime/read-small-file.ts';
import { MAX_TARGET_FILE_BYTES } from './api.ts';
import { contentOf, fileName, keyTypeSuffix } from './certificate-files.ts';
import type { Journal } from './journal.ts';
import type { Lineage } from './lineage.ts';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * The digest of a target file, or null when it is missing or not a small regular file: a user
 * who took the directory over may have put a FIFO (which would block privd) or a symlink there.
 */
function fileDigest(path: string): string | null {
  try {
    return sha256(readSmallRegularFile(path, MAX_TARGET_FILE_BYTES));
  } catch {
    return null;
  }
}

function dnsNamesOf(leaf: X509Certificate): string[] {
  return (leaf.subjectAltName ?? '').split(', ').filter((entry) => entry.startsWith('DNS:')).map((entry) => entry.slice(4).toLowerCase());
}

export function certificateStatus(cert: CertificateConfig, lineage: Lineage, journal: Journal) {
  return {
    cert: cert.name,
    pending: journal.runOf(cert.name) !== undefined,
    keyTypes: cert.keyTypes.map((keyType) => {
      const suffix = keyTypeSuffix(cert, keyType);
      const live = lineage.readLive(cert.name, suffix);
      const leaf = live ? new X509Certificate(live.material.leafPem) : null;
      return {
        keyType,
        ...(live && leaf
          ? {
              installed: {
                version: live.version,
                serial: leaf.serialNumber.toUpperCase(),
                issuer: leaf.issuer.replace(/\n/g, ', '),
                notAfter: new Date(leaf.validTo).toISOString(),
                leafPem: live.material.leafPem,
                names: dnsNamesOf(leaf),
              },
            }
          : {}),
        targets: cert.targets.map((target) => {
          const differing = target.files
            .map((kind) => fileName(kind, suffix))
            .filter((name, i) => live === null || fileDigest(join(target.dir, name)) !== sha256(contentOf(target.files[i]!, live.material)));
          return { dir: target.dir, matches: differing.length === 0, differing };
        }),
      };
    }),
  };
}
