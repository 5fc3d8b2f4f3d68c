// Checks that need more than one field: names that must refer to something defined elsewhere,
// and combinations that would be valid YAML but fail (or do harm) at renewal time.
import type { z } from 'zod';
import type { ConfigShape } from './schema.ts';

type Certificate = ConfigShape['certificates'][number];
type Path = (string | number)[];

const PRIVATE_KEY_FILES = new Set(['privkey', 'combined']);

export function checkCrossReferences(config: ConfigShape, ctx: z.RefinementCtx): void {
  const report = (path: Path, message: string) => ctx.addIssue({ code: 'custom', path, message });
  const firstIndexOfName = new Map<string, number>();
  const firstUseOfDir = new Map<string, string>();

  config.certificates.forEach((certificate, i) => {
    const at = ['certificates', i];
    const earlier = firstIndexOfName.get(certificate.name);
    if (earlier === undefined) firstIndexOfName.set(certificate.name, i);
    else report([...at, 'name'], `duplicate certificate name ${JSON.stringify(certificate.name)} (also certificates[${earlier}])`);

    if (!Object.hasOwn(config.cas, certificate.ca)) {
      report([...at, 'ca'], `CA ${JSON.stringify(certificate.ca)} is not defined under cas${definedNames(config.cas)}`);
    }
    checkExposure(config, certificate, at, report);
    checkHosts(config, certificate, at, report);
    checkDomains(certificate, at, report);

    certificate.targets.forEach((target, j) => {
      const targetAt = [...at, 'targets', j];
      target.services.forEach((service, k) => {
        if (!Object.hasOwn(config.services, service)) {
          report([...targetAt, 'services', k], `service ${JSON.stringify(service)} is not defined under services${definedNames(config.services)}`);
        }
      });
      if ((parseInt(target.mode, 8) & 0o004) !== 0 && target.files.some((file) => PRIVATE_KEY_FILES.has(file))) {
        report([...targetAt, 'mode'], `mode ${target.mode} would make the private key world-readable; put privkey/combined in a target with a mode like "0640"`);
      }
      // Two targets writing the same directory would silently overwrite each other's files.
      const firstUse = firstUseOfDir.get(target.dir);
      if (firstUse !== undefined) report([...targetAt, 'dir'], `directory ${JSON.stringify(target.dir)} is already a target of ${firstUse}`);
      else firstUseOfDir.set(target.dir, `certificates[${i}].targets[${j}]`);
    });
  });
}

function checkExposure(config: ConfigShape, certificate: Certificate, at: Path, report: (path: Path, message: string) => void): void {
  if (certificate.challenge === undefined) {
    if (config.users.remote === undefined) report([...at, 'challenge'], 'a challenge is required (only a host with the remote role, users.remote, installs certificates another host orders)');
    if (certificate.hosts.length > 0) report([...at, 'challenge'], 'a certificate delivered to hosts is ordered here and needs a challenge');
  }
  if (certificate.exposure === undefined) return;
  if (!Object.hasOwn(config.exposures, certificate.exposure)) {
    report([...at, 'exposure'], `exposure ${JSON.stringify(certificate.exposure)} is not defined under exposures${definedNames(config.exposures)}`);
  } else if (!certificate.challenge?.type.startsWith('http-01')) {
    report([...at, 'exposure'], `an exposure opens a port for http-01 and is of no use to a ${certificate.challenge?.type ?? 'missing'} challenge`);
  }
}

function checkHosts(config: ConfigShape, certificate: Certificate, at: Path, report: (path: Path, message: string) => void): void {
  certificate.hosts.forEach((host, h) => {
    if (!Object.hasOwn(config.hosts, host)) report([...at, 'hosts', h], `host ${JSON.stringify(host)} is not defined under hosts${definedNames(config.hosts)}`);
  });
  // The remote's own privd installs it, with the targets of the remote's config; a second local
  // copy would need a key of its own and belongs in a certificate entry of its own.
  if (certificate.hosts.length > 0 && certificate.targets.length > 0) {
    report([...at, 'targets'], 'a certificate delivered to hosts is installed by those hosts (their own config names the targets); give this host its own certificate entry with the same domains');
  }
}

function checkDomains(certificate: Certificate, at: Path, report: (path: Path, message: string) => void): void {
  const firstIndexOfDomain = new Map<string, number>();
  const dns01 = certificate.challenge?.type.startsWith('dns-01') ?? false;
  certificate.domains.forEach((domain, d) => {
    const earlier = firstIndexOfDomain.get(domain);
    if (earlier === undefined) firstIndexOfDomain.set(domain, d);
    else report([...at, 'domains', d], `duplicate domain ${JSON.stringify(domain)} (also domains[${earlier}])`);
    // RFC 8555 section 8.3: http-01 cannot prove control of a whole subtree; CAs require dns-01.
    if (domain.startsWith('*.') && certificate.challenge && !dns01) {
      report([...at, 'domains', d], `wildcard ${JSON.stringify(domain)} needs a dns-01 challenge, not ${certificate.challenge.type}`);
    }
  });
}

function definedNames(record: Record<string, unknown>): string {
  const names = Object.keys(record);
  return names.length === 0 ? ' (none are defined)' : ` (defined: ${names.join(', ')})`;
}
