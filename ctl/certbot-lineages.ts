// certbot's lineages as certbot itself describes them: <config-dir>/renewal/<name>.conf (an INI
// dialect: `key = value`, [renewalparams], [[webroot_map]]) and the certificate it points at.
// Read by `import-certbot` (to write certsep config) and by `doctor` (to find names certbot
// would renew behind certsep's back).
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertbotLineage {
  name: string;
  confPath: string;
  /** DNS names of the live certificate, else the webroot_map's names. */
  domains: string[];
  certPath: string;
  /** The lineage's current key and full chain, as its renewal conf names them (live/<name>/ by default). */
  privkeyPath: string;
  fullchainPath: string;
  notAfter?: Date;
  /** From the certificate's public key: 'ec-p256' | 'ec-p384' | 'rsa-<bits>'. */
  keyType?: string;
  authenticator?: string;
  /** The webroot per name ([[webroot_map]]), else the single webroot_path. */
  webroots: Record<string, string>;
  webrootPath?: string;
  server?: string;
  renewBeforeExpiry?: string;
  /** renew_hook / deploy hook: a shell command line, as certbot ran it. */
  deployHook?: string;
  /** autorenew = False: certbot's own scheduler leaves this lineage alone. */
  autorenew: boolean;
}

type Sections = Map<string, Map<string, string>>;

export function parseRenewalConf(text: string): Sections {
  const sections: Sections = new Map([['', new Map()]]);
  let current = sections.get('')!;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[+([^\]]+)\]+$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!.trim(), current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0) current.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return sections;
}

export function readCertbotLineages(configDir: string): CertbotLineage[] {
  const renewalDir = join(configDir, 'renewal');
  if (!existsSync(renewalDir)) return [];
  return readdirSync(renewalDir)
    .filter((f) => f.endsWith('.conf'))
    .sort()
    .map((file) => lineageFrom(configDir, join(renewalDir, file), file.slice(0, -'.conf'.length)));
}

function lineageFrom(configDir: string, confPath: string, name: string): CertbotLineage {
  const sections = parseRenewalConf(readFileSync(confPath, 'utf8'));
  const top = sections.get('')!;
  const params = sections.get('renewalparams') ?? new Map<string, string>();
  const webroots = Object.fromEntries(sections.get('webroot_map') ?? []);
  const certPath = top.get('cert') ?? join(configDir, 'live', name, 'cert.pem');
  const lineage: CertbotLineage = {
    name,
    confPath,
    domains: Object.keys(webroots),
    certPath,
    privkeyPath: top.get('privkey') ?? join(configDir, 'live', name, 'privkey.pem'),
    fullchainPath: top.get('fullchain') ?? join(configDir, 'live', name, 'fullchain.pem'),
    webroots,
    autorenew: !/^false$/i.test(params.get('autorenew') ?? 'True'),
  };
  const optional: [keyof CertbotLineage, string | undefined][] = [
    ['authenticator', params.get('authenticator')],
    ['webrootPath', params.get('webroot_path')?.replace(/,$/, '').split(',')[0]?.trim()],
    ['server', params.get('server')],
    ['renewBeforeExpiry', top.get('renew_before_expiry')],
    ['deployHook', params.get('renew_hook') ?? params.get('deploy_hook')],
  ];
  for (const [key, value] of optional) if (value && value !== 'None') Object.assign(lineage, { [key]: value });
  try {
    const cert = new X509Certificate(readFileSync(certPath));
    lineage.domains = (cert.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4));
    lineage.notAfter = new Date(cert.validTo);
    lineage.keyType = keyTypeOf(cert);
  } catch {
    // No readable certificate (deleted, or a broken lineage): the webroot_map's names stand.
  }
  return lineage;
}

function keyTypeOf(cert: X509Certificate): string | undefined {
  const details = cert.publicKey.asymmetricKeyDetails;
  if (cert.publicKey.asymmetricKeyType === 'ec') {
    return details?.namedCurve === 'prime256v1' ? 'ec-p256' : details?.namedCurve === 'secp384r1' ? 'ec-p384' : undefined;
  }
  if (cert.publicKey.asymmetricKeyType === 'rsa') return `rsa-${details?.modulusLength}`;
  return undefined;
}
