// One error for everything wrong with a config file, so a sysadmin fixes all problems in one
// edit instead of discovering them one restart at a time.

/** E_CONFIG_RESTART: an edit of a setting a running daemon reads only at start. */
export type ConfigErrorCode = 'E_CONFIG' | 'E_CONFIG_PERMS' | 'E_CONFIG_RESTART';

export interface ConfigIssue {
  /** Basename of the config file, as editors and `grep -n` show it. */
  file: string;
  /** 1-based line of the offending YAML node, when the problem has one. */
  line?: number;
  /** Key path in JS notation, e.g. certificates[1].domains[0]. */
  path?: string;
  message: string;
}

export function formatConfigIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`;
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly issues: readonly ConfigIssue[];

  constructor(code: ConfigErrorCode, issues: readonly ConfigIssue[]) {
    super(issues.map(formatConfigIssue).join('\n'));
    this.code = code;
    this.issues = issues;
  }
}
