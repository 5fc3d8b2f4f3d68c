// A small HTTPS server speaking just enough ACME for what Debian's Pebble 2.4 cannot show:
// ARI (RFC 9773: a `renewalInfo` directory entry and GET <renewalInfo>/<certID>), what acmed puts
// in newOrder (profile, replaces), a rate limit (429 with a problem document and Retry-After) and
// a transient 503. It checks no signatures: it is a test double for those failures and fields
// only (Pebble is used for everything a real CA does).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { makeLocalTls } from '../harness/certs.ts';

export interface FakeCa {
  directoryUrl: string;
  caBundlePath: string;
  /** certIDs asked for at <renewalInfo>/<certID>, in order (a retried request appears twice). */
  renewalInfoRequests: string[];
  /** Decoded JWS payloads POSTed to newOrder. */
  newOrders: Record<string, unknown>[];
  stop(): Promise<void>;
}

export const SUGGESTED_WINDOW = { start: '2031-01-02T00:00:00Z', end: '2031-01-03T00:00:00Z' };
export const EXPLANATION_URL = 'https://ca.example/ari-explained';

function problem(res: ServerResponse, status: number, type: string, detail: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/problem+json', 'replay-nonce': nonce(), ...headers });
  res.end(JSON.stringify({ type: `urn:ietf:params:acme:error:${type}`, detail, status }));
}

let nonces = 0;
function nonce(): string {
  return `nonce-${++nonces}`;
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const jws = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { payload?: string };
  return jws.payload ? JSON.parse(Buffer.from(jws.payload, 'base64url').toString()) as Record<string, unknown> : {};
}

export async function startFakeCa(dir: string): Promise<FakeCa> {
  const tls = await makeLocalTls(dir, 'certsep test fake CA');
  const renewalInfoRequests: string[] = [];
  const newOrders: Record<string, unknown>[] = [];
  let base = '';
  const server = createServer({ cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) }, (req, res) => {
    void (async () => {
      const url = req.url ?? '';
      if (url === '/dir') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ newNonce: `${base}/nonce`, newAccount: `${base}/account`, newOrder: `${base}/order`, renewalInfo: `${base}/ari` }));
      } else if (url === '/nonce') {
        res.writeHead(200, { 'replay-nonce': nonce() }).end();
      } else if (url === '/account') {
        await body(req);
        res.writeHead(201, { 'content-type': 'application/json', location: `${base}/account/1`, 'replay-nonce': nonce() });
        res.end(JSON.stringify({ status: 'valid' }));
      } else if (url === '/order') {
        newOrders.push(await body(req));
        problem(res, 429, 'rateLimited', 'too many new orders for this account', { 'retry-after': '3600' });
      } else if (url.startsWith('/ari/')) {
        renewalInfoRequests.push(url.slice('/ari/'.length));
        // The first request meets a busy CA: acmed must come back after Retry-After, once.
        if (renewalInfoRequests.length === 1) return problem(res, 503, 'serverInternal', 'busy', { 'retry-after': '1' });
        res.writeHead(200, { 'content-type': 'application/json', 'retry-after': '120' });
        res.end(JSON.stringify({ suggestedWindow: SUGGESTED_WINDOW, explanationURL: EXPLANATION_URL }));
      } else {
        problem(res, 404, 'malformed', `no ${url} here`);
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    directoryUrl: `${base}/dir`,
    caBundlePath: tls.caPath,
    renewalInfoRequests,
    newOrders,
    stop: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
