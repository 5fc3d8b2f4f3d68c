// What every challenge method provides to an order: put an answer where the CA will look, and
// take it away again. An order registers an answer for removal BEFORE presenting it, so a
// half-done present (a hook that failed midway) is cleaned up like a complete one.
export interface ChallengeAnswer {
  /** The identifier without a leading "*." (a wildcard's answer lives at its base name). */
  domain: string;
  token: string;
  /** http-01: the key authorization; dns-01: its base64url SHA-256 digest (the TXT value). */
  value: string;
}

export interface ChallengeResponder {
  readonly type: 'http-01' | 'dns-01';
  present(answer: ChallengeAnswer): Promise<void>;
  /** Must tolerate an answer that was never (or only partly) presented. */
  remove(answer: ChallengeAnswer): Promise<void>;
}

/** RFC 8555 section 8.4: the TXT record for a name's dns-01 challenge. */
export function txtNameOf(domain: string): string {
  return `_acme-challenge.${domain}`;
}
