// onRenewed / onFailure hooks: programs run as deployd's own uid (never root), without a shell,
// with certbot's deploy-hook environment (RENEWED_LINEAGE, RENEWED_DOMAINS) so existing hooks work
// unchanged, plus CERTSEP_* variables for what certbot never had (key types, the failed step).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { CertificateConfig, Config } from '../config/schema.ts';
import type { WireError } from './api.ts';

const HOOK_TIMEOUT_MS = 120_000;
// A fixed PATH: a hook's bare program name must not depend on the environment deployd inherited.
const HOOK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export type HookEvent =
  | { kind: 'renewed'; serials: string[]; notAfter: string }
  | { kind: 'failure'; step: string; error: WireError };

export interface HookOutcome {
  argv: string[];
  ok: boolean;
  detail: string;
}

/** The certificate's own hook, else the global one; null when neither is configured. */
export function hookFor(config: Config, cert: CertificateConfig, kind: HookEvent['kind']): string[] | null {
  const key = kind === 'renewed' ? 'onRenewed' : 'onFailure';
  return cert.hooks?.[key] ?? config.renewal.hooks?.[key] ?? null;
}

/**
 * certbot points RENEWED_LINEAGE at the directory holding fullchain.pem and privkey.pem: here the
 * first target (where the files really are); without targets, privd's lineage directory.
 */
export function lineageDir(config: Config, cert: CertificateConfig): string {
  return cert.targets[0]?.dir ?? join(config.paths.stateDir, 'privd', 'live', cert.name);
}

export function hookEnvironment(config: Config, cert: CertificateConfig, event: HookEvent): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: HOOK_PATH,
    RENEWED_LINEAGE: lineageDir(config, cert),
    RENEWED_DOMAINS: cert.domains.join(' '),
    CERTSEP_CERT: cert.name,
    CERTSEP_EVENT: event.kind,
    CERTSEP_KEY_TYPES: cert.keyTypes.join(' '),
  };
  if (event.kind === 'renewed') {
    env.CERTSEP_SERIALS = event.serials.join(' ');
    env.CERTSEP_NOT_AFTER = event.notAfter;
  } else {
    env.CERTSEP_STEP = event.step;
    env.CERTSEP_ERROR_CODE = event.error.code;
    env.CERTSEP_ERROR = event.error.message;
  }
  return env;
}

export function runHook(config: Config, cert: CertificateConfig, event: HookEvent): Promise<HookOutcome | null> {
  const argv = hookFor(config, cert, event.kind);
  if (!argv) return Promise.resolve(null);
  const [program, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    execFile(program, args, { env: hookEnvironment(config, cert, event), timeout: HOOK_TIMEOUT_MS, maxBuffer: 1024 * 1024 }, (error, _stdout, stderr) => {
      if (!error) resolve({ argv, ok: true, detail: 'exit 0' });
      else resolve({ argv, ok: false, detail: `${error.message.split('\n')[0]}${stderr ? `: ${stderr.trim().slice(-500)}` : ''}` });
    });
  });
}
