// certsepctl import-certbot --install: a certbot lineage's current key and chain become the
// installed state of the certsep certificate with the same names, so the switch needs no new
// order. certsepctl runs as root and reads certbot's files itself; the key goes to keyd
// (key.import, root only) and privd installs it the way it installs any renewal: it takes the
// chain and a key id, fetches the key from keyd, and checks key, names and validity itself.
import { readFileSync } from 'node:fs';
import type { CertificateConfig, Config, KeyType } from '../config/schema.ts';
import { sameNames } from '../deployd/leaf.ts';
import { keydApi } from '../keyd/api.ts';
import { privdApi } from '../privd/api.ts';
import { RpcError } from '../proto/errors.ts';
import type { CertbotLineage } from './certbot-lineages.ts';
import { callDaemon } from './deployd-call.ts';

export type Adoption =
  | { outcome: 'adopted'; lineage: string; cert: string; keyType: KeyType; version: number; serial: string; notAfter: string }
  | { outcome: 'skipped'; lineage: string; reason: string; configToAdd?: string }
  | { outcome: 'failed'; lineage: string; cert: string; step: string; code: string; message: string };

/**
 * The configured certificate a lineage stands for: the one with the same domain set. A certificate
 * of the lineage's name with other domains is a reason to skip, not a match; unconfigured says
 * that no certificate has that name either, so the lineage's config can simply be added.
 */
export function matchingCertificate(config: Config, lineage: CertbotLineage): { cert: CertificateConfig } | { reason: string; unconfigured: boolean } {
  const byNames = config.certificates.find((c) => sameNames(c.domains, lineage.domains));
  if (byNames) return { cert: byNames };
  const byName = config.certificates.find((c) => c.name === lineage.name);
  if (byName) {
    return {
      reason: `certificate "${byName.name}" names ${byName.domains.join(', ')}, but the lineage's certificate names ${lineage.domains.join(', ')}; installing it would change what is served`,
      unconfigured: false,
    };
  }
  return { reason: `no certificate in certsep's config names ${lineage.domains.join(', ') || '(no names)'}`, unconfigured: true };
}

export async function adoptLineage(config: Config, lineage: CertbotLineage, cert: CertificateConfig): Promise<Adoption> {
  const keyType = lineage.keyType as KeyType | undefined;
  if (!keyType || !cert.keyTypes.includes(keyType)) {
    return { outcome: 'skipped', lineage: lineage.name, reason: `its key is ${lineage.keyType ?? 'of an unknown type'}, and certificate "${cert.name}" is configured for ${cert.keyTypes.join(', ')}` };
  }
  let step = 'read';
  let installSent = false;
  try {
    const keyPem = readFileSync(lineage.privkeyPath, 'utf8');
    const chainPem = readFileSync(lineage.fullchainPath, 'utf8');
    step = 'key.import';
    const { keyId } = await callDaemon(config, keydApi, 'key.import', { cert: cert.name, keyType, keyPem });
    step = 'install';
    installSent = true;
    const installed = await callDaemon(config, privdApi, 'deploy.install', { cert: cert.name, keyType, chainPem, keyId });
    step = 'check';
    await callDaemon(config, privdApi, 'deploy.check', { certs: [cert.name] });
    step = 'reload';
    await callDaemon(config, privdApi, 'deploy.reload', { certs: [cert.name] });
    return { outcome: 'adopted', lineage: lineage.name, cert: cert.name, keyType, version: installed.version, serial: installed.serial, notAfter: installed.notAfter };
  } catch (e) {
    // As deployd does: a failed check has already restored the previous files (privd's contract);
    // after any other failure a pending install is abandoned now rather than at privd's next start.
    const rolledBack = installSent && step !== 'check' ? await rollBack(config, cert.name) : '';
    const code = e instanceof RpcError ? e.code : ((e as NodeJS.ErrnoException).code ?? 'E_INTERNAL');
    return { outcome: 'failed', lineage: lineage.name, cert: cert.name, step, code, message: `${(e as Error).message}${rolledBack}` };
  }
}

/** '' when the rollback went through, else what to add to the failure's message. */
async function rollBack(config: Config, cert: string): Promise<string> {
  try {
    await callDaemon(config, privdApi, 'deploy.rollback', { certs: [cert] });
    return '';
  } catch (e) {
    return `; the rollback failed too (${(e as Error).message}), privd rolls the install back when it next starts`;
  }
}
