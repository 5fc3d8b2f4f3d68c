// Pauses between attempts: exponential, capped, with equal jitter (half fixed, half random) so that many orders failing at
// the same moment (a CA hiccup during a 30-certificate renewal) do not come back in lockstep.
const BASE_MS = 1_000;
const CAP_MS = 30_000;

/** Delay before retry number `attempt` (1-based): uniform in [base·2^(attempt-1) / 2, base·2^(attempt-1)]. */
export function jitteredDelayMs(attempt: number, random = Math.random): number {
  const ceiling = Math.min(CAP_MS, BASE_MS * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
