// certsepctl doctor, for hosts: that deployd can use its ssh identity (its own, 0600: ssh refuses
// a key others can read) and, under systemd, that deployd's unit has the fleet drop-in (without
// it deployd has no network and every host is unreachable).
import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { Finding } from './finding.ts';

export const FLEET_DROPIN = '/etc/systemd/system/certsep-deployd.service.d/fleet.conf';

export function checkFleet(config: Config, deploydUid: number | undefined, root: string, underSystemd: boolean): Finding[] {
  const hosts = Object.entries(config.hosts);
  if (hosts.length === 0) return [];
  const findings: Finding[] = [];
  for (const identityFile of new Set(hosts.map(([, host]) => host.identityFile))) {
    const users = hosts.filter(([, h]) => h.identityFile === identityFile).map(([name]) => name).join(', ');
    let problem: string | undefined;
    try {
      const st = lstatSync(identityFile);
      if (!st.isFile()) problem = 'is not a regular file';
      else if (deploydUid !== undefined && st.uid !== deploydUid) problem = `is owned by uid ${st.uid}, not deployd's ${deploydUid}`;
      else if ((st.mode & 0o077) !== 0) problem = `has mode ${(st.mode & 0o777).toString(8)}; ssh refuses a private key others can read`;
    } catch {
      problem = 'is missing';
    }
    findings.push(problem === undefined
      ? { level: 'ok', check: 'ssh identity', detail: `${identityFile} (hosts ${users})` }
      : { level: 'fail', check: 'ssh identity', detail: `${identityFile} ${problem} (hosts ${users})`, fix: `sudo ./install --fleet makes it; or chown ${deploydUid ?? 'certsep-deploy'} ${identityFile} && chmod 0600 ${identityFile}` });
  }
  if (underSystemd) {
    const dropIn = join(root, FLEET_DROPIN);
    findings.push(existsSync(dropIn)
      ? { level: 'ok', check: 'deployd network', detail: `${FLEET_DROPIN} lets deployd reach ${hosts.length} host(s)` }
      : { level: 'fail', check: 'deployd network', detail: `hosts are configured but deployd's unit has no network (${FLEET_DROPIN} is missing)`, fix: 'sudo ./install --fleet' });
  }
  return findings;
}
