// The whole suite for deployd's end-to-end tests: a real Pebble, a real nginx serving three TLS
// sites from certsep's target directories (and the http-01 webroot on the port Pebble validates),
// and every daemon started by certsep-supervisor under its own test uid. certsepctl runs as root,
// as an admin would run it.
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { makeLocalTls } from '../harness/certs.ts';
import { startNginx, type Nginx } from '../harness/nginx.ts';
import { startPebble, type Pebble, type PebbleOptions } from '../harness/pebble.ts';
import { freePorts } from '../harness/ports.ts';
import { runCommand, waitFor, type CommandResult } from '../harness/proc.ts';
import { canConnectUnix, REPO, writeTestConfig } from '../harness/suite.ts';
import { spawnSupervisor } from '../harness/supervisor.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';
import { TEST_IDS } from '../harness/uids.ts';
import type { DaemonName } from '../../proto/api.ts';

export const SITES = {
  ec: { domains: ['ec.example.com'], keyTypes: ['ec-p256'] },
  rsa: { domains: ['rsa.example.com'], keyTypes: ['rsa-2048'] },
  san: { domains: ['san.example.com', 'www.san.example.com', 'api.san.example.com', 'mail.san.example.com', 'static.san.example.com'], keyTypes: ['ec-p256'] },
} as const;
export type Site = keyof typeof SITES;

const DAEMONS: DaemonName[] = ['privd', 'keyd', 'acmed', 'netd', 'deployd'];

export interface CertsepUnderTest {
  dir: string;
  pebble: Pebble;
  nginx: Nginx;
  configPath: string;
  /** Appended to by the "marker" service's reload (a service only the rsa site uses). */
  markerFile: string;
  ctl(args: string[]): Promise<CommandResult>;
  servedSerial(site: Site): Promise<string>;
  /**
   * The serial served once it differs from `old`: `nginx -s reload` (like systemd's reload of
   * nginx) returns when the signal is sent, and the new workers take over moments later.
   */
  servedSerialOtherThan(site: Site, old: string): Promise<string>;
  pidOf(daemon: DaemonName): number;
  /** Sends a signal to certsep-supervisor itself (SIGHUP: it passes it on to every daemon). */
  signalSupervisor(signal: NodeJS.Signals): void;
  journal(): { certs: Record<string, { inFlight?: { keyTypes: Record<string, { step: string }> }; renewals: number }> };
  waitForDaemons(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * slowCheckSeconds: nginx's check sleeps first, so a test can kill a daemon inside it.
 * testHooks: daemons run with CERTSEP_TEST_HOOKS=1 (deployd's crash points, deployd/crash-hook.ts).
 * exposure: netd exposure config given to one site (named after it); netd then really applies
 * it, so the caller must already run inside a network namespace of its own.
 * sites: only these local sites (default all three). fleet: remote hosts, their certificates
 * (appended to the local ones) and the delivery settings, for test/fleet. listener: the sites
 * answer http-01 through acmed's own listener on Pebble's validation port, instead of nginx's
 * webroot (nginx then leaves that port alone). pebble: its options.
 */
export async function startCertsep(options: {
  pebble?: PebbleOptions;
  slowCheckSeconds?: number;
  testHooks?: boolean;
  exposure?: { site: Site; config: Record<string, unknown> };
  sites?: Site[];
  fleet?: (peers: { pebble: Pebble; webroot: string }) => { hosts: Record<string, unknown>; certificates: unknown[]; delivery?: Record<string, unknown> };
  listener?: boolean;
} = {}): Promise<CertsepUnderTest> {
  const dir = makeTempDir('deployd-e2e');
  const pebble = await startPebble(options.pebble);
  const webroot = join(dir, 'webroot');
  mkdirSync(join(webroot, '.well-known', 'acme-challenge'), { recursive: true, mode: 0o755 });
  chownSync(join(webroot, '.well-known', 'acme-challenge'), TEST_IDS.acmed.uid, TEST_IDS.acmed.gid);

  // Each site starts with a self-signed placeholder, so nginx can start and "the old certificate"
  // exists before certsep's first run.
  const placeholder = await makeLocalTls(makeTempDirIn(dir, 'placeholder'), 'placeholder');
  const ports = await freePorts(3);
  const sites = options.sites ?? (Object.keys(SITES) as Site[]);
  const fleet = options.fleet?.({ pebble, webroot });
  const targetOf = (site: Site) => join(dir, 'targets', site);
  for (const site of sites) {
    mkdirSync(targetOf(site), { recursive: true, mode: 0o755 });
    copyFileSync(placeholder.certPath, join(targetOf(site), 'fullchain.pem'));
    copyFileSync(placeholder.keyPath, join(targetOf(site), 'privkey.pem'));
    chmodSync(join(targetOf(site), 'privkey.pem'), 0o600);
  }
  const nginx = await startNginx({
    servers: [
      ...(options.listener ? [] : [{ listen: pebble.httpPort, webroot }]),
      ...sites.map((site, i) => ({ listen: ports[i]!, tls: { certPath: join(targetOf(site), 'fullchain.pem'), keyPath: join(targetOf(site), 'privkey.pem') } })),
    ],
  });
  const markerFile = join(dir, 'marker-reloads');
  const nginxArgs = ['-p', nginx.prefix, '-c', nginx.confPath, '-e', nginx.errorLogPath];
  const slow = options.slowCheckSeconds ?? 0;
  const configPath = writeTestConfig(dir, {
    cas: { default: { ...pebble.caConfig(), email: 'ops@example.com' } },
    renewal: { concurrency: 4, metricsFile: join(dir, 'state', 'deployd', 'certsep.prom') },
    services: {
      nginx: {
        // The sleep widens the check step so a test can kill a daemon inside it.
        check: [slow > 0 ? ['/bin/sh', '-c', `sleep ${slow}; exec nginx -t -q "$@"`, 'check', ...nginxArgs] : ['nginx', '-t', '-q', ...nginxArgs]],
        reload: { command: ['nginx', '-s', 'reload', ...nginxArgs] },
      },
      marker: { reload: { command: ['/bin/sh', '-c', `echo reload >> ${markerFile}`] } },
    },
    ...(options.exposure ? { exposures: { [options.exposure.site]: options.exposure.config } } : {}),
    ...(fleet ? { hosts: fleet.hosts, ...(fleet.delivery ? { delivery: fleet.delivery } : {}) } : {}),
    certificates: [...sites.map((site) => ({
      name: site,
      domains: SITES[site].domains,
      keyTypes: SITES[site].keyTypes,
      challenge: options.listener
        ? { type: 'http-01-listener', address: '127.0.0.1', port: pebble.httpPort }
        : { type: 'http-01-webroot', webroot },
      ...(options.exposure?.site === site ? { exposure: site } : {}),
      targets: [{ dir: targetOf(site), mode: '0600', files: ['fullchain', 'privkey'], services: site === 'rsa' ? ['nginx', 'marker'] : ['nginx'] }],
    })), ...(fleet?.certificates ?? [])],
  });
  const root = await pebble.fetchRoot();

  const supervisor = spawnSupervisor(dir, configPath, options.testHooks ? { ...process.env, CERTSEP_TEST_HOOKS: '1' } : process.env);
  const ctlBundle = join(REPO, 'dist', 'certsepctl.mjs');
  const socket = (daemon: DaemonName) => join(dir, 'run', `${daemon}.sock`);
  const pidOf = (daemon: DaemonName) => Number(readFileSync(join(dir, 'run', `${daemon}.pid`), 'utf8'));
  const env = { ...process.env, CERTSEP_LOG_LEVEL: 'warn' };

  const under: CertsepUnderTest = {
    dir,
    pebble,
    nginx,
    configPath,
    markerFile,
    ctl: (args) => runCommand(process.execPath, [ctlBundle, '--config', configPath, ...args], { env, timeoutMs: 120_000 }),
    servedSerial: (site) => servedSerial(ports[sites.indexOf(site)]!, SITES[site].domains[0], root),
    servedSerialOtherThan: (site, old) => waitFor(async () => {
      const serial = await under.servedSerial(site);
      return serial !== old ? serial : undefined;
    }, 10_000, `nginx to serve a new certificate for ${site}`),
    pidOf,
    signalSupervisor: (signal) => void supervisor.child.kill(signal),
    journal: () => {
      const path = join(dir, 'state', 'deployd', 'journal.json');
      return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : { certs: {} };
    },
    waitForDaemons: async () => {
      await waitFor(async () => (await Promise.all(DAEMONS.map((d) => canConnectUnix(socket(d))))).every(Boolean), 20_000, 'every daemon listening');
    },
    async stop() {
      await supervisor.stop();
      await nginx.stop();
      await pebble.stop();
      removeTempDir(dir);
    },
  };
  try {
    await supervisor.ready;
  } catch (e) {
    await under.stop();
    throw e;
  }
  return under;
}

function makeTempDirIn(parent: string, name: string): string {
  const path = join(parent, name);
  mkdirSync(path, { mode: 0o755 });
  return path;
}

/**
 * The serial nginx serves for a name, if its chain verifies against Pebble's root; otherwise
 * "untrusted:<serial>" (the self-signed placeholder before the first run).
 */
export function servedSerial(port: number, servername: string, rootPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // Not rejecting lets the placeholder be reported too; `authorized` says whether the chain verified.
    const socket = connect({ host: '127.0.0.1', port, servername, ca: rootPem, rejectUnauthorized: false }, () => {
      const serial = (socket.getPeerX509Certificate()?.serialNumber ?? '?').replace(/^0+/, '');
      const trusted = socket.authorized;
      socket.destroy();
      resolve(trusted ? serial : `untrusted:${serial}`);
    });
    socket.once('error', reject);
  });
}
