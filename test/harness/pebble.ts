// A real ACME server for tests: Debian's Pebble 2.4 plus pebble-challtestsrv as its DNS.
// challtestsrv answers every A query with 127.0.0.1 and no AAAA, so Pebble validates http-01 for
// any name at 127.0.0.1:httpPort; dns-01 TXT records are set through its management API.
// Everything listens on 127.0.0.1 on free ports, so several instances can run at once.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { makeLocalTls } from './certs.ts';
import { requestText } from './http.ts';
import { freePort, freePorts } from './ports.ts';
import { killTree, startDaemon, waitFor, waitForExit, waitForPort } from './proc.ts';
import { makeTempDir, removeTempDir } from './tmp.ts';

export interface PebbleOptions {
  eabRequired?: boolean;
  // kid -> base64url HMAC key
  eabKeys?: Record<string, string>;
  // "host:port" Pebble resolves through instead of challtestsrv (a real DNS server, for dns-01 tests).
  dnsServer?: string;
  // Extra chains per certificate, each ending in a root of its own (PEBBLE_ALTERNATE_ROOTS).
  alternateRoots?: number;
  // Lifetime of issued certificates (default 90, as Let's Encrypt's).
  validityDays?: number;
}

export interface Pebble {
  directoryUrl: string;
  managementUrl: string;
  // The CA of Pebble's own HTTPS listeners (ACME and management), not of issued certificates.
  caBundlePath: string;
  // Where Pebble connects to validate http-01 (on 127.0.0.1, per challtestsrv's answers).
  httpPort: number;
  // Where Pebble connects to validate tls-alpn-01.
  tlsPort: number;
  dnsPort: number;
  challtestsrvUrl: string;
  dir: string;
  /**
   * Every root Pebble issues under (/roots/0 and the alternate roots), as one PEM file: what an
   * admin puts in the CA's `roots:` so privd installs Pebble's chains.
   */
  rootsPath: string;
  /** This Pebble as a CA under the config's `cas:`: its directory, its HTTPS CA and its roots. */
  caConfig(): { directory: string; trustBundle: string; roots: string };
  fetchRoot(): Promise<string>;
  setTxt(host: string, value: string): Promise<void>;
  clearTxt(host: string): Promise<void>;
  stop(): Promise<void>;
}

// Names honoured by Debian's pebble 2.4.0 (checked in the binary and its README):
// no artificial validation delay, never reject a good nonce, and reuse an account's valid
// authorization as rarely as Pebble allows. Not never: Pebble keeps a valid authorization when
// `rand.Intn(100) > PEBBLE_AUTHZREUSE` is false (wfe.go, 2.4 and 2.10 alike), so with 0 it still
// reuses one 1 time in 100. Only another account is sure to get a fresh authorization (reuse is
// looked up per account), which is how a test that must see a challenge answered gets one.
const PEBBLE_ENV = { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' };
const DEFAULT_VALIDITY_DAYS = 90;
const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 15_000;

function withTrailingDot(host: string): string {
  return host.endsWith('.') ? host : `${host}.`;
}

function startFailedForPort(logPath: string): boolean {
  return /address already in use/i.test(readFileSync(logPath, 'utf8'));
}

interface Started {
  child: ChildProcess;
  logPath: string;
}

async function startChalltestsrv(dir: string, dnsPort: number, mgmtPort: number): Promise<Started> {
  const logPath = join(dir, 'challtestsrv.log');
  const child = startDaemon('pebble-challtestsrv', [
    '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
    '-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${mgmtPort}`,
    // Its own challenge responders stay off: tests answer challenges with the code under test.
    '-http01', '', '-https01', '', '-tlsalpn01', '',
  ], { logPath });
  await waitForStart(child, logPath, () => waitForPort(mgmtPort, '127.0.0.1', START_TIMEOUT_MS));
  return { child, logPath };
}

async function waitForStart(child: ChildProcess, logPath: string, ready: () => Promise<unknown>): Promise<void> {
  let onExit: (code: number | null) => void = () => undefined;
  const exited = new Promise<never>((_, reject) => {
    onExit = (code) => reject(new Error(`exited with ${code} during startup:\n${readFileSync(logPath, 'utf8')}`));
    child.once('exit', onExit);
  });
  try {
    await Promise.race([ready(), exited]);
  } catch (e) {
    await killTree(child.pid!, 'SIGKILL');
    throw e;
  } finally {
    child.off('exit', onExit);
  }
}

function writePebbleConfig(dir: string, tls: { certPath: string; keyPath: string }, ports: number[], opts: PebbleOptions): string {
  const [acmePort, mgmtPort, httpPort, tlsPort] = ports;
  const configPath = join(dir, 'pebble-config.json');
  writeFileSync(configPath, JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: tls.certPath,
      privateKey: tls.keyPath,
      httpPort,
      tlsPort,
      ocspResponderURL: '',
      // Pebble 2.4 issues for 5 years by default, which privd refuses (the CA/Browser Forum
      // maximum is 200 days); 90 days is what Let's Encrypt issues.
      certificateValidityPeriod: (opts.validityDays ?? DEFAULT_VALIDITY_DAYS) * 86_400,
      externalAccountBindingRequired: opts.eabRequired ?? false,
      externalAccountMACKeys: opts.eabKeys ?? {},
    },
  }, null, 2));
  return configPath;
}

async function startPebbleOnce(dir: string, caBundlePath: string, tls: { certPath: string; keyPath: string }, opts: PebbleOptions): Promise<Pebble> {
  const dnsPort = await freePort({ udp: true });
  const [challMgmtPort, acmePort, mgmtPort, httpPort, tlsPort] = await freePorts(5) as [number, number, number, number, number];
  const chall = await startChalltestsrv(dir, dnsPort, challMgmtPort);
  const configPath = writePebbleConfig(dir, tls, [acmePort, mgmtPort, httpPort, tlsPort], opts);
  const logPath = join(dir, 'pebble.log');
  const pebble = startDaemon('pebble', ['-config', configPath, '-dnsserver', opts.dnsServer ?? `127.0.0.1:${dnsPort}`], {
    logPath,
    env: { ...process.env, ...PEBBLE_ENV, PEBBLE_ALTERNATE_ROOTS: String(opts.alternateRoots ?? 0) },
  });
  const directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
  const managementUrl = `https://127.0.0.1:${mgmtPort}`;
  const challtestsrvUrl = `http://127.0.0.1:${challMgmtPort}`;
  const ca = readFileSync(caBundlePath);
  const fetchRootNumber = async (n: number) => {
    const res = await requestText(`${managementUrl}/roots/${n}`, { ca });
    if (res.status !== 200) throw new Error(`Pebble /roots/${n} answered ${res.status}`);
    return res.body;
  };
  const rootsPath = join(dir, 'roots.pem');
  try {
    await waitForStart(pebble, logPath, () => waitFor(
      async () => (await requestText(directoryUrl, { ca, timeoutMs: 2_000 })).status === 200,
      START_TIMEOUT_MS, `Pebble's directory at ${directoryUrl}`, 100));
    const rootNumbers = Array.from({ length: 1 + (opts.alternateRoots ?? 0) }, (_, n) => n);
    const roots = await Promise.all(rootNumbers.map(fetchRootNumber));
    writeFileSync(rootsPath, roots.map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)).join(''), { mode: 0o644 });
  } catch (e) {
    await killTree(pebble.pid!, 'SIGKILL');
    await killTree(chall.child.pid!, 'SIGKILL');
    throw e;
  }

  async function challtestsrvPost(path: string, body: object): Promise<void> {
    const res = await requestText(`${challtestsrvUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (res.status !== 200) throw new Error(`challtestsrv ${path} answered ${res.status}: ${res.body}`);
  }

  return {
    directoryUrl,
    managementUrl,
    caBundlePath,
    httpPort,
    tlsPort,
    dnsPort,
    challtestsrvUrl,
    dir,
    rootsPath,
    caConfig: () => ({ directory: directoryUrl, trustBundle: caBundlePath, roots: rootsPath }),
    fetchRoot: () => fetchRootNumber(0),
    setTxt: (host, value) => challtestsrvPost('/set-txt', { host: withTrailingDot(host), value }),
    clearTxt: (host) => challtestsrvPost('/clear-txt', { host: withTrailingDot(host) }),
    async stop() {
      await Promise.all([pebble, chall.child].map(async (child) => {
        await killTree(child.pid!, 'SIGTERM');
        await waitForExit(child);
      }));
    },
  };
}

export async function startPebble(opts: PebbleOptions = {}): Promise<Pebble> {
  const dir = makeTempDir('pebble');
  try {
    const tls = await makeLocalTls(dir, 'certsep test Pebble HTTPS CA');
    for (let attempt = 1; ; attempt++) {
      try {
        const pebble = await startPebbleOnce(dir, tls.caPath, tls, opts);
        return { ...pebble, stop: async () => { await pebble.stop(); removeTempDir(dir); } };
      } catch (e) {
        // A port picked by freePort() can be taken by a concurrent test before Pebble binds it.
        const portRace = ['pebble.log', 'challtestsrv.log'].some((f) => {
          try { return startFailedForPort(join(dir, f)); } catch { return false; }
        });
        if (!portRace || attempt >= START_ATTEMPTS) throw e;
        for (const f of ['pebble.log', 'challtestsrv.log']) writeFileSync(join(dir, f), '');
      }
    }
  } catch (e) {
    removeTempDir(dir);
    throw e;
  }
}
