// The stable JSON of `certsepctl status --json`: scripts and monitoring parse it, so it is a
// schema (checked by the tests) with a version field, not whatever the code happens to print.
// A field may be added without a new version (a consumer of version 1 ignores what it does not
// know); changing or removing one needs a new version.
import { z } from 'zod';
import { CertStatus } from '../deployd/api.ts';
import { ConfigStatus } from '../runtime/config-status.ts';

export const STATUS_JSON_VERSION = 1;

/**
 * One daemon's config against the file certsepctl read. current: it runs that file; refused: it
 * would not take the file as it is now and keeps the config it had (see refused); older: it runs
 * an earlier version and switches once the work in `waiting` is done; not-running: under systemd,
 * it reads the file when it starts; failed: its unit failed (a daemon that cannot start with the
 * file says why in its journal); unreachable: it did not answer.
 */
export const DaemonConfig = z.strictObject({
  daemon: z.enum(['privd', 'keyd', 'acmed', 'netd', 'deployd']),
  state: z.enum(['current', 'refused', 'older', 'not-running', 'failed', 'unreachable']),
  /** The file the daemon reads (its --config), when it answered. */
  path: ConfigStatus.shape.path.optional(),
  sha256: ConfigStatus.shape.sha256.optional(),
  loadedAt: ConfigStatus.shape.loadedAt.optional(),
  refused: ConfigStatus.shape.refused,
  waiting: ConfigStatus.shape.waiting,
  error: z.string().optional(),
});
export type DaemonConfig = z.infer<typeof DaemonConfig>;

export const ConfigAgreement = z.strictObject({
  /** The file certsepctl read, and the sha256 of its bytes. */
  path: z.string(),
  sha256: ConfigStatus.shape.sha256,
  daemons: z.array(DaemonConfig),
});
export type ConfigAgreement = z.infer<typeof ConfigAgreement>;

export const StatusJson = z.strictObject({
  version: z.literal(STATUS_JSON_VERSION),
  generatedAt: z.iso.datetime({ offset: true }),
  certs: z.array(CertStatus),
  /** Added within version 1: which config each daemon runs. */
  config: ConfigAgreement.optional(),
});
export type StatusJson = z.infer<typeof StatusJson>;
