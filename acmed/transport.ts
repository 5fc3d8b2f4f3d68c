// How acmed's HTTPS requests to CAs behave. acme-client sends everything through one axios
// instance (`acme.axios`); we set, once, for every request it makes:
//  - trust: a CA configured with a trustBundle is reached with the system roots plus that bundle,
//    chosen by the request's origin (so one CA's private root never vouches for another CA);
//  - problem documents: any answer with an RFC 7807/8555 problem becomes an AcmeProblem carrying
//    its type and Retry-After, so errors keep their meaning (acme-client would flatten them to text).
//    badNonce is passed through: acme-client retries it with the fresh nonce (RFC 8555 section 6.5);
//  - retries: acme-client's own retry loop sleeps for whatever Retry-After a CA sends (hours, under a
//    rate limit) and blocks the order; we remove it, never retry a 429 (the caller reschedules with
//    E_RATE_LIMITED), and retry connection failures and 5xx a few times with jittered backoff.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import acme from 'acme-client';
import type { AxiosError, AxiosResponse, InternalAxiosRequestConfig } from 'axios';
import { AcmeProblem, type Problem } from './errors.ts';
import type { Config } from '../config/schema.ts';
import { jitteredDelayMs } from './backoff.ts';
import { directoryUrlOf } from './directories.ts';

const REQUEST_TIMEOUT_MS = 30_000;
const TRANSIENT_ATTEMPTS = 3;
/** A 503's Retry-After is honoured up to this; longer means the CA is down, not busy. */
const MAX_HONOURED_RETRY_AFTER_S = 60;

let agentsByOrigin = new Map<string, Agent>();
let installed = false;

/**
 * Each CA with a trustBundle: its bundle (plus the system roots) for its directories' origins,
 * real and staging. Throws when a bundle cannot be read; nothing changes then.
 */
export function trustAgentsFor(config: Config): Map<string, Agent> {
  const agents = new Map<string, Agent>();
  for (const [name, ca] of Object.entries(config.cas)) {
    if (ca.trustBundle === undefined) continue;
    let bundle: string;
    try {
      bundle = readFileSync(ca.trustBundle, 'utf8');
    } catch (e) {
      const reason = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new Error(`cas.${name}.trustBundle: cannot read ${ca.trustBundle}: ${reason}`);
    }
    // One secure context, built once: parsing ~150 roots for every new connection costs more than the request.
    const secureContext = createSecureContext({ ca: [...rootCertificates, bundle] });
    const agent = new Agent({ secureContext, keepAlive: true });
    for (const staging of [false, true]) {
      try {
        agents.set(new URL(directoryUrlOf(name, ca, staging)).origin, agent);
      } catch {
        // No staging directory for this CA: nothing to trust for it.
      }
    }
  }
  return agents;
}

/**
 * Requests use these agents from now on. The whole set is replaced: a bundle removed from the
 * config is trusted no more. acmed switches configs only with no order in flight, so the old
 * agents' idle connections can go.
 */
export function useTrustAgents(agents: Map<string, Agent>): void {
  const previous = agentsByOrigin;
  agentsByOrigin = agents;
  for (const agent of new Set(previous.values())) agent.destroy();
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
  // Every HTTP status resolves, so the response interceptor below alone decides what is an error.
  acme.axios.defaults.validateStatus = () => true;
  // acme-client's own interceptors make every answer an error and retry inside axios: the policy is ours.
  acme.axios.interceptors.request.clear();
  acme.axios.interceptors.response.clear();

  acme.axios.interceptors.request.use((config) => {
    const agent = config.url ? agentsByOrigin.get(new URL(config.url).origin) : undefined;
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
