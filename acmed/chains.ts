// Downloading the issued certificate with every chain the CA offers (RFC 8555 section 7.4.2:
// alternates are Link rel="alternate"), and choosing one by the issuer CN the config prefers.
// acme-client's getCertificate returns a single chain, so the download uses its signed
// POST-as-GET (client.api.apiRequest) to see the Link header.
import { X509Certificate } from 'node:crypto';
import type acme from 'acme-client';
import { RpcError } from '../proto/errors.ts';
import { AcmedError } from './errors.ts';

const MAX_ALTERNATES = 8;

interface SignedGet {
  apiRequest(url: string, payload: null, validStatusCodes: number[]): Promise<{ data: unknown; headers: Record<string, unknown> }>;
}

function alternateLinks(link: unknown): string[] {
  const header = Array.isArray(link) ? link.join(', ') : typeof link === 'string' ? link : '';
  return [...header.matchAll(/<([^>]+)>\s*;\s*rel="?alternate"?/g)].map((m) => m[1]!);
}

export function splitPem(chainPem: string): string[] {
  return chainPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
}

function issuerCommonNames(chainPem: string): string[] {
  return splitPem(chainPem).map((pem) => /^CN=(.*)$/m.exec(new X509Certificate(pem).issuer)?.[1] ?? '');
}

export async function downloadChains(client: acme.Client, certificateUrl: string): Promise<string[]> {
  const api = (client as unknown as { api: SignedGet }).api;
  const first = await api.apiRequest(certificateUrl, null, [200]);
  const alternates = alternateLinks(first.headers.link).slice(0, MAX_ALTERNATES);
  const others = await Promise.all(alternates.map((url) => api.apiRequest(url, null, [200])));
  const chains = [first, ...others].map((res) => String(res.data));
  for (const chain of chains) {
    if (splitPem(chain).length === 0) throw new RpcError(AcmedError.CA, `the CA returned no PEM certificate at ${certificateUrl}`);
  }
  return chains;
}

/**
 * The chain whose issuers include `preferredIssuer`, nearest the root winning (as certbot's
 * --preferred-chain); the CA's default chain when none does or nothing is preferred.
 */
export function chooseChain(chains: string[], preferredIssuer: string | undefined): { chosen: string; others: string[] } {
  let best = 0;
  let bestDistance = Infinity;
  if (preferredIssuer !== undefined) {
    chains.forEach((chain, i) => {
      const issuers = issuerCommonNames(chain);
      const at = issuers.lastIndexOf(preferredIssuer);
      if (at >= 0 && issuers.length - at < bestDistance) {
        best = i;
        bestDistance = issuers.length - at;
      }
    });
  }
  return { chosen: chains[best]!, others: chains.filter((_, i) => i !== best) };
}
