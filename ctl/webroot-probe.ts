// doctor's http-01 check: does the web server really serve <webroot>/.well-known/acme-challenge/
// for each name? A probe file is written there as acmed would write the CA's token (as acmed's
// account, never as root: probe-file.ts), fetched over HTTP from the local address the name
// resolves to, with the name as Host, and always removed. Names that resolve elsewhere are served
// by another machine, which this one cannot write to.
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { lstatSync } from 'node:fs';
import { request } from 'node:http';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import { accountsOf, type Account } from '../supervisor/accounts.ts';
import type { Finding } from './finding.ts';
import { writeProbeAs, type ProbeFile } from './probe-file.ts';

export interface ProbeOptions {
  /** Where the web server listens; the CA always uses 80, tests use a free port. */
  httpPort: number;
}

const TIMEOUT_MS = 5_000;
const MAX_BODY = 4096;

export async function probeWebroots(config: Config, options: ProbeOptions): Promise<Finding[]> {
  const findings: Finding[] = [];
  let acmed: Account | undefined;
  for (const cert of config.certificates) {
    const challenge = cert.challenge;
    if (challenge?.type !== 'http-01-webroot') continue;
    try {
      acmed ??= accountsOf(config).acmed;
    } catch (e) {
      // checkUsers reports the unknown account with its fix; without it there is no one to probe as.
      const detail = `no account to probe as: ${(e as Error).message}`;
      return [...findings, { level: 'fail', check: `webroot ${cert.name}`, detail }];
    }
    for (const name of cert.domains) findings.push(await probeName(cert.name, name, challenge.webroot, acmed, options));
  }
  return findings;
}

async function probeName(
  certName: string, name: string, webroot: string, acmed: Account, options: ProbeOptions,
): Promise<Finding> {
  const check = `webroot ${certName} ${name}`;
  if (name.startsWith('*.')) return { level: 'ok', check, detail: 'skipped (a wildcard name cannot be validated over http-01)' };
  const address = await localAddressOf(name);
  if (!address) return { level: 'ok', check, detail: 'skipped (not served from this host)' };
  const dir = join(webroot, '.well-known', 'acme-challenge');
  if (!isDirectory(dir)) {
    return { level: 'fail', check, detail: `${dir} does not exist`, fix: `install -d -m 0755 ${dir}, writable by acmed's account (acmed writes the CA's tokens there)` };
  }
  const token = randomBytes(24).toString('base64url');
  const content = `certsep doctor probe ${randomBytes(16).toString('hex')}\n`;
  const path = join(dir, token);
  const url = `http://${name}/.well-known/acme-challenge/${token}`;
  const via = `${address.includes(':') ? `[${address}]` : address}:${options.httpPort}`;
  let probe: ProbeFile;
  try {
    probe = await writeProbeAs(acmed, path, content);
  } catch (e) {
    const detail = `acmed (uid ${acmed.uid}) cannot write the probe file ${path}: ${(e as Error).message}, ` +
      'so it could not write the CA\'s token either';
    const fix = `re-run install (it makes ${dir} acmed's), or chown ${acmed.uid} ${dir}; run certsepctl doctor as root`;
    return { level: 'fail', check, detail, fix };
  }
  try {
    const answer = await fetchOnce(address, options.httpPort, name, `/.well-known/acme-challenge/${token}`);
    if ('error' in answer) return { level: 'fail', check, detail: `GET ${url} via ${via}: ${answer.error}`, fix: locationFix(webroot) };
    if (answer.status >= 300 && answer.status < 400 && answer.location) {
      // The CA follows redirects (to port 80 or 443 of any name); doctor does not, so it cannot vouch.
      return { level: 'warn', check, detail: `GET ${url} via ${via}: HTTP ${answer.status} redirect to ${answer.location}; the CA follows it, doctor does not check there`, fix: locationFix(webroot) };
    }
    if (answer.status !== 200) return { level: 'fail', check, detail: `GET ${url} via ${via}: HTTP ${answer.status} instead of the probe file`, fix: locationFix(webroot) };
    if (answer.body !== content) {
      return { level: 'fail', check, detail: `GET ${url} via ${via}: HTTP 200 but not the probe file (${answer.body.length} bytes: ${JSON.stringify(answer.body.slice(0, 60))}), so the server does not serve ${webroot}`, fix: locationFix(webroot) };
    }
    return { level: 'ok', check, detail: `${url} via ${via} serves ${dir}` };
  } finally {
    await probe.remove();
  }
}

function locationFix(webroot: string): string {
  return `serve the webroot on port 80 for this name; in nginx, inside its "server { listen 80; server_name …; }" block: ` +
    `location ^~ /.well-known/acme-challenge/ { root ${webroot}; default_type text/plain; } — then nginx -t && systemctl reload nginx`;
}

/** The first address of the name that belongs to this host, or undefined. */
async function localAddressOf(name: string): Promise<string | undefined> {
  let addresses: { address: string }[];
  try {
    addresses = await withTimeout(lookup(name, { all: true }), TIMEOUT_MS);
  } catch {
    return undefined;
  }
  const own = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
  return addresses.map((a) => a.address).find((a) => isLoopback(a) || own.has(a));
}

function isLoopback(address: string): boolean {
  return (isIP(address) === 4 && address.startsWith('127.')) || address === '::1';
}

function fetchOnce(address: string, port: number, name: string, path: string): Promise<{ status: number; body: string; location?: string } | { error: string }> {
  return new Promise((resolve) => {
    // Host is the bare name, as the CA sends it (RFC 8555 section 8.3: always port 80).
    const req = request({ host: address, port, path, headers: { Host: name }, agent: false, timeout: TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { if (body.length < MAX_BODY) body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers.location ? { location: res.headers.location } : {}) }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code === 'ECONNREFUSED' ? 'connection refused (nothing listens there)' : e.message }));
    req.end();
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function isDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}
