// When a failing certificate may be tried again: exponential backoff with jitter (so a fleet of
// certificates that failed together does not hit the CA together again), and the CA's own
// Retry-After for rate limits, which acmed passes on in its E_RATE_LIMITED message.
import type { WireError } from './api.ts';

const FIRST_DELAY_MS = 5 * 60_000;
// Below the twice-daily schedule's period: a certificate that keeps failing is still retried daily.
const MAX_DELAY_MS = 12 * 3_600_000;
const RATE_LIMIT_DEFAULT_SECONDS = 3600;

export interface RetryPlan {
  nextAttempt: Date;
  /** Set for rate limits: the CA asked us not to come back before then. */
  rateLimitedUntil?: Date;
}

export function planRetry(consecutiveFailures: number, error: WireError, now: Date, random = Math.random): RetryPlan {
  if (error.code === 'E_RATE_LIMITED') {
    const seconds = retryAfterSecondsIn(error.message) ?? RATE_LIMIT_DEFAULT_SECONDS;
    const until = new Date(now.getTime() + seconds * 1000);
    return { nextAttempt: until, rateLimitedUntil: until };
  }
  const exponent = Math.max(0, Math.min(consecutiveFailures - 1, 16));
  const ceiling = Math.min(FIRST_DELAY_MS * 2 ** exponent, MAX_DELAY_MS);
  // "Equal jitter": between half and all of the delay, never shorter than half.
  const delay = ceiling / 2 + random() * (ceiling / 2);
  return { nextAttempt: new Date(now.getTime() + delay) };
}

/** acmed words it "(retry after N seconds…)"; see acmed/errors.ts. */
export function retryAfterSecondsIn(message: string): number | null {
  const match = /retry after (\d{1,9}) seconds/.exec(message);
  return match ? Number(match[1]) : null;
}
