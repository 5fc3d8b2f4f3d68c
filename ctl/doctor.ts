// certsepctl doctor: checks an installation the way a sysadmin would by hand — config, accounts,
// directories and their owners, sockets, units (or the supervisor), the CA, whether each http-01
// webroot is served over HTTP, deployd's ssh identity for remote hosts — and finds other schedulers that would renew the
// same names behind certsep's back. Every problem comes with the fix. Exit 1 on any failure.
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { defaultConfigPath, loadConfigFile, type ConfigFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { resolveUid } from '../config/users.ts';
import type { DaemonName } from '../proto/api.ts';
import { socketPathOf } from '../runtime/daemon.ts';
import { compareDaemonConfigs } from './config-state.ts';
import { canConnect, fetchDirectory } from './reach.ts';
import type { Finding } from './finding.ts';
import { checkFleet } from './fleet-checks.ts';
import { findOtherSchedulers } from './other-schedulers.ts';
import { checkSupervisor, checkUnits, systemdManages } from './systemd-units.ts';
import { probeWebroots } from './webroot-probe.ts';
import { print, printableLine } from './terminal-text.ts';

export interface DoctorOptions {
  root: string;
  network: boolean;
  httpPort: number;
}

const DAEMONS: DaemonName[] = ['privd', 'keyd', 'acmed', 'netd', 'deployd'];
const LETSENCRYPT: Record<string, string> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check the installation and find other schedulers renewing the same names')
    .option('--root <dir>', 'read systemd units and look for other schedulers under this directory instead of /', '/')
    .option('--no-network', 'skip the CA reachability check')
    .option('--http-port <port>', 'the port the web server serves http-01 webroots on (the CA always uses 80)', parsePort, 80)
    .action(async (options: DoctorOptions) => {
      const configPath = program.opts<{ config?: string }>().config ?? defaultConfigPath();
      const findings = await runDoctor(configPath, options);
      for (const f of findings) {
        // A config error lists one problem per line; each stays a line of its own.
        const [first, ...more] = f.detail.split('\n');
        print(`${printableLine(`${f.level.toUpperCase().padEnd(4)} ${f.check}: ${first}`)}\n`);
        for (const line of more) print(`${printableLine(`     ${line}`)}\n`);
        if (f.fix) print(`${printableLine(`     fix: ${f.fix}`)}\n`);
      }
      if (findings.some((f) => f.level === 'fail')) process.exitCode = 1;
    });
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError('a port is a number from 1 to 65535');
  return port;
}

export async function runDoctor(configPath: string, options: DoctorOptions): Promise<Finding[]> {
  let file: ConfigFile;
  try {
    file = loadConfigFile(configPath);
  } catch (e) {
    return [{ level: 'fail', check: 'config', detail: (e as Error).message, fix: `correct ${configPath} (every problem is listed with its line)` }];
  }
  const { config } = file;
  const findings: Finding[] = [{ level: 'ok', check: 'config', detail: `${configPath}: ${config.certificates.length} certificate(s)` }];
  const uids = checkUsers(config, findings);
  checkDirectories(config, uids, findings);
  for (const daemon of DAEMONS) {
    const path = socketPathOf(config, daemon);
    findings.push((await canConnect(path))
      ? { level: 'ok', check: `socket ${daemon}`, detail: path }
      : { level: 'fail', check: `socket ${daemon}`, detail: `nothing answers at ${path}`, fix: `start certsep-${daemon} (systemctl start certsep-${daemon}.socket, or certsep-supervisor)` });
  }
  findings.push(...await checkConfigInForce(file));
  const underSystemd = systemdManages(options.root);
  if (underSystemd) findings.push(...checkUnits(options.root));
  else findings.push(await checkSupervisor(config));
  findings.push(...checkFleet(config, uids.get('deployd'), options.root, underSystemd));
  if (options.network) await checkCas(config, findings);
  findings.push(...await probeWebroots(config, { httpPort: options.httpPort }));
  const managed = config.certificates.flatMap((c) => c.domains);
  for (const s of findOtherSchedulers(options.root, managed)) {
    findings.push({
      level: s.overlapping.length > 0 ? 'fail' : 'warn',
      check: `other scheduler ${s.scheduler}`,
      detail: s.overlapping.length > 0 ? `${s.detail}; it also renews ${s.overlapping.join(', ')}` : s.detail,
      fix: s.fix,
    });
  }
  return findings;
}

/** Whether each running daemon runs this version of the file (a refused edit is a failure). */
async function checkConfigInForce(file: ConfigFile): Promise<Finding[]> {
  const agreement = await compareDaemonConfigs(file, false);
  return agreement.daemons.flatMap((d): Finding[] => {
    const check = `config in ${d.daemon}`;
    switch (d.state) {
      case 'current': return [{ level: 'ok', check, detail: `runs ${file.path} (sha256 ${file.sha256.slice(0, 12)})` }];
      case 'refused': return [{
        level: 'fail',
        check,
        detail: [
          `refused ${d.path ?? file.path} as it is now (${d.refused!.code}); keeps the config loaded at ${d.loadedAt}:`,
          ...d.refused!.issues,
        ].join('\n'),
        fix: 'correct what each line names; the daemon takes the file at its next request (or certsepctl reload)',
      }];
      case 'older': {
        const why = d.waiting ? ` while ${d.waiting}` : '';
        const detail = `runs the config loaded at ${d.loadedAt}${why}; it takes the file when that is done`;
        return [{ level: 'warn', check, detail }];
      }
      case 'failed': {
        const [service, socket] = [`certsep-${d.daemon}.service`, `certsep-${d.daemon}.socket`];
        const fix = `see journalctl -u ${service}; then systemctl reset-failed ${service} ${socket}`
          + ` && systemctl start ${socket}`;
        return [{ level: 'fail', check, detail: d.error ?? 'its unit failed', fix }];
      }
      // Not running (it reads the file when started) or not answering (the socket check says so).
      case 'not-running':
      case 'unreachable': return [];
    }
  });
}

function checkUsers(config: Config, findings: Finding[]): Map<DaemonName, number> {
  const uids = new Map<DaemonName, number>([['privd', 0]]);
  for (const daemon of ['keyd', 'acmed', 'netd', 'deployd'] as const) {
    try {
      const uid = resolveUid(config.users[daemon]);
      uids.set(daemon, uid);
      findings.push(uid === 0
        ? { level: 'fail', check: `user ${daemon}`, detail: 'runs as root', fix: `give ${daemon} its own account in users.${daemon}` }
        : { level: 'ok', check: `user ${daemon}`, detail: `${config.users[daemon]} (uid ${uid})` });
    } catch (e) {
      findings.push({ level: 'fail', check: `user ${daemon}`, detail: (e as Error).message, fix: `useradd --system --no-create-home ${config.users[daemon]}` });
    }
  }
  const taken = new Map<number, string>();
  for (const [daemon, uid] of uids) {
    const other = taken.get(uid);
    if (other) findings.push({ level: 'fail', check: `user ${daemon}`, detail: `shares uid ${uid} with ${other}`, fix: 'one account per daemon: a shared uid shares what each may read' });
    taken.set(uid, daemon);
  }
  return uids;
}

function checkDirectories(config: Config, uids: Map<DaemonName, number>, findings: Finding[]): void {
  for (const [daemon, uid] of uids) {
    const dir = join(config.paths.stateDir, daemon);
    try {
      const st = lstatSync(dir);
      const problems = [
        st.isDirectory() ? '' : 'not a directory',
        st.uid === uid ? '' : `owned by uid ${st.uid}, not ${uid}`,
        (st.mode & 0o077) === 0 ? '' : `mode ${(st.mode & 0o777).toString(8)} lets others in`,
      ].filter(Boolean);
      findings.push(problems.length === 0
        ? { level: 'ok', check: `state ${daemon}`, detail: `${dir} (uid ${uid}, 0700)` }
        : { level: 'fail', check: `state ${daemon}`, detail: `${dir}: ${problems.join('; ')}`, fix: `chown ${uid} ${dir} && chmod 0700 ${dir}` });
    } catch {
      findings.push({ level: 'fail', check: `state ${daemon}`, detail: `${dir} is missing`, fix: `install -d -o ${uid} -m 0700 ${dir}` });
    }
  }
  for (const dir of [config.paths.runDir, config.paths.auditDir]) {
    try {
      const st = lstatSync(dir);
      findings.push(st.uid === 0 && (st.mode & 0o022) === 0
        ? { level: 'ok', check: 'directory', detail: dir }
        : { level: 'fail', check: 'directory', detail: `${dir} is not root-owned or is group/world-writable`, fix: `chown root: ${dir} && chmod 0755 ${dir}` });
    } catch {
      findings.push({ level: 'fail', check: 'directory', detail: `${dir} is missing`, fix: `install -d -m 0755 ${dir}` });
    }
  }
}

async function checkCas(config: Config, findings: Finding[]): Promise<void> {
  const used = new Set(config.certificates.map((c) => c.ca));
  for (const name of used) {
    const ca = config.cas[name]!;
    const url = LETSENCRYPT[ca.directory] ?? ca.directory;
    const outcome = await fetchDirectory(url, ca.trustBundle);
    findings.push(outcome.ok
      ? { level: 'ok', check: `CA ${name}`, detail: `${url} answers` }
      : { level: 'fail', check: `CA ${name}`, detail: `${url}: ${outcome.error}`, fix: 'check DNS, the firewall and proxies for outbound HTTPS, and trustBundle for a private CA' });
  }
}
