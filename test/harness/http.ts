// Minimal HTTP(S) requests for tests, trusting only the CA given (never the system store, never
// rejectUnauthorized: false), so a test proves the peer's certificate really chains to it.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface TextResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface TextRequest {
  method?: string;
  body?: string;
  ca?: string | Buffer;
  servername?: string;
  timeoutMs?: number;
}

export function requestText(url: string, opts: TextRequest = {}): Promise<TextResponse> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, {
      method: opts.method ?? 'GET',
      ca: opts.ca,
      servername: opts.servername,
      timeout: opts.timeoutMs ?? 10_000,
      agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
