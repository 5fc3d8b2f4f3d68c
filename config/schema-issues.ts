// Turns zod issues into lines a sysadmin can act on: the YAML line of the offending node, the key
// path in JS notation, and a message that says what was expected and what was found.
import { isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import type { z } from 'zod';
import type { ConfigIssue } from './error.ts';

type Segment = string | number;

/** Per-parse zod error map: plain-language messages for zod's built-in checks. */
export function schemaErrorMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'missing required key' : `expected ${noun(issue.expected)}, got ${describe(issue.input)}`;
    case 'invalid_value':
      return `expected ${issue.values.length === 1 ? '' : 'one of '}${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(issue.input)}`;
    case 'too_small':
      return issue.origin === 'array'
        ? `needs at least ${issue.minimum} ${Number(issue.minimum) === 1 ? 'entry' : 'entries'}`
        : issue.origin === 'string'
          ? (Number(issue.minimum) === 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters`)
          : `must be ${issue.inclusive ? 'at least' : 'greater than'} ${issue.minimum}`;
    case 'too_big':
      return issue.origin === 'array'
        ? `allows at most ${issue.maximum} entries`
        : issue.origin === 'string'
          ? `must be at most ${issue.maximum} characters`
          : `must be ${issue.inclusive ? 'at most' : 'less than'} ${issue.maximum}`;
    case 'invalid_format':
      return `${describe(issue.input)} is not a valid ${issue.format}`;
    case 'invalid_union':
      return 'note' in issue && issue.note === 'No matching discriminator' ? discriminatorMessage(issue) : undefined;
    default:
      return undefined;
  }
}

function discriminatorMessage(issue: z.core.$ZodRawIssue): string {
  const { discriminator, options, input } = issue as { discriminator?: string; options?: unknown[]; input?: unknown };
  const found = discriminator && input !== null && typeof input === 'object' ? (input as Record<string, unknown>)[discriminator] : undefined;
  const expected = `one of ${(options ?? []).map((o) => JSON.stringify(o)).join(', ')}`;
  return found === undefined ? `missing required key (${expected})` : `expected ${expected}, got ${describe(found)}`;
}

function noun(expected: string): string {
  const nouns: Record<string, string> = {
    object: 'a mapping', array: 'a list', string: 'a string', number: 'a number', int: 'an integer',
    boolean: 'true or false', tuple: 'a list',
  };
  return nouns[expected] ?? expected;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  return String(value);
}

interface Located {
  path: Segment[];
  message: string;
  /** Point at the key itself rather than at its value (for unknown keys). */
  atKey: boolean;
}

/** Flattens unions, record keys and multi-key issues into one entry per offending node. */
function flatten(issue: z.core.$ZodIssue, base: Segment[]): Located[] {
  const path = [...base, ...issue.path.map((p) => (typeof p === 'number' ? p : String(p)))];
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: [...path, key], message: 'unknown key', atKey: true }));
    case 'invalid_union':
      return issue.errors.length === 0 ? [{ path, message: issue.message, atKey: false }] : closestBranch(issue.errors).flatMap((i) => flatten(i, path));
    case 'invalid_key':
      return issue.issues.flatMap((i) => flatten(i, path)).map((located) => ({ ...located, atKey: true }));
    default:
      return [{ path, message: issue.message, atKey: false }];
  }
}

// The union branch the author most likely meant: fewest issues, where a branch whose type or
// keys did not match at all counts as far away.
function closestBranch(branches: z.core.$ZodIssue[][]): z.core.$ZodIssue[] {
  const distance = (issues: z.core.$ZodIssue[]) =>
    issues.reduce((sum, i) => sum + (i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'unrecognized_keys') ? 100 : 1), 0);
  return branches.reduce((best, branch) => (distance(branch) < distance(best) ? branch : best));
}

export function formatKeyPath(path: readonly Segment[]): string {
  return path
    .map((segment, i) => {
      if (typeof segment === 'number') return `[${segment}]`;
      if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) return i === 0 ? segment : `.${segment}`;
      return `[${JSON.stringify(segment)}]`;
    })
    .join('');
}

/**
 * The 1-based line of the node at path. A path that ends in a missing key resolves to the line
 * of the map that should have held it.
 */
function lineOfPath(doc: Document, lineCounter: LineCounter, path: readonly Segment[], atKey: boolean): number {
  let node: unknown = doc.contents;
  let keyOffset: number | undefined;
  let lastOffset = rangeStart(node) ?? 0;
  for (const segment of path) {
    keyOffset = undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      keyOffset = rangeStart(pair.key);
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
      node = node.items[segment];
    } else {
      break;
    }
    lastOffset = rangeStart(node) ?? keyOffset ?? lastOffset;
  }
  const offset = atKey || typeof path[path.length - 1] === 'string' ? (keyOffset ?? lastOffset) : lastOffset;
  return lineCounter.linePos(offset).line;
}

function rangeStart(node: unknown): number | undefined {
  return node !== null && typeof node === 'object' && 'range' in node ? (node as Node).range?.[0] : undefined;
}

export function toConfigIssues(issues: readonly z.core.$ZodIssue[], doc: Document, lineCounter: LineCounter, file: string): ConfigIssue[] {
  return issues
    .flatMap((issue) => flatten(issue, []))
    .map(({ path, message, atKey }) => ({ file, line: lineOfPath(doc, lineCounter, path, atKey), path: formatKeyPath(path), message }))
    .sort((a, b) => a.line - b.line);
}
