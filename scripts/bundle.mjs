#!/usr/bin/env node
/**
 * Bundles the type-checked output of `tsc` (dist/) into the shipped CLI, dist/bundle/: a start
 * loads a handful of files instead of ~90 modules (see docs/DESIGN.md, "Start-up and the shipped
 * bundle"). Run by `npm run build` after tsc.
 *
 * - Entry dist/bundle/main.js; every dynamic import() of the sources (the commands, magnet, undici,
 *   debug) stays a separate chunk loaded only when reached, so `tdl info` never loads the swarm.
 * - The dependencies are bundled too (the package needs nothing from node_modules at run time).
 *   commander, undici and debug are CommonJS: their require() of Node's built-ins goes through a
 *   `require` made by createRequire in each output file.
 * - dist/cli/version.js reads package.json at start; here it becomes the version as a literal.
 * - The source map beside each file points back to src/*.ts (through tsc's maps); Node uses it
 *   with --enable-source-maps.
 * - THIRD-PARTY-NOTICES.txt carries the licence of every bundled package.
 *
 * `node scripts/bundle.mjs --report` also prints which module went into which file.
 */
import { build } from 'esbuild';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const OUT = path.join(DIST, 'bundle');

const require = createRequire(import.meta.url);
const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));

/** dist/cli/version.js, which reads package.json at start, becomes a constant. */
const inlineVersion = {
  name: 'inline-version',
  setup(b) {
    const file = path.join(DIST, 'cli', 'version.js');
    b.onLoad({ filter: /[\\/]cli[\\/]version\.js$/ }, (args) =>
      args.path === file
        ? { contents: `export const VERSION = ${JSON.stringify(pkg.version)};\n`, loader: 'js' }
        : undefined,
    );
  },
};

/**
 * A CommonJS package that the sources load with a dynamic import() and use by named exports
 * (`const { request } = await import('undici')`). Node's own loader finds the names of a CJS
 * module's exports; esbuild gives a split chunk of CJS only a default export. So our import of
 * it goes through an ES module written here that names each export of the package.
 */
const CJS_NAMED = ['undici'];
const cjsNamedExports = {
  name: 'cjs-named-exports',
  setup(b) {
    const filter = new RegExp(`^(${CJS_NAMED.join('|')})$`);
    b.onResolve({ filter }, (args) =>
      args.namespace === 'file' && args.importer.startsWith(DIST + path.sep)
        ? { path: args.path, namespace: 'cjs-named' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'cjs-named' }, (args) => {
      const names = Object.keys(require(args.path)).filter(
        (k) => k !== 'default' && /^[A-Za-z_$][\w$]*$/.test(k),
      );
      return {
        contents: `import m from ${JSON.stringify(args.path)};\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`,
        resolveDir: ROOT,
        loader: 'js',
      };
    });
  },
};

await rm(OUT, { recursive: true, force: true });
const result = await build({
  entryPoints: { main: path.join(DIST, 'cli', 'main.js') },
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // The `import` condition first: commander's ESM wrapper is thin.
  mainFields: ['module', 'main'],
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  sourcesContent: false,
  // Not minified: stack traces and the hash worker's source (built from Function#toString,
  // see src/metainfo/hash-worker.ts) stay readable, and minifying saves no measurable load time.
  minify: false,
  // No keepNames: it would insert __name() calls into the functions the hash worker runs alone.
  keepNames: false,
  legalComments: 'none',
  banner: {
    js: "import { createRequire as __tdlCreateRequire } from 'node:module';\nconst require = __tdlCreateRequire(import.meta.url);",
  },
  plugins: [inlineVersion, cjsNamedExports],
  metafile: true,
  logLevel: 'warning',
});

await writeFile(path.join(OUT, 'THIRD-PARTY-NOTICES.txt'), await notices(result.metafile));
if (process.argv.includes('--report')) report(result.metafile);

/** The licence text of every package under node_modules that went into the bundle. */
async function notices(metafile) {
  const dirs = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /^(.*node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(input);
    if (m) dirs.add(m[1]);
  }
  const parts = [`tdl ${pkg.version} bundles the following packages; their licences follow.\n`];
  for (const dir of [...dirs].sort()) {
    const p = JSON.parse(await readFile(path.join(ROOT, dir, 'package.json'), 'utf8'));
    const files = ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'license', 'license.md'];
    let text = null;
    for (const f of files) {
      text = await readFile(path.join(ROOT, dir, f), 'utf8').catch(() => null);
      if (text !== null) break;
    }
    // uint8-util ships no licence file: name its licence and author as its package.json does.
    text ??= `${p.license} licence (no licence file in the package; author: ${authorOf(p)})`;
    parts.push(`${'='.repeat(72)}\n${p.name} ${p.version} (${p.license})\n\n${text.trim()}\n`);
  }
  return parts.join('\n');
}

function authorOf(p) {
  return typeof p.author === 'string' ? p.author : (p.author?.name ?? 'unnamed');
}

/** `--report`: each output file, its size, what it imports (~: dynamically) and what it holds. */
function report(metafile) {
  const short = (p) => p.replace(/^dist\//, '').replace(/^node_modules\/([^/]+)\/.*/, '[$1]');
  for (const [out, o] of Object.entries(metafile.outputs)) {
    if (out.endsWith('.map')) continue;
    const imports = o.imports.filter((i) => !i.external);
    console.log(`${path.relative(OUT, out)} ${o.bytes} B`);
    console.log(
      `  imports: ${imports.map((i) => (i.kind === 'dynamic-import' ? '~' : '') + path.basename(i.path)).join(' ')}`,
    );
    console.log(`  holds: ${[...new Set(Object.keys(o.inputs).map(short))].join(' ')}`);
  }
}
