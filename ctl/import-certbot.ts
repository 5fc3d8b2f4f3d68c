// certsepctl import-certbot: certbot's lineages as certsep config, printed for the admin to review
// and paste. The names, key type, webroot, CA, renewal margin and deploy hook carry over; the
// targets point at the lineage's live/ directory, where services already read their files.
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { isSafeName } from '../config/schema.ts';
import { readCertbotLineages, type CertbotLineage } from './certbot-lineages.ts';

const KNOWN_CAS: Record<string, string> = {
  'https://acme-v02.api.letsencrypt.org/directory': 'letsencrypt',
  'https://acme-staging-v02.api.letsencrypt.org/directory': 'letsencrypt-staging',
};
const KEY_TYPES = new Set(['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']);

export function registerImportCertbotCommand(program: Command): void {
  program
    .command('import-certbot')
    .description('print certsep config for the lineages of a certbot config dir')
    .option('--config-dir <dir>', 'certbot\'s --config-dir', '/etc/letsencrypt')
    .action((options: { configDir: string }) => {
      const lineages = readCertbotLineages(options.configDir);
      if (lineages.length === 0) {
        process.stderr.write(`certsepctl import-certbot: no renewal/*.conf under ${options.configDir}\n`);
        process.exitCode = 1;
        return;
      }
      const { yaml, notes } = certsepConfigFor(lineages);
      process.stdout.write(yaml);
      for (const note of notes) process.stderr.write(`note: ${note}\n`);
    });
}

export function certsepConfigFor(lineages: CertbotLineage[]): { yaml: string; notes: string[] } {
  const notes: string[] = [];
  const cas: Record<string, { directory: string }> = {};
  const certificates = lineages.map((lineage) => {
    const name = certsepName(lineage.name);
    const cert: Record<string, unknown> = { name, domains: lineage.domains };
    if (lineage.keyType && KEY_TYPES.has(lineage.keyType)) cert.keyTypes = [lineage.keyType];
    else notes.push(`${lineage.name}: key type ${lineage.keyType ?? 'unknown'} is not one certsep issues; ec-p256 is used`);
    const ca = caFor(lineage.server, cas);
    if (ca !== 'default') cert.ca = ca;
    const webroot = lineage.webrootPath ?? Object.values(lineage.webroots)[0];
    if (lineage.authenticator === 'webroot' && webroot) cert.challenge = { type: 'http-01-webroot', webroot };
    else {
      cert.challenge = { type: 'http-01-listener', address: '127.0.0.1', port: 8402 };
      notes.push(`${lineage.name}: authenticator ${lineage.authenticator ?? 'unknown'} has no certsep equivalent; pick a challenge (a listener on 127.0.0.1:8402 is proposed)`);
    }
    const days = /^(\d+)\s*days?$/.exec(lineage.renewBeforeExpiry ?? '');
    if (days) cert.renewBeforeDays = Number(days[1]);
    if (lineage.deployHook) {
      // certbot ran hooks through a shell; certsep runs argv, so the shell is named explicitly.
      cert.hooks = { onRenewed: ['/bin/sh', '-c', lineage.deployHook] };
    }
    cert.targets = [{ dir: liveDirOf(lineage), files: ['cert', 'chain', 'fullchain', 'privkey'] }];
    return cert;
  });
  const document: Record<string, unknown> = {};
  if (Object.keys(cas).length > 0) document.cas = cas;
  document.certificates = certificates;
  const header = `# certsep config for ${lineages.length} certbot lineage(s); review, then merge into certsep.yaml.\n` +
    '# Add `services:` to targets that a service reads, and disable certbot\'s timer (certsepctl doctor).\n';
  return { yaml: header + stringify(document), notes };
}

function certsepName(lineage: string): string {
  const candidate: string = lineage.toLowerCase().replace(/[^a-z0-9_.-]/g, '-').replace(/\.\.+/g, '.').slice(0, 63);
  if (isSafeName(candidate)) return candidate;
  return `cert-${lineage.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`.slice(0, 63);
}

function caFor(server: string | undefined, cas: Record<string, { directory: string }>): string {
  if (!server || KNOWN_CAS[server] === 'letsencrypt') return 'default';
  const known = KNOWN_CAS[server];
  const name = known ?? `imported-${Object.keys(cas).length + 1}`;
  const existing = Object.entries(cas).find(([, ca]) => ca.directory === (known ?? server));
  if (existing) return existing[0];
  cas[name] = { directory: known ?? server };
  return name;
}

function liveDirOf(lineage: CertbotLineage): string {
  return lineage.certPath.replace(/\/[^/]+$/, '');
}
