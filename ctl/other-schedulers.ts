// Other programs that renew certificates on this machine: the failure mode certsep exists to end
// (certbot.timer renewing, and "owning", a certificate that a custom script was meant to renew).
// Everything is read below `root`, so tests can plant a fake /etc.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCertbotLineages } from './certbot-lineages.ts';
import { unitEnabled } from './unit-state.ts';

export interface SchedulerFinding {
  /** What renews: "certbot.timer", "/etc/cron.d/certbot", "acme.sh cron (root's crontab)". */
  scheduler: string;
  /** The names it would renew that certsep also manages. */
  overlapping: string[];
  detail: string;
  fix: string;
}

export function findOtherSchedulers(root: string, managedNames: readonly string[]): SchedulerFinding[] {
  const findings: SchedulerFinding[] = [];
  const managed = new Set(managedNames.map((n) => n.toLowerCase()));
  const certbotNames = readCertbotLineages(join(root, 'etc/letsencrypt'))
    .filter((l) => l.autorenew)
    .flatMap((l) => l.domains.map((d) => ({ lineage: l.name, domain: d.toLowerCase() })))
    .filter((x) => managed.has(x.domain));
  const certbotOverlap = [...new Set(certbotNames.map((x) => x.domain))];
  const lineages = [...new Set(certbotNames.map((x) => x.lineage))];
  const certbotFix = lineages.length > 0
    ? `set "autorenew = False" under [renewalparams] in ${lineages.map((l) => `/etc/letsencrypt/renewal/${l}.conf`).join(', ')}, or disable certbot's scheduler`
    : 'nothing certsep manages is affected; disable it once certsep renews everything';

  for (const unit of ['certbot.timer', 'certbot.service']) {
    const wantedBy = unit.endsWith('.timer') ? 'timers.target' : 'multi-user.target';
    if (unitEnabled(root, unit, wantedBy)) {
      findings.push({
        scheduler: unit,
        overlapping: certbotOverlap,
        detail: `${unit} is enabled (/etc/systemd/system/${wantedBy}.wants/${unit})`,
        fix: `systemctl disable --now ${unit}; ${certbotFix}`,
      });
    }
  }
  const cronCertbot = join(root, 'etc/cron.d/certbot');
  if (existsSync(cronCertbot) && activeCronLines(readFileSync(cronCertbot, 'utf8')).some((l) => /\bcertbot\b/.test(l))) {
    findings.push({
      scheduler: '/etc/cron.d/certbot',
      overlapping: certbotOverlap,
      // Debian's entry skips itself only where systemd runs (then certbot.timer renews instead).
      detail: 'cron runs "certbot renew" (Debian\'s entry is active whenever systemd is not PID 1)',
      fix: `comment out the line in /etc/cron.d/certbot; ${certbotFix}`,
    });
  }
  for (const { file, lines } of crontabs(root)) {
    const acme = lines.filter((l) => /acme\.sh/.test(l));
    if (acme.length === 0) continue;
    const names = acmeShNames(root).filter((n) => managed.has(n));
    findings.push({
      scheduler: `acme.sh cron (${file})`,
      overlapping: names,
      detail: `cron line: ${acme[0]}`,
      fix: names.length > 0
        ? `acme.sh --remove -d ${names[0]} (for each overlapping name), or remove the acme.sh line from ${file}`
        : `remove the acme.sh line from ${file} once certsep renews everything`,
    });
  }
  return findings;
}

function activeCronLines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

function crontabs(root: string): { file: string; lines: string[] }[] {
  const files = ['etc/crontab'];
  for (const dir of ['etc/cron.d', 'var/spool/cron/crontabs']) {
    const abs = join(root, dir);
    if (existsSync(abs)) for (const f of readdirSync(abs)) files.push(join(dir, f));
  }
  return files.flatMap((file) => {
    try {
      return [{ file: `/${file}`, lines: activeCronLines(readFileSync(join(root, file), 'utf8')) }];
    } catch {
      return [];
    }
  });
}

/** acme.sh keeps one directory per certificate, named for its main domain, in ~/.acme.sh. */
function acmeShNames(root: string): string[] {
  const home = join(root, 'root/.acme.sh');
  if (!existsSync(home)) return [];
  return readdirSync(home, { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name.includes('.'))
    .map((e) => e.name.replace(/_ecc$/, '').toLowerCase());
}
