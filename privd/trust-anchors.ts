// The roots privd accepts a CA's chains from: the CA's `roots` file (an admin's list, for a
// private CA such as Pebble or step-ca, or to pin a public CA's roots), else the system trust
// store. Read at every install, so an admin adds or drops a root without restarting privd; and
// held to the config's own rule (root alone could have written it and every directory above it),
// because whoever can edit it chooses which certificates root installs.
import { X509Certificate } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { ConfigError } from '../config/error.ts';
import { assertRootOwnedConfig } from '../config/ownership.ts';
import type { CaConfig } from '../config/schema.ts';
import { RpcError } from '../proto/errors.ts';
import { readSmallRegularFile } from '../runtime/read-small-file.ts';
import { PrivdErrorCode } from './api.ts';
import { pemBlocks } from './verify-chain.ts';

/** Debian's bundle of the roots in /etc/ssl/certs (update-ca-certificates writes it). */
export const SYSTEM_TRUST_STORE = '/etc/ssl/certs/ca-certificates.crt';

// Where certsep-privd.service cannot see (ProtectHome=yes, PrivateTmp=yes).
const HIDDEN_BY_UNIT = /^\/(home|root|run\/user|tmp|var\/tmp)(\/|$)/;
const HIDDEN_HINT = 'privd\'s unit hides /home, /root, /run/user and /tmp: keep roots under /etc';
const NO_SYSTEM_STORE_HINT = 'install the ca-certificates package, or name this CA\'s roots: file';

// The system bundle is about 200 KB.
const MAX_ROOTS_BYTES = 8 * 1024 * 1024;

export interface TrustAnchors {
  /** The CA's name in the config and the file its roots came from, for messages. */
  ca: string;
  source: string;
  roots: X509Certificate[];
}

function hintFor(source: string): string {
  if (HIDDEN_BY_UNIT.test(source)) return ` (${HIDDEN_HINT})`;
  if (source === SYSTEM_TRUST_STORE && !existsSync(source)) return ` (${NO_SYSTEM_STORE_HINT})`;
  return '';
}

export function trustAnchorsOf(caName: string, ca: CaConfig): TrustAnchors {
  const source = ca.roots ?? SYSTEM_TRUST_STORE;
  const refuse = (why: string) =>
    new RpcError(PrivdErrorCode.TRUST_STORE, `cannot use the roots of CA "${caName}": ${why}`);
  let text: string;
  try {
    assertRootOwnedConfig(source);
    // Checked component by component above; the real path is then read without following links.
    text = readSmallRegularFile(realpathSync(source), MAX_ROOTS_BYTES).toString('utf8');
  } catch (e) {
    const why = e instanceof ConfigError
      ? e.issues.map((issue) => issue.message).join('; ')
      : `${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    throw refuse(why + hintFor(source));
  }
  // Bundles carry comments and, now and then, a block a library cannot parse: those are skipped.
  const roots = pemBlocks(text).flatMap((der) => {
    try {
      return [new X509Certificate(der)];
    } catch {
      return [];
    }
  });
  if (roots.length === 0) throw refuse(`${source} holds no PEM certificate`);
  return { ca: caName, source, roots };
}
