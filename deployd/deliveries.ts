// The fleet side of a run, of the retry timer and of `certsepctl push`: which (certificate, host)
// pairs to work on, a few hosts at a time (delivery.concurrency), and the ssh connections to end
// afterwards (ControlMaster reuse lasts one run).
import type { CertificateConfig } from '../config/schema.ts';
import { RpcError } from '../proto/errors.ts';
import { DeploydErrorCode, type CertResult, type HostResult, type WireError } from './api.ts';
import { deliver, openSession, renewOnHost, type FleetDeps, type FleetRun } from './renew-on-hosts.ts';
import { closeConnections } from './ssh-session.ts';
import { inPool } from './pool.ts';

export async function renewFleetCertificates(deps: FleetDeps, run: FleetRun, certs: readonly CertificateConfig[]): Promise<Map<string, HostResult[]>> {
  const pairs = certs.flatMap((cert) => cert.hosts.map((host) => ({ cert, host })));
  const results = await withConnections(deps, pairs, ({ cert, host }) => renewOnHost(deps, run, cert, host));
  const byCert = new Map<string, HostResult[]>(certs.map((c) => [c.name, []]));
  pairs.forEach(({ cert }, i) => byCert.get(cert.name)!.push(results[i]!));
  return byCert;
}

/** Queued chains whose next attempt is due (the retry timer). */
export async function retryDueDeliveries(deps: FleetDeps, runId: string, now = new Date()): Promise<HostResult[]> {
  const pairs = deps.store.due(now).flatMap(([certName, host]) => {
    const cert = deps.config.certificates.find((c) => c.name === certName);
    return cert && cert.hosts.includes(host) ? [{ cert, host }] : [];
  });
  const results = await withConnections(deps, pairs, ({ cert, host }) => offerQueued(deps, runId, cert, host, 'queued'));
  return results.filter((r): r is HostResult => r !== null);
}

export interface PushResult {
  cert: string;
  host: string;
  outcome: 'delivered' | 'failed' | 'nothing';
  detail: string;
  error?: WireError;
}

/** certsepctl push: the queued chain, else the last delivered one, to each selected host; never an order. */
export async function pushToHosts(deps: FleetDeps, runId: string, hosts: string[] | undefined, certNames: string[] | undefined): Promise<PushResult[]> {
  for (const host of hosts ?? []) {
    if (!Object.hasOwn(deps.config.hosts, host)) throw new RpcError('E_UNKNOWN_HOST', `no host named ${JSON.stringify(host)} in the config (configured: ${Object.keys(deps.config.hosts).join(', ') || 'none'})`);
  }
  for (const name of certNames ?? []) {
    if (!deps.config.certificates.some((c) => c.name === name && c.hosts.length > 0)) throw new RpcError(DeploydErrorCode.UNKNOWN_CERT, `no certificate named ${JSON.stringify(name)} is delivered to hosts`);
  }
  const pairs = deps.config.certificates
    .filter((cert) => cert.hosts.length > 0 && (!certNames?.length || certNames.includes(cert.name)))
    .flatMap((cert) => cert.hosts.filter((h) => !hosts?.length || hosts.includes(h)).map((host) => ({ cert, host })));
  const results = await withConnections(deps, pairs, ({ cert, host }) => offerQueued(deps, runId, cert, host, 'either'));
  return results.map((r, i): PushResult => {
    const { cert, host } = pairs[i]!;
    if (r === null) return { cert: cert.name, host, outcome: 'nothing', detail: 'nothing was ever delivered to this host and nothing is queued: run certsepctl renew to order for it' };
    if (r.outcome === 'delivered') return { cert: cert.name, host, outcome: 'delivered', detail: r.detail };
    return { cert: cert.name, host, outcome: 'failed', detail: r.detail, ...(r.error ? { error: r.error } : {}) };
  });
}

/** Null when there is nothing to offer. */
async function offerQueued(deps: FleetDeps, runId: string, cert: CertificateConfig, host: string, which: 'queued' | 'either'): Promise<HostResult | null> {
  const record = deps.store.get(cert.name, host);
  const chains = record.pending?.chains ?? (which === 'either' ? record.delivered?.chains : undefined);
  if (!chains) return null;
  if (!record.pending) {
    // Re-delivering what the host once confirmed: queue it, so a failure is retried like any delivery.
    deps.store.update(cert.name, host, (r) => { r.pending = { chains, issuedAt: record.delivered!.at, attempts: 0, nextAttempt: new Date().toISOString(), gaveUp: false }; });
  }
  const session = openSession(deps, host);
  try {
    return await deliver(deps, session, { runId }, cert, host, chains, 'delivered');
  } finally {
    await session.close();
  }
}

async function withConnections<T extends { host: string }, R>(deps: FleetDeps, pairs: T[], work: (pair: T) => Promise<R>): Promise<R[]> {
  try {
    return await inPool(pairs, deps.config.delivery.concurrency, work);
  } finally {
    closeConnections(deps.config, new Set(pairs.map((p) => p.host)), deps.stateDir);
  }
}

/**
 * One line per certificate for the run's result: failed if any host failed or still waits for its
 * chain (exit 1), renewed if any host got a new chain, else what the hosts agree on.
 */
export function fleetCertResult(cert: CertificateConfig, hosts: HostResult[]): CertResult {
  const issued = hosts.flatMap((h) => h.issued);
  const detail = hosts.map((h) => `${h.host}: ${h.outcome}`).join('; ').slice(0, 1024) || 'no hosts';
  const troubled = hosts.filter((h) => h.outcome === 'failed' || h.outcome === 'pending');
  if (troubled.length > 0) {
    const first = troubled[0]!;
    const retries = troubled.flatMap((h) => (h.nextAttempt ? [h.nextAttempt] : [])).sort();
    return {
      cert: cert.name, outcome: 'failed', detail, issued, hosts,
      ...(first.failedStep ? { failedStep: first.failedStep } : {}),
      error: first.error ?? { code: 'E_DELIVERY', message: first.detail },
      ...(retries[0] ? { nextAttempt: retries[0] } : {}),
    };
  }
  const outcome = hosts.some((h) => h.outcome === 'renewed' || h.outcome === 'delivered') ? 'renewed'
    : hosts.some((h) => h.outcome === 'staged') ? 'staged'
    : hosts.some((h) => h.outcome === 'due') ? 'due' : 'not-due';
  return { cert: cert.name, outcome, detail, issued, hosts };
}
