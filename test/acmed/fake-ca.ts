// A small HTTPS server speaking just enough ACME for what Debian's Pebble cannot show: ARI (RFC
// 9773: a `renewalInfo` directory entry and GET <renewalInfo>/<certID>), what acmed puts in
// newOrder (profile, replaces), a rate limit (429 with a problem document and Retry-After), a
// transient 503 — and a hostile CA, which no real CA software can be made to be: authorizations
// for identifiers the order never asked for, endless answers, redirects to other servers, absurd
// renewal windows. A test replaces any route with its own (`routes`). It checks no signatures: it
// is a test double for those failures and fields only (Pebble is used for everything a real CA does).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { makeLocalTls } from '../harness/certs.ts';

export interface FakeCa {
  directoryUrl: string;
  /** https://127.0.0.1:<port>, what every URL of this CA starts with. */
  base: string;
  caBundlePath: string;
  /** certIDs asked for at <renewalInfo>/<certID>, in order (a retried request appears twice). */
  renewalInfoRequests: string[];
  /** Decoded JWS payloads POSTed to newOrder. */
  newOrders: Record<string, unknown>[];
  /** Every request's method and path, in order. */
  requests: string[];
  stop(): Promise<void>;
}

export interface RouteContext {
  base: string;
  /** The decoded JWS payload of a POST (an empty object for POST-as-GET). */
  payload(): Promise<Record<string, unknown>>;
}

/** Answers one request; a route whose path ends in "/" answers every path under it. */
export type Route = (req: IncomingMessage, res: ServerResponse, ctx: RouteContext) => void | Promise<void>;

const DAY_MS = 86_400_000;
/** Inside the validity of the 30-day leaf ari-leaf.ts makes now: acmed cuts a window to the leaf's validity. */
export const SUGGESTED_WINDOW = {
  start: new Date(Date.now() + 10 * DAY_MS).toISOString(),
  end: new Date(Date.now() + 11 * DAY_MS).toISOString(),
};
export const EXPLANATION_URL = 'https://ca.example/ari-explained';

type Headers = Record<string, string>;

export function problem(res: ServerResponse, status: number, type: string, detail: string, headers: Headers = {}) {
  res.writeHead(status, { 'content-type': 'application/problem+json', 'replay-nonce': nonce(), ...headers });
  res.end(JSON.stringify({ type: `urn:ietf:params:acme:error:${type}`, detail, status }));
}

/** An ACME resource as JSON, with the fresh nonce every answer to a POST carries. */
export function resource(res: ServerResponse, status: number, body: unknown, headers: Headers = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'replay-nonce': nonce(), ...headers });
  res.end(JSON.stringify(body));
}

let nonces = 0;
function nonce(): string {
  return `nonce-${++nonces}`;
}

async function payloadOf(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const jws = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { payload?: string };
  return jws.payload ? JSON.parse(Buffer.from(jws.payload, 'base64url').toString()) as Record<string, unknown> : {};
}

function defaultRoutes(renewalInfoRequests: string[], newOrders: Record<string, unknown>[]): Record<string, Route> {
  return {
    '/dir': (_req, res, { base }) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const url = (path: string) => `${base}/${path}`;
      const directory = { newNonce: url('nonce'), newAccount: url('account'), newOrder: url('order'), renewalInfo: url('ari') };
      res.end(JSON.stringify(directory));
    },
    '/nonce': (_req, res) => void res.writeHead(200, { 'replay-nonce': nonce() }).end(),
    '/account': async (_req, res, { base, payload }) => {
      await payload();
      resource(res, 201, { status: 'valid' }, { location: `${base}/account/1` });
    },
    '/order': async (_req, res, { payload }) => {
      newOrders.push(await payload());
      problem(res, 429, 'rateLimited', 'too many new orders for this account', { 'retry-after': '3600' });
    },
    '/ari/': (req, res) => {
      renewalInfoRequests.push((req.url ?? '').slice('/ari/'.length));
      // The first request meets a busy CA: acmed must come back after Retry-After, once.
      if (renewalInfoRequests.length === 1) return problem(res, 503, 'serverInternal', 'busy', { 'retry-after': '1' });
      res.writeHead(200, { 'content-type': 'application/json', 'retry-after': '120' });
      res.end(JSON.stringify({ suggestedWindow: SUGGESTED_WINDOW, explanationURL: EXPLANATION_URL }));
    },
  };
}

function routeFor(routes: Record<string, Route>, url: string): Route | undefined {
  if (Object.hasOwn(routes, url)) return routes[url];
  const prefixes = Object.keys(routes).filter((p) => p.endsWith('/') && url.startsWith(p));
  const prefix = prefixes.sort((a, b) => b.length - a.length)[0];
  return prefix === undefined ? undefined : routes[prefix];
}

export async function startFakeCa(dir: string, options: { routes?: Record<string, Route> } = {}): Promise<FakeCa> {
  const tls = await makeLocalTls(dir, 'certsep test fake CA');
  const renewalInfoRequests: string[] = [];
  const newOrders: Record<string, unknown>[] = [];
  const requests: string[] = [];
  const routes = { ...defaultRoutes(renewalInfoRequests, newOrders), ...options.routes };
  let base = '';
  const server = createServer({ cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) }, (req, res) => {
    const url = req.url ?? '';
    requests.push(`${req.method} ${url}`);
    const notHere: Route = (_q, r) => problem(r, 404, 'malformed', `no ${url} here`);
    const route = routeFor(routes, url) ?? notHere;
    void Promise.resolve(route(req, res, { base, payload: () => payloadOf(req) }))
      .catch((e: unknown) => res.destroy(e as Error));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    directoryUrl: `${base}/dir`,
    base,
    caBundlePath: tls.caPath,
    renewalInfoRequests,
    newOrders,
    requests,
    stop: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
