// Reading certsep.yaml: YAML 1.2 (so "no" and "on" stay strings), node ranges kept so every
// problem can be reported with its line, and all problems gathered into one ConfigError.
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { basename } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from './error.ts';
import { schemaErrorMessage, toConfigIssues } from './schema-issues.ts';
import { ConfigSchema, type Config } from './schema.ts';

export const DEFAULT_CONFIG_PATH = '/etc/certsep/certsep.yaml';

// A config is a few KB; anything far larger is a mistake (or an attempt to exhaust memory).
const MAX_CONFIG_BYTES = 1024 * 1024;

export function defaultConfigPath(): string {
  return process.env['CERTSEP_CONFIG'] || DEFAULT_CONFIG_PATH;
}

export function loadConfig(path: string): Config {
  return loadConfigFile(path).config;
}

/** A config as read from its file, with the sha256 of the file's bytes (which config a daemon runs). */
export interface ConfigFile {
  path: string;
  config: Config;
  sha256: string;
}

export function loadConfigFile(path: string): ConfigFile {
  const source = readConfigSource(path);
  return { path, config: parseConfig(source.text, basename(path)), sha256: source.sha256 };
}

/** The file's text and the sha256 of its bytes, unparsed (a daemon compares before it parses). */
export function readConfigSource(path: string): { text: string; sha256: string } {
  const bytes = readConfigBytes(path);
  return { text: bytes.toString('utf8'), sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Parses config text; `file` names it in messages. Exported for callers that already hold the text. */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, version: '1.2', uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError('E_CONFIG', doc.errors.map((e): ConfigIssue => ({
      file,
      line: e.linePos?.[0].line,
      message: `YAML syntax error: ${firstLineOf(e.message)}`,
    })));
  }
  // An empty file (or one with only comments) means "all defaults", like an empty mapping.
  const data = doc.contents === null ? {} : doc.toJS({ maxAliasCount: 100 });
  const result = ConfigSchema.safeParse(data, { error: schemaErrorMessage });
  if (!result.success) {
    throw new ConfigError('E_CONFIG', toConfigIssues(result.error.issues, doc, lineCounter, file));
  }
  return result.data;
}

// Symlinks are followed: an admin may link the config elsewhere, and privd checks every
// directory on the way (config/ownership.ts). What is opened must then be a regular file whose
// size is known before reading: O_NONBLOCK so that a FIFO planted as the config cannot hang the
// open, fstat so that a FIFO, a device (/dev/zero) or a huge file is refused unread, and at most
// the limit is read in case the file grows in between.
function readConfigBytes(path: string): Buffer {
  const refuse = (message: string) => new ConfigError('E_CONFIG', [{ file: basename(path), message }]);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw refuse(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw refuse(`cannot read ${path}: not a regular file (${fileKind(stats)})`);
    if (stats.size > MAX_CONFIG_BYTES) {
      throw refuse(`${path} is ${stats.size} bytes, more than the ${MAX_CONFIG_BYTES} a config may have`);
    }
    const bytes = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    while (length < bytes.length) {
      const n = readSync(fd, bytes, length, bytes.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > MAX_CONFIG_BYTES) throw refuse(`${path} grew beyond the ${MAX_CONFIG_BYTES} bytes a config may have`);
    return bytes.subarray(0, length);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw refuse(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  } finally {
    closeSync(fd);
  }
}

function fileKind(stats: Stats): string {
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  if (stats.isDirectory()) return 'a directory';
  return 'not a file';
}

// yaml's messages repeat the position and quote the source below it; the line number is shown already.
function firstLineOf(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
}
