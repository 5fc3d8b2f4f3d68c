// Is something there: a daemon's socket, a CA's ACME directory. For doctor; short timeouts.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { rootCertificates } from 'node:tls';

export function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** GETs an ACME directory and checks it names newOrder (RFC 8555 section 7.1.1). */
export function fetchDirectory(url: string, trustBundle?: string): Promise<{ ok: true } | { ok: false; error: string }> {
  let ca: string[] | undefined;
  try {
    ca = trustBundle ? [...rootCertificates, readFileSync(trustBundle, 'utf8')] : undefined;
  } catch (e) {
    return Promise.resolve({ ok: false, error: `cannot read trustBundle ${trustBundle}: ${(e as Error).message}` });
  }
  return new Promise((resolve) => {
    const req = request(url, { ca, timeout: 10_000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { if (body.length < 65536) body += chunk; });
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve({ ok: false, error: `HTTP ${res.statusCode}` });
        try {
          resolve('newOrder' in JSON.parse(body) ? { ok: true } : { ok: false, error: 'not an ACME directory (no newOrder)' });
        } catch {
          resolve({ ok: false, error: 'not an ACME directory (not JSON)' });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (e) => resolve({ ok: false, error: e.message }));
    req.end();
  });
}
