// One esbuild bundle per program (dist/<program>.mjs) plus the native addon beside them,
// so an installed suite needs only node, dist/ and nothing from node_modules.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';

const programs = {
  'certsepctl': 'ctl/main.ts',
  'certsep-privd': 'privd/main.ts',
  'certsep-keyd': 'keyd/main.ts',
  'certsep-acmed': 'acmed/main.ts',
  'certsep-netd': 'netd/main.ts',
  'certsep-deployd': 'deployd/main.ts',
};

mkdirSync('dist', { recursive: true });
const entryPoints = Object.entries(programs)
  .filter(([, src]) => existsSync(src))
  .map(([out, src]) => ({ out, in: src }));
await build({
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
  banner: { js: "import { createRequire as __certsepRequire } from 'node:module'; const require = __certsepRequire(import.meta.url);" },
  external: ['*.node'],
});
const addon = 'build/Release/certsep_native.node';
if (!existsSync(addon)) throw new Error(`${addon} is missing: run npm ci (it builds the addon with node-gyp)`);
// Copy then rename: overwriting the file in place would change the code under every running
// daemon that has it mapped, and kill them (a rebuild while tests or the suite run).
const temp = `dist/certsep_native.node.${process.pid}.tmp`;
copyFileSync(addon, temp);
renameSync(temp, 'dist/certsep_native.node');
console.log(`built ${readdirSync('dist').filter((f) => f.endsWith('.mjs')).join(' ')}`);
