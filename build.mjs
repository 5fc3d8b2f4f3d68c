// One esbuild bundle per program (dist/<program>.mjs) plus the native addon beside them,
// so an installed suite needs only node, dist/ and nothing from node_modules.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';

const programs = {
  'certsepctl': 'ctl/main.ts',
  'certsep-privd': 'privd/main.ts',
  'certsep-keyd': 'keyd/main.ts',
  'certsep-acmed': 'acmed/main.ts',
  'certsep-netd': 'netd/main.ts',
  'certsep-deployd': 'deployd/main.ts',
  'certsep-supervisor': 'supervisor/main.ts',
};

mkdirSync('dist', { recursive: true });
const entryPoints = Object.entries(programs)
  .filter(([, src]) => existsSync(src))
  .map(([out, src]) => ({ out, in: src }));
const { outputFiles } = await build({
  write: false,
  entryPoints,
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
  // Bundled CommonJS dependencies call require(); give ESM bundles one.
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __certsepRequire } from 'node:module'; const require = __certsepRequire(import.meta.url);" },
  external: ['*.node'],
});
// Each file by rename, like the addon below: a daemon starting during a rebuild must never read
// a half-written bundle.
for (const file of outputFiles) {
  const temp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temp, file.contents, { mode: file.path.endsWith('.mjs') ? 0o755 : 0o644 });
  renameSync(temp, file.path);
}
const addon = 'build/Release/certsep_native.node';
if (!existsSync(addon)) throw new Error(`${addon} is missing: run npm ci (it builds the addon with node-gyp)`);
// Copy then rename: overwriting the file in place would change the code under every running
// daemon that has it mapped, and kill them (a rebuild while tests or the suite run).
const temp = `dist/certsep_native.node.${process.pid}.tmp`;
copyFileSync(addon, temp);
renameSync(temp, 'dist/certsep_native.node');
console.log(`built ${readdirSync('dist').filter((f) => f.endsWith('.mjs')).join(' ')}`);
