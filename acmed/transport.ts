// How acmed's HTTPS requests to CAs behave. acme-client sends everything through one axios
// instance (`acme.axios`); we set, once, for every request it makes:
//  - trust: a CA configured with a trustBundle is reached with the system roots plus that bundle,
//    chosen by the request's origin (so one CA's private root never vouches for another CA);
//  - problem documents: any answer with an RFC 7807/8555 problem becomes an AcmeProblem carrying
//    its type and Retry-After, so errors keep their meaning (acme-client would flatten them to text).
//    badNonce is passed through: acme-client retries it with the fresh nonce (RFC 8555 section 6.5);
//  - retries: acme-client's own retry loop sleeps for whatever Retry-After a CA sends (hours, under a
//    rate limit) and blocks the order; we remove it, never retry a 429 (the caller reschedules with
//    E_RATE_LIMITED), and retry connection failures and 5xx a few times with jittered backoff;
//  - a hostile CA: acmed talks only to the origins of the configured CA directories, whatever URL a
//    CA hands out (an order's authorization, a certificate link: a signed POST would carry acmed's
//    JWS elsewhere); follows a redirect only within the origin it was sent to (axios follows any,
//    by default); and reads at most MAX_RESPONSE_BYTES of an answer, counted after decompression.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import acme from 'acme-client';
import type { AxiosError, AxiosResponse, InternalAxiosRequestConfig } from 'axios';
import type { Config } from '../config/schema.ts';
import { RpcError } from '../proto/errors.ts';
import { AcmedError, AcmeProblem, type Problem } from './errors.ts';
import { jitteredDelayMs } from './backoff.ts';
import { directoryUrlOf } from './directories.ts';

const REQUEST_TIMEOUT_MS = 30_000;
const TRANSIENT_ATTEMPTS = 3;
/** A 503's Retry-After is honoured up to this; longer means the CA is down, not busy. */
const MAX_HONOURED_RETRY_AFTER_S = 60;
/** The most acmed reads of one answer: a chain is a few KiB, and order.issue returns at most 256 KiB of it. */
export const MAX_RESPONSE_BYTES = 256 * 1024;
/** The most acmed sends: a finalize with an RSA-4096 CSR is under 10 KiB. */
const MAX_REQUEST_BYTES = 256 * 1024;
/** Redirects within a CA's origin (a moved resource); RFC 8555 itself needs none. */
const MAX_REDIRECTS = 3;

/** Where acmed may connect: the configured CAs' origins, and the agents of those with a trustBundle. */
export interface CaReach {
  origins: ReadonlySet<string>;
  agents: ReadonlyMap<string, Agent>;
}

let reach: CaReach = { origins: new Set(), agents: new Map() };
let installed = false;

/**
 * The origins of each configured CA's directories, real and staging, are the only ones acmed
 * talks to; a CA with a trustBundle is reached with its bundle (plus the system roots). Throws
 * when a bundle cannot be read; nothing changes then.
 */
export function caReachFor(config: Config): CaReach {
  const origins = new Set<string>();
  const agents = new Map<string, Agent>();
  for (const [name, ca] of Object.entries(config.cas)) {
    let agent: Agent | undefined;
    if (ca.trustBundle !== undefined) {
      let bundle: string;
      try {
        bundle = readFileSync(ca.trustBundle, 'utf8');
      } catch (e) {
        const reason = (e as NodeJS.ErrnoException).code ?? String(e);
        throw new Error(`cas.${name}.trustBundle: cannot read ${ca.trustBundle}: ${reason}`);
      }
      // One secure context, built once: parsing ~150 roots for every new connection costs more than a request.
      agent = new Agent({ secureContext: createSecureContext({ ca: [...rootCertificates, bundle] }), keepAlive: true });
    }
    for (const staging of [false, true]) {
      let origin: string;
      try {
        origin = new URL(directoryUrlOf(name, ca, staging)).origin;
      } catch {
        continue; // No staging directory for this CA: nothing to reach.
      }
      origins.add(origin);
      if (agent) agents.set(origin, agent);
    }
  }
  return { origins, agents };
}

/**
 * Requests go by this from now on. The whole set is replaced: a CA or bundle removed from the
 * config is reached and trusted no more. acmed switches configs only with no order in flight, so
 * the old agents' idle connections can go.
 */
export function useCaReach(next: CaReach): void {
  const previous = reach;
  reach = next;
  for (const agent of new Set(previous.agents.values())) agent.destroy();
}

function originOf(url: string | undefined): string | null {
  try {
    return url === undefined ? null : new URL(url).origin;
  } catch {
    return null;
  }
}

/** axios' beforeRedirect (follow-redirects): throwing stops the redirect and fails the request. */
function refuseRedirectOffOrigin(options: Record<string, unknown>, _: unknown, request?: { url?: string }): void {
  const from = originOf(request?.url);
  const to = originOf(typeof options['href'] === 'string' ? options['href'] : undefined);
  if (from === null || to !== from) {
    const what = `${request?.url ?? 'a request'} to ${to ?? 'an unreadable URL'}`;
    throw new RpcError(AcmedError.CA,
      `the CA redirected ${what}; acmed follows a redirect only within the CA's origin`);
  }
}

/** An answer acmed would not read or follow: never retried, the CA would only send it again. */
function refusedAnswer(error: AxiosError): RpcError | null {
  let cause: unknown = error;
  for (let depth = 0; cause !== undefined && depth < 4; depth++, cause = (cause as { cause?: unknown }).cause) {
    if (cause instanceof RpcError) return cause;
  }
  const what = `${error.config?.method?.toUpperCase() ?? 'GET'} ${error.config?.url ?? ''}`;
  if (error.code === 'ERR_BAD_RESPONSE' && error.message.startsWith('maxContentLength')) {
    const limit = `${MAX_RESPONSE_BYTES / 1024} KiB`;
    const why = 'which no ACME answer needs; acmed stopped reading it';
    return new RpcError(AcmedError.CA, `the CA's answer to ${what} is larger than ${limit}, ${why}`);
  }
  if (error.code === 'ERR_FR_TOO_MANY_REDIRECTS') {
    return new RpcError(AcmedError.CA, `the CA redirected ${what} more than ${MAX_REDIRECTS} times`);
  }
  return null;
}

/** Parses Retry-After (RFC 9110 section 10.2.3): delay-seconds or an HTTP date. */
export function parseRetryAfter(value: unknown, now = Date.now()): number | null {
  if (typeof value !== 'string' || value.trim() === '') return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

function problemOf(response: AxiosResponse): Problem | null {
  const type = String(response.headers['content-type'] ?? '');
  const data = response.data as unknown;
  if (response.status < 400) return null;
  if (type.includes('problem+json') && data && typeof data === 'object') return data as Problem;
  return { type: 'about:blank', detail: `HTTP ${response.status} from ${response.config.method?.toUpperCase()} ${response.config.url}`, status: response.status };
}

interface RetryableConfig extends InternalAxiosRequestConfig {
  certsepAttempt?: number;
}

/** No answer at all (refused, reset, timed out): the request may be sent again after a pause. */
async function retryTransient(error: AxiosError): Promise<AxiosResponse> {
  const refused = refusedAnswer(error);
  if (refused) throw refused;
  const config = error.config as RetryableConfig | undefined;
  if (!config || error.response) throw error;
  const attempt = (config.certsepAttempt ?? 0) + 1;
  if (attempt >= TRANSIENT_ATTEMPTS) throw error;
  config.certsepAttempt = attempt;
  await sleep(jitteredDelayMs(attempt));
  return acme.axios.request(config);
}

export function installTransport(): void {
  if (installed) return;
  installed = true;
  acme.axios.defaults.timeout = REQUEST_TIMEOUT_MS;
  acme.axios.defaults.maxContentLength = MAX_RESPONSE_BYTES;
  acme.axios.defaults.maxBodyLength = MAX_REQUEST_BYTES;
  acme.axios.defaults.maxRedirects = MAX_REDIRECTS;
  acme.axios.defaults.beforeRedirect = refuseRedirectOffOrigin;
  // Every HTTP status resolves, so the response interceptor below alone decides what is an error.
  acme.axios.defaults.validateStatus = () => true;
  // acme-client's own interceptors make every answer an error and retry inside axios: the policy is ours.
  acme.axios.interceptors.request.clear();
  acme.axios.interceptors.response.clear();

  acme.axios.interceptors.request.use((config) => {
    const origin = originOf(config.url);
    if (origin === null || !reach.origins.has(origin)) {
      const why = 'which is not the origin of a configured CA directory; acmed talks to no other server';
      throw new RpcError(AcmedError.CA, `the CA sent acmed to ${config.url}, ${why}`);
    }
    const agent = reach.agents.get(origin);
    if (agent) config.httpsAgent = agent;
    return config;
  });

  acme.axios.interceptors.response.use(async (response) => {
    const problem = problemOf(response);
    if (!problem || problem.type === 'urn:ietf:params:acme:error:badNonce') return response;
    const config = response.config as RetryableConfig;
    const retryAfter = parseRetryAfter(response.headers['retry-after']);
    const attempt = (config.certsepAttempt ?? 0) + 1;
    if (response.status >= 500 && attempt < TRANSIENT_ATTEMPTS) {
      config.certsepAttempt = attempt;
      await sleep(retryAfter !== null && retryAfter <= MAX_HONOURED_RETRY_AFTER_S ? retryAfter * 1000 : jitteredDelayMs(attempt));
      return acme.axios.request(config);
    }
    throw new AcmeProblem(problem, response.status, retryAfter);
  }, retryTransient);
}
