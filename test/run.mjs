// Runs every *.test.ts with Node's own test runner (through tsx).
// Usage: node test/run.mjs [PATTERN...]  — only files whose path contains one of the patterns.
// Env: CERTSEP_TEST_CONCURRENCY (test files at once, default 2: many tests start real servers),
//      CERTSEP_TEST_TIMEOUT_MS (per test, default 300000, so a hung peer cannot eat a CI run).
// Node 20's --test takes no globs, so the file list is built here.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const testRoots = ['proto', 'config', 'audit', 'privd', 'keyd', 'acmed', 'netd', 'deployd', 'ctl', 'test'];
const skipped = new Set(['node_modules', 'dist', 'build']);

function findTests(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return skipped.has(entry.name) ? [] : findTests(path);
    return entry.isFile() && entry.name.endsWith('.test.ts') ? [relative(root, path)] : [];
  });
}

function positiveInteger(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[1-9][0-9]*$/.test(raw)) {
    console.error(`${name} must be a positive integer, got "${raw}"`);
    process.exit(1);
  }
  return Number(raw);
}

const patterns = process.argv.slice(2);
const files = testRoots
  .flatMap((dir) => findTests(join(root, dir)))
  .filter((file) => patterns.length === 0 || patterns.some((p) => file.includes(p)))
  .sort();
if (files.length === 0) {
  console.error(`no *.test.ts file matches ${patterns.length > 0 ? patterns.join(' ') : 'anything'}`);
  process.exit(1);
}

const concurrency = positiveInteger('CERTSEP_TEST_CONCURRENCY', 2);
const timeoutMs = positiveInteger('CERTSEP_TEST_TIMEOUT_MS', 300_000);
console.log(`running ${files.length} test file(s), ${concurrency} at a time`);
const started = Date.now();
const result = spawnSync(process.execPath, [
  '--import', 'tsx',
  '--test',
  '--test-reporter=spec',
  `--test-concurrency=${concurrency}`,
  `--test-timeout=${timeoutMs}`,
  ...files,
], { cwd: root, stdio: 'inherit' });

const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (result.error) {
  console.error(`cannot run node --test: ${result.error.message}`);
  process.exit(1);
}
const status = result.status ?? 1;
console.log(`test/run.mjs: ${files.length} file(s) in ${seconds} s, ${status === 0 ? 'passed' : `FAILED (${result.signal ?? `exit ${status}`})`}`);
process.exit(status);
