// config.status: the one method every daemon has besides its own, listed in each api.ts like any
// other (the pledge stays complete) and answered by runDaemon. It says which version of the config
// file the daemon runs, whether it refused a newer one and why, and whether a switch waits for work
// in progress; `certsepctl status`, `reload` and `doctor` compare that with the file they read.
import { z } from 'zod';
import type { Handlers, MethodSpec, MethodTable } from '../proto/api.ts';
import { ERROR_CODE_PATTERN } from '../proto/errors.ts';

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);
/** A refusal keeps its first issues, each cut to this length: the answer stays well inside a frame. */
export const MAX_ISSUES = 20;
export const MAX_ISSUE_CHARS = 1024;

export const ConfigStatus = z.strictObject({
  /** The file the daemon reads (its --config). */
  path: z.string().max(4096),
  /** sha256 of the file's bytes as the daemon loaded them. */
  sha256: Sha256,
  loadedAt: z.iso.datetime(),
  /** The newest version of the file this daemon would not take; it keeps the config above. */
  refused: z.strictObject({
    at: z.iso.datetime(),
    code: z.string().regex(ERROR_CODE_PATTERN),
    /** As `file:line: key: message`, like every config error. */
    issues: z.array(z.string().max(MAX_ISSUE_CHARS)).min(1).max(MAX_ISSUES),
    /** Present when the file parsed (the refusal came after the schema). */
    sha256: Sha256.optional(),
  }).optional(),
  /** The file changed and the switch waits for this work to finish. */
  waiting: z.string().max(1024).optional(),
});
export type ConfigStatus = z.infer<typeof ConfigStatus>;

export const configStatusMethod = {
  // reread: look at the file again even if its identity did not change (certsepctl reload).
  params: z.strictObject({ reread: z.boolean().default(false) }),
  result: ConfigStatus,
  callers: ['admin'],
} as const satisfies MethodSpec;

/** What runDaemon adds to a daemon's own methods; each api.ts lists it. */
export type ConfigStatusMethods = { readonly 'config.status': typeof configStatusMethod };

/** The handlers a daemon writes itself: all of its api.ts but config.status. */
export type OwnHandlers<M extends MethodTable> = Omit<Handlers<M>, keyof ConfigStatusMethods>;
