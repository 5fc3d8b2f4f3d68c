// Which config a daemon runs, and when it takes an edited one.
//
// A daemon reads certsep.yaml at start and keeps up with it by itself: before each request is
// dispatched (and before work a timer starts) it stats the file, and when the file's identity
// changed (device, inode, size, mtime, ctime: an edit in place, or a new file renamed over it) it
// reads it again, checks it exactly as at start and switches to it. Per request rather than only
// on SIGHUP, because then certsepctl and every daemon agree on the file at the moment a request
// is served, under systemd and certsep-supervisor alike, with nothing for the admin to remember;
// a stat costs microseconds. SIGHUP (`systemctl reload`, forwarded by certsep-supervisor) and
// `certsepctl reload` re-read the file even when its identity did not change.
//
// A switch happens only between pieces of work: never while a request is being handled, nor while
// the daemon reports work of its own under way (ConfigReactions.busy: privd's run installed but not
// committed, deployd's renewal run, netd's lease change). So a piece of work sees one config from
// start to end, and an edit made meanwhile waits for it (`certsepctl status` says so).
//
// An edit that fails (YAML, schema, an unknown user, a setting read only at start, for privd a
// file or directory someone else could write, a daemon's own check) is refused: logged and audited
// once (the same refusal again, however many requests look, is not recorded again, so they cannot
// fill the disk), and the daemon keeps the config it had.
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { ConfigError, formatConfigIssue } from '../config/error.ts';
import { loadConfigFile, parseConfig, readConfigSource, type ConfigFile } from '../config/load.ts';
import { assertRootOwnedConfig } from '../config/ownership.ts';
import type { Config } from '../config/schema.ts';
import { uidsForRole } from '../config/users.ts';
import type { ServiceName } from '../proto/api.ts';
import type { AuditSink } from '../proto/server.ts';
import type { Logger } from '../proto/log.ts';
import { MAX_ISSUE_CHARS, MAX_ISSUES, type ConfigStatus } from './config-status.ts';
import { startOnlyChanges } from './start-only-settings.ts';

export type RefreshTrigger = 'request' | 'timer' | 'SIGHUP' | 'certsepctl reload';

/** What a daemon adds to the watch: when a switch must wait, and what it does on a new config. */
export interface ConfigReactions {
  /** Work outside requests that started under the current config: why a switch must wait, or null. */
  busy?: () => string | null;
  /** Checks a new config before it takes over (throw to refuse it); returns what to do once it has. */
  prepare?: (next: Config, previous: Config) => (() => void) | void;
}

export interface WatchOptions {
  path: string;
  daemon: ServiceName;
  /** privd acts on the config's authority: root alone may be able to write it, on reload too. */
  requireRootOwned: boolean;
}

interface InForce {
  config: Config;
  sha256: string;
  loadedAt: string;
  identity: string;
}

interface Edited {
  config: Config;
  sha256: string;
  commit: (() => void) | void;
}

interface Refusal {
  at: string;
  identity: string;
  code: string;
  issues: string[];
  sha256?: string;
}

/** Reads and checks the config at start; throws a ConfigError (the daemon then exits EX_CONFIG). */
export function readConfigAtStart(opts: WatchOptions): InForce {
  const identity = fileIdentity(opts.path);
  const file = readTrusted(opts);
  resolveEveryRole(file.config);
  return { config: file.config, sha256: file.sha256, loadedAt: new Date().toISOString(), identity };
}

export class ConfigWatch {
  private reactions: ConfigReactions = {};
  private refusal: Refusal | null = null;
  private waiting: string | null = null;
  private inFlight = 0;

  constructor(
    private readonly opts: WatchOptions & { audit: AuditSink; log: Logger },
    private inForce: InForce,
  ) {}

  /** The config in force: the same object for as long as any piece of work is in progress. */
  get config(): Config {
    return this.inForce.config;
  }

  react(reactions: ConfigReactions): void {
    this.reactions = reactions;
  }

  /** Runs a request's handler; the config does not change while one runs. */
  async during<T>(work: () => Promise<T>): Promise<T> {
    this.inFlight += 1;
    try {
      return await work();
    } finally {
      this.inFlight -= 1;
    }
  }

  /**
   * Switches to the file if it changed and nothing is in progress. Refusals are recorded, not
   * thrown; only a failure to write the audit record escapes (the daemon must then stop).
   */
  refresh(trigger: RefreshTrigger, force = false): void {
    const identity = fileIdentity(this.opts.path);
    if (!force && identity === this.inForce.identity) {
      this.waiting = null;
      return;
    }
    // The same version of the file fails the same way; only a permission problem can be mended
    // without touching the file (chmod of a directory above it), so that one is looked at again.
    if (!force && this.refusal?.identity === identity && this.refusal.code !== 'E_CONFIG_PERMS') return;
    if (this.mustWait(trigger)) return;
    const edited = this.readEdited(identity, trigger, force);
    if (edited) this.switchTo(edited, identity, trigger);
  }

  /** True (and noted for status) while a request or the daemon's own work holds the config still. */
  private mustWait(trigger: RefreshTrigger): boolean {
    const busy = this.reactions.busy?.() ?? (this.inFlight > 0 ? `${this.inFlight} request(s) are in progress` : null);
    if (busy !== null && this.waiting !== busy) {
      this.opts.log.info({ path: this.opts.path, trigger, waitingFor: busy }, 'config file changed; switch waits');
    }
    this.waiting = busy;
    return busy !== null;
  }

  /** The edited config, checked and prepared; null when there is nothing to switch to (or it was refused). */
  private readEdited(identity: string, trigger: RefreshTrigger, force: boolean): Edited | null {
    let source: { text: string; sha256: string } | undefined;
    try {
      if (this.opts.requireRootOwned) assertRootOwnedConfig(this.opts.path);
      source = readConfigSource(this.opts.path);
      if (source.sha256 === this.inForce.sha256) {
        // Touched, or edited back to what runs: nothing to switch, nothing refused any more.
        this.inForce.identity = identity;
        this.refusal = null;
        return null;
      }
      if (!force && this.refusal?.sha256 === source.sha256) {
        this.refusal.identity = identity;
        return null;
      }
      const config = parseConfig(source.text, basename(this.opts.path));
      resolveEveryRole(config);
      const changed = startOnlyChanges(this.inForce.config, config, this.opts.path, this.opts.daemon);
      if (changed.length > 0) throw new ConfigError('E_CONFIG_RESTART', changed);
      return { config, sha256: source.sha256, commit: this.reactions.prepare?.(config, this.inForce.config) };
    } catch (e) {
      this.refuse(identity, trigger, force, e, source?.sha256);
      return null;
    }
  }

  private switchTo(edited: Edited, identity: string, trigger: RefreshTrigger): void {
    const previous = this.inForce;
    const { config, sha256, commit } = edited;
    this.inForce = { config, sha256, loadedAt: new Date().toISOString(), identity };
    this.refusal = null;
    this.opts.audit.record({
      peer: null,
      method: 'config.reload',
      outcome: 'ok',
      message: `now runs ${this.opts.path} (sha256 ${sha256}); ran ${previous.sha256} from ${previous.loadedAt}`,
      detail: { trigger, sha256, previous: previous.sha256, certificates: config.certificates.length },
    });
    this.opts.log.info({ path: this.opts.path, trigger, sha256, previous: previous.sha256 }, 'config reloaded');
    try {
      commit?.();
    } catch (e) {
      this.opts.log.error({ err: e }, 'reacting to the new config failed');
    }
  }

  status(): ConfigStatus {
    const { sha256, loadedAt } = this.inForce;
    const r = this.refusal;
    const refused = r && { at: r.at, code: r.code, issues: r.issues, ...(r.sha256 ? { sha256: r.sha256 } : {}) };
    const waiting = this.waiting;
    return { path: this.opts.path, sha256, loadedAt, ...(refused ? { refused } : {}), ...(waiting ? { waiting } : {}) };
  }

  /** For error messages: why this daemon keeps an older config than the file, when it refused it; else null. */
  staleness(): string | null {
    if (!this.refusal) return null;
    const [first, ...more] = this.refusal.issues;
    const rest = more.length > 0 ? `; and ${more.length} more (certsepctl status lists them)` : '';
    const keeps = `certsep-${this.opts.daemon} keeps the config it loaded at ${this.inForce.loadedAt}`;
    return `${keeps}: the newest edit of ${this.opts.path} was refused: ${first}${rest}`;
  }

  private refuse(identity: string, trigger: RefreshTrigger, force: boolean, e: unknown, sha256?: string): void {
    const all = e instanceof ConfigError
      ? e.issues.map(formatConfigIssue)
      : [`certsep-${this.opts.daemon} cannot use it: ${(e as Error).message}`];
    const issues = all.slice(0, MAX_ISSUES).map((issue) => issue.slice(0, MAX_ISSUE_CHARS));
    const code = e instanceof ConfigError ? e.code : 'E_CONFIG';
    // The same refusal again (the same file read once more, or a permission problem looked at
    // again) is recorded once: a stream of requests cannot fill the disk with it.
    const last = this.refusal;
    const again = last !== null && last.code === code && last.sha256 === sha256
      && last.issues.join('\n') === issues.join('\n');
    const at = again ? last.at : new Date().toISOString();
    this.refusal = { at, identity, code, issues, ...(sha256 ? { sha256 } : {}) };
    if (again && !force) return;
    const keeps = this.inForce.sha256;
    const { path } = this.opts;
    this.opts.log.error({ path, trigger, code, issues, keeps }, 'config edit refused; keeping the config in force');
    this.opts.audit.record({
      peer: null,
      method: 'config.reload',
      outcome: 'refused',
      code,
      message: issues.join('; '),
      detail: { trigger, keeps: this.inForce.sha256, loadedAt: this.inForce.loadedAt, ...(sha256 ? { sha256 } : {}) },
    });
  }
}

function readTrusted(opts: WatchOptions): ConfigFile {
  if (opts.requireRootOwned) assertRootOwnedConfig(opts.path);
  return loadConfigFile(opts.path);
}

// File times have the kernel's clock-tick granularity: two writes of the same size within one
// tick leave the same identity. A file changed less than this ago is read again (and hashed,
// which is cheap) at every look until it is older, as git does with "racily clean" files.
const RACY_MS = 1000;
let racyLooks = 0;

/** Every caller role resolved now, so a missing user is refused with the config, not mid-request. */
function resolveEveryRole(config: Config): void {
  const roles = ['root', 'admin', 'keyd', 'acmed', 'netd', 'deployd', 'remote'] as const;
  for (const role of roles) uidsForRole(config, role);
}

/**
 * What changes when the file is edited in place or replaced; an unreadable file has an identity of
 * its own, and one changed too recently to be told apart from its next edit matches nothing.
 */
function fileIdentity(path: string): string {
  try {
    const st = statSync(path, { bigint: true });
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    const changedMs = Number((st.ctimeNs > st.mtimeNs ? st.ctimeNs : st.mtimeNs) / 1_000_000n);
    return Date.now() - changedMs < RACY_MS ? `racy:${key}:${++racyLooks}` : key;
  } catch (e) {
    return `unreadable:${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
}
