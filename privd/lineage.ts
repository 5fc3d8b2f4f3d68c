// A certbot-compatible lineage of what privd installed and committed, so tools and habits that
// know certbot's layout keep working: <paths.stateDir>/archive/<cert>/cert<N>.pem, chain<N>.pem,
// fullchain<N>.pem, privkey<N>.pem (every version, root 0700: they hold private keys), and
// <paths.stateDir>/live/<cert>/{cert,chain,fullchain,privkey}.pem, symlinks to the committed
// version. A second key type carries its suffix: cert<N>.rsa-2048.pem, live/<cert>/cert.rsa-2048.pem.
// Versions are written to archive/ at install time; live/ moves only when a run commits.
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { type CertificateMaterial, contentOf, fileName, LINEAGE_FILES } from './certificate-files.ts';
import { fsyncDir, writePrivateFileAtomic } from './write-atomic.ts';

export interface LineageVersion {
  version: number;
  material: CertificateMaterial;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class Lineage {
  private readonly liveRoot: string;
  private readonly archiveRoot: string;

  constructor(stateRoot: string) {
    this.liveRoot = join(stateRoot, 'live');
    this.archiveRoot = join(stateRoot, 'archive');
  }

  /** One more than the highest version of this key type in archive/ (1 for the first). */
  nextVersion(cert: string, suffix: string): number {
    const dir = join(this.archiveRoot, cert);
    if (!existsSync(dir)) return 1;
    const pattern = new RegExp(`^cert([0-9]+)${escapeRegExp(suffix)}\\.pem$`);
    let highest = 0;
    for (const name of readdirSync(dir)) {
      const m = pattern.exec(name);
      if (m) highest = Math.max(highest, Number(m[1]));
    }
    return highest + 1;
  }

  writeVersion(cert: string, suffix: string, version: number, material: CertificateMaterial): void {
    const dir = this.ensureDir(this.archiveRoot, cert);
    for (const kind of LINEAGE_FILES) {
      writePrivateFileAtomic(join(dir, this.archiveName(kind, version, suffix)), contentOf(kind, material), kind === 'privkey' ? 0o600 : 0o644);
    }
  }

  /** Removes a version that never went live (its run was rolled back). */
  dropVersion(cert: string, suffix: string, version: number): void {
    for (const kind of LINEAGE_FILES) rmSync(join(this.archiveRoot, cert, this.archiveName(kind, version, suffix)), { force: true });
  }

  /** Points live/<cert>/ at a version: each symlink replaced atomically (new link, rename over). */
  pointLiveAt(cert: string, suffix: string, version: number): void {
    const dir = this.ensureDir(this.liveRoot, cert);
    for (const kind of LINEAGE_FILES) {
      const link = join(dir, fileName(kind, suffix));
      const temp = `${link}.tmp`;
      rmSync(temp, { force: true });
      symlinkSync(join('..', '..', 'archive', cert, this.archiveName(kind, version, suffix)), temp);
      renameSync(temp, link);
    }
    fsyncDir(dir);
  }

  /** The committed version of a key type, or null when none was committed yet. */
  readLive(cert: string, suffix: string): LineageVersion | null {
    const dir = join(this.liveRoot, cert);
    const certLink = join(dir, fileName('cert', suffix));
    if (!existsSync(certLink)) return null;
    const m = /^cert([0-9]+)/.exec(readlinkSync(certLink).split('/').pop() ?? '');
    if (!m) return null;
    const read = (kind: (typeof LINEAGE_FILES)[number]) => readFileSync(join(dir, fileName(kind, suffix)), 'utf8');
    return {
      version: Number(m[1]),
      material: { leafPem: read('cert'), chainPem: read('chain'), fullchainPem: read('fullchain'), keyPem: read('privkey') },
    };
  }

  private archiveName(kind: string, version: number, suffix: string): string {
    return `${kind}${version}${suffix}.pem`;
  }

  private ensureDir(root: string, cert: string): string {
    for (const dir of [root, join(root, cert)]) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    }
    return join(root, cert);
  }
}
