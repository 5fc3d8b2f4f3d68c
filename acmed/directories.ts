// Which ACME directory a configured CA means, for real orders and for dry runs.
import type { CaConfig } from '../config/schema.ts';
import { RpcError } from '../proto/errors.ts';
import { AcmedError } from './errors.ts';

const WELL_KNOWN: Record<string, string> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

function resolveDirectory(directory: string): string {
  return WELL_KNOWN[directory] ?? directory;
}

/**
 * The directory URL for `ca`. A dry run goes to the CA's staging directory and never to the
 * production one: a CA with no known staging directory refuses the dry run rather than silently
 * issuing a real certificate.
 */
export function directoryUrlOf(caName: string, ca: CaConfig, staging: boolean): string {
  if (!staging) return resolveDirectory(ca.directory);
  if (ca.staging !== undefined) return resolveDirectory(ca.staging);
  if (ca.directory === 'letsencrypt' || ca.directory === 'letsencrypt-staging') return resolveDirectory('letsencrypt-staging');
  throw new RpcError(AcmedError.NO_STAGING, `CA "${caName}" has no staging directory: set cas.${caName}.staging to run a dry run against it`);
}
