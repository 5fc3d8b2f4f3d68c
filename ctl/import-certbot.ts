// certsepctl import-certbot: certbot's lineages as certsep config, printed for the admin to review
// and paste. The names, key type, webroot, CA, renewal margin and deploy hook carry over; the
// targets point at the lineage's live/ directory, where services already read their files.
// With --install, lineages whose certificate is already in certsep's config are adopted: their
// current key and chain become certsep's installed state (adopt-certbot-lineage.ts), no new order.
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { isSafeName, type Config } from '../config/schema.ts';
import { adoptLineage, matchingCertificate, type Adoption } from './adopt-certbot-lineage.ts';
import { readCertbotLineages, type CertbotLineage } from './certbot-lineages.ts';
import { print, printableLine, printError } from './terminal-text.ts';

const KNOWN_CAS: Record<string, string> = {
  'https://acme-v02.api.letsencrypt.org/directory': 'letsencrypt',
  'https://acme-staging-v02.api.letsencrypt.org/directory': 'letsencrypt-staging',
};
const KEY_TYPES = new Set(['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']);

export function registerImportCertbotCommand(program: Command, getConfig: () => Config): void {
  program
    .command('import-certbot')
    .description('print certsep config for the lineages of a certbot config dir; with --install, adopt those already configured (exit 0: all adopted, 2: some skipped, 1: a failure)')
    .argument('[names...]', 'only these certbot lineages')
    .option('--config-dir <dir>', 'certbot\'s --config-dir', '/etc/letsencrypt')
    .option('--install', 'install each lineage\'s current key and chain as the configured certificate with the same names (as root)')
    .action(async (names: string[], options: { configDir: string; install?: boolean }) => {
      const all = readCertbotLineages(options.configDir);
      const missing = names.filter((name) => !all.some((l) => l.name === name));
      for (const name of missing) printError(`certsepctl import-certbot: no lineage "${name}" under ${options.configDir}/renewal\n`);
      const lineages = names.length > 0 ? all.filter((l) => names.includes(l.name)) : all;
      if (lineages.length === 0 || missing.length > 0) {
        if (lineages.length === 0) printError(`certsepctl import-certbot: no renewal/*.conf under ${options.configDir}\n`);
        process.exitCode = 1;
        return;
      }
      if (options.install) {
        process.exitCode = await installLineages(getConfig(), lineages);
        return;
      }
      const { yaml, notes } = certsepConfigFor(lineages);
      print(yaml);
      for (const note of notes) printError(`note: ${printableLine(note)}\n`);
    });
}

/** One lineage at a time, each with its own check and reload: one failure leaves the others adopted. */
async function installLineages(config: Config, lineages: CertbotLineage[]): Promise<number> {
  const adoptions: Adoption[] = [];
  for (const lineage of lineages) {
    const match = matchingCertificate(config, lineage);
    const adoption: Adoption = 'cert' in match
      ? await adoptLineage(config, lineage, match.cert)
      : { outcome: 'skipped', lineage: lineage.name, reason: match.reason, ...(match.unconfigured ? { configToAdd: certsepConfigFor([lineage]).yaml } : {}) };
    print(`${printableLine(describeAdoption(adoption))}\n`);
    if (adoption.outcome === 'skipped' && adoption.configToAdd) {
      print(`  add it to certsep's config, then run import-certbot --install again:\n${adoption.configToAdd.replace(/^/gm, '    ')}\n`);
    }
    adoptions.push(adoption);
  }
  if (adoptions.some((a) => a.outcome === 'failed')) return 1;
  return adoptions.every((a) => a.outcome === 'adopted') ? 0 : 2;
}

function describeAdoption(a: Adoption): string {
  switch (a.outcome) {
    case 'adopted':
      return `adopted ${a.lineage} as ${a.cert} (${a.keyType}): version ${a.version}, serial ${a.serial}, valid until ${a.notAfter}`;
    case 'skipped':
      return `skipped ${a.lineage}: ${a.reason}`;
    case 'failed':
      return `failed ${a.lineage} as ${a.cert} at ${a.step}: ${a.code}: ${a.message}`;
  }
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
