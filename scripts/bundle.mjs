#!/usr/bin/env node
/**
 * Bundles the type-checked output of `tsc` (dist/) into the shipped CLI, dist/bundle/: a start
 * reads one script and V8's code cache for it instead of ~90 modules (see docs/DESIGN.md,
 * "Start-up and the shipped bundle"). Run by `npm run build` after tsc.
 *
 * - dist/bundle/tdl.js: the whole CLI as one classic script, `(function (require, __tdlUrl,
 *   __filename, __dirname) { … })`. Modules reached by a dynamic import() (the commands, magnet,
 *   debug) are still evaluated only when reached (esbuild's lazy module wrappers), so `tdl info`
 *   never builds the swarm's classes.
 * - dist/bundle/main.js (the `bin`, scripts/lib/bundle-entry.cjs): compiles tdl.js with
 *   tdl.js.cache and runs it. dist/bundle/package.json makes main.js CommonJS.
 * - dist/bundle/tdl.js.cache: V8's code cache, written by a training run at the end of the
 *   build (a download of a small torrent from a `tdl seed` through a loopback tracker), so it
 *   holds every function such a run compiles. Without it (the training failed: a warning) tdl
 *   works as before, compiling from source.
 * - dist/bundle/undici.cjs: undici (1 MB), required only by a `.torrent` URL or a web seed.
 * - The dependencies are bundled too (the package needs nothing from node_modules at run time).
 *   A classic script has no import(): the sources' dynamic imports of Node built-ins and undici
 *   become require() calls, and log.js's top-level await of debug a require() (see scriptForm).
 * - dist/version.js reads package.json at start; here it becomes the version as a literal.
 * - The source map beside tdl.js points back to src/*.ts (through tsc's maps); Node uses it
 *   with --enable-source-maps.
 * - THIRD-PARTY-NOTICES.txt carries the licence of every bundled package.
 *
 * `node scripts/bundle.mjs --report` also prints which modules went into tdl.js.
 */
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const OUT = path.join(DIST, 'bundle');
const SCRIPT = path.join(OUT, 'tdl.js');
const CACHE = `${SCRIPT}.cache`;
const MAIN = path.join(OUT, 'main.js');
/** Longest the training run may take before the build goes on without a cache. */
const TRAIN_TIMEOUT_MS = 60_000;
/** The training torrent's payload: a few pieces, enough to run the whole piece path. */
const TRAIN_BYTES = 4 * 1024 * 1024;

const require = createRequire(import.meta.url);
/** commander's Command class (its one use of node:child_process is made lazy). */
const COMMANDER_COMMAND = path.join(
  path.dirname(require.resolve('commander')),
  'lib',
  'command.js',
);
const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));

/** The wrapper around tdl.js: what scripts/lib/bundle-entry.cjs passes in. */
const WRAP_START = "(function (require, __tdlUrl, __filename, __dirname) {\n'use strict';";
const WRAP_END = '})';

/**
 * The sources (tsc's dist/*.js) as parts of one classic script:
 * - dist/version.js, which reads package.json at start, becomes a constant;
 * - dist/log.js's `(await import('debug')).default` (top-level await) becomes `require('debug')`
 *   (bundled, evaluated only when DEBUG is set, as before);
 * - `import('node:…')` becomes a require() of the built-in, and `import('undici')` a require()
 *   of dist/bundle/undici.cjs (left external): a script compiled by node:vm cannot import().
 */
const scriptForm = {
  name: 'script-form',
  setup(b) {
    b.onResolve({ filter: /^\.\/undici\.cjs$/ }, () => ({ path: './undici.cjs', external: true }));
    b.onLoad({ filter: /\.js$/ }, async (args) => {
      if (args.path === COMMANDER_COMMAND) {
        // commander loads node:child_process at start, for executable subcommands (tdl has
        // none): a millisecond of every run. It is loaded when first used instead.
        const text = replaceOnce(
          await readFile(args.path, 'utf8'),
          "const childProcess = require('node:child_process');",
          "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };",
          args.path,
        );
        return { contents: text, loader: 'js', resolveDir: path.dirname(args.path) };
      }
      if (!args.path.startsWith(DIST + path.sep)) return undefined;
      let text = await readFile(args.path, 'utf8');
      if (args.path === path.join(DIST, 'version.js')) {
        text = replaceOnce(text, "import { readFileSync } from 'node:fs';\n", '', args.path);
        text = replaceOnce(
          text,
          "JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version",
          JSON.stringify(pkg.version),
          args.path,
        );
      }
      if (args.path === path.join(DIST, 'log.js')) {
        text = replaceOnce(text, "(await import('debug')).default", "require('debug')", args.path);
      }
      text = text
        .replace(
          /\bimport\((['"])(node:[\w/]+)\1\)/g,
          'Promise.resolve().then(() => require($1$2$1))',
        )
        .replace(
          /\bimport\((['"])undici\1\)/g,
          "Promise.resolve().then(() => require('./undici.cjs'))",
        );
      return { contents: text, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

function replaceOnce(text, from, to, file) {
  if (!text.includes(from)) throw new Error(`${file}: expected ${from} (scripts/bundle.mjs)`);
  return text.replace(from, to);
}

/**
 * undici 7 (the line that runs on Node 20) throws an AssertionError from a socket's 'end' handler,
 * which nothing can catch, when a server closes the connection while a response body is paused
 * by backpressure (nodejs/undici#5360; fixed only in undici 8, which needs Node 22). A web seed
 * whose reads wait for --max-download-rate, on a server that closes after each response (Python's
 * http.server, Connection: close), ended tdl with exit 1. The bundled copy finishes such a parser
 * the way undici 8 does: resumed, and fed what the socket still holds, before EOF is signalled.
 * The build fails if the code to change is not found (another undici), rather than ship without.
 */
const PAUSED_FINISH_FROM = `  finish () {
    assert(currentParser === null)
    assert(this.ptr != null)
    assert(!this.paused)
`;
const PAUSED_FINISH_TO = `  finish () {
    assert(currentParser === null)
    assert(this.ptr != null)
    // Patched by tdl's scripts/bundle.mjs (nodejs/undici#5360): the peer closed while the body
    // was paused by backpressure. Resume and parse what the socket holds (onData keeps
    // buffering what it is given), then finish: EOF completes a body of unknown length.
    if (this.paused) {
      let data
      do {
        this.llhttp.llhttp_resume(this.ptr)
        this.paused = false
        data = this.socket.read() || EMPTY_BUF
        this.execute(data)
      } while (this.paused && data.length > 0)
      if (this.paused) {
        this.llhttp.llhttp_resume(this.ptr)
        this.paused = false
      }
    }
`;
const undiciPausedFinish = {
  name: 'undici-paused-finish',
  setup(b) {
    b.onLoad({ filter: /[\\/]undici[\\/]lib[\\/]dispatcher[\\/]client-h1\.js$/ }, async (args) => ({
      contents: replaceOnce(
        await readFile(args.path, 'utf8'),
        PAUSED_FINISH_FROM,
        PAUSED_FINISH_TO,
        args.path,
      ),
      loader: 'js',
    }));
  },
};

await rm(OUT, { recursive: true, force: true });
await mkdir(OUT, { recursive: true });
const undici = await build({
  plugins: [undiciPausedFinish],
  entryPoints: [require.resolve('undici')],
  outfile: path.join(OUT, 'undici.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
const result = await build({
  entryPoints: [path.join(DIST, 'cli', 'main.js')],
  outfile: SCRIPT,
  bundle: true,
  format: 'iife',
  platform: 'node',
  target: 'node20',
  // The `import` condition first: commander's ESM wrapper is thin.
  mainFields: ['module', 'main'],
  sourcemap: 'linked',
  sourcesContent: false,
  // Not minified: stack traces and the hash worker's source (built from Function#toString,
  // see src/metainfo/hash-worker.ts) stay readable; with the code cache, the source is not
  // parsed at start anyway.
  minify: false,
  // No keepNames: it would insert __name() calls into the functions the hash worker runs alone.
  keepNames: false,
  legalComments: 'none',
  define: { 'import.meta.url': '__tdlUrl' },
  banner: { js: WRAP_START },
  footer: { js: WRAP_END },
  plugins: [scriptForm],
  metafile: true,
  logLevel: 'warning',
});
// Only ASCII: Node decodes a file with any other byte much slower (a two-byte string, about
// 10 ms for tdl.js here). esbuild escapes them in strings and identifiers already; what is left is
// in comments, where \u{…} reads as well.
const scriptText = (await readFile(SCRIPT, 'utf8')).replace(
  /[^\x00-\x7f]/gu,
  (c) => `\\u{${c.codePointAt(0).toString(16)}}`,
);
await writeFile(SCRIPT, scriptText);
const leftover = /\bimport\(\s*["'][^"']+["']\s*\)/.exec(scriptText);
if (leftover) throw new Error(`tdl.js still has a dynamic import: ${leftover[0]}`);
await writeFile(path.join(OUT, 'package.json'), '{ "type": "commonjs" }\n');
await copyFile(path.join(ROOT, 'scripts', 'lib', 'bundle-entry.cjs'), MAIN);
try {
  await train();
  const size = (await stat(CACHE)).size;
  if (process.argv.includes('--report')) console.log(`tdl.js.cache ${size} B`);
} catch (e) {
  await rm(CACHE, { force: true });
  console.warn(`warning: no code cache for dist/bundle/tdl.js (tdl starts slower): ${e.message}`);
}

await writeFile(
  path.join(OUT, 'THIRD-PARTY-NOTICES.txt'),
  await notices({ inputs: { ...result.metafile.inputs, ...undici.metafile.inputs } }),
);
if (process.argv.includes('--report')) {
  report({ outputs: { ...undici.metafile.outputs, ...result.metafile.outputs } });
}

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

/** `--report`: each output file, its size and what it holds. */
function report(metafile) {
  const short = (p) => p.replace(/^dist\//, '').replace(/^node_modules\/([^/]+)\/.*/, '[$1]');
  for (const [out, o] of Object.entries(metafile.outputs)) {
    if (out.endsWith('.map')) continue;
    console.log(`${path.relative(OUT, out)} ${o.bytes} B`);
    console.log(`  holds: ${[...new Set(Object.keys(o.inputs).map(short))].join(' ')}`);
  }
}

/**
 * The training run: `tdl download` of a small torrent (from a `tdl create`) from a `tdl seed`,
 * found through a tracker served here on 127.0.0.1, with the DHT started against a loopback
 * address that does not answer, all in a temporary folder. The downloader writes tdl.js.cache at
 * its exit (TDL_WRITE_CODE_CACHE): V8's compiled code of everything it ran, start-up, tracker,
 * peer wire, pieces, storage, the end. Throws if anything fails.
 */
async function train() {
  const work = await mkdtemp(path.join(tmpdir(), 'tdl-train-'));
  /** @type {import('node:child_process').ChildProcess[]} */
  const children = [];
  let tracker = null;
  const timer = setTimeout(() => {
    for (const c of children) c.kill('SIGKILL');
  }, TRAIN_TIMEOUT_MS);
  try {
    const data = path.join(work, 'data');
    await mkdir(data);
    const payload = Buffer.alloc(TRAIN_BYTES);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);
    await writeFile(path.join(data, 'train.bin'), payload);
    let seederPort = 0;
    tracker = createServer((req, res) => {
      const peers = Buffer.from([127, 0, 0, 1, seederPort >> 8, seederPort & 0xff]);
      res.end(Buffer.concat([Buffer.from('d8:intervali1800e5:peers6:'), peers, Buffer.from('e')]));
    });
    await new Promise((resolve) => tracker.listen(0, '127.0.0.1', () => resolve(undefined)));
    const trackerUrl = `http://127.0.0.1:${tracker.address().port}/announce`;
    const torrent = path.join(work, 'train.torrent');
    const env = { ...process.env, DEBUG: '', XDG_CACHE_HOME: work };
    delete env['TDL_WRITE_CODE_CACHE'];
    // A V8 flag in NODE_OPTIONS (--max-old-space-size…) would be part of the cache's flag hash,
    // and a run without it would reject the cache.
    delete env['NODE_OPTIONS'];
    const tdl = (args, extraEnv = {}) => {
      // Only the seeder's stdout is read (its `started` event); nothing else may fill a pipe.
      const child = spawn(process.execPath, [MAIN, ...args], {
        env: { ...env, ...extraEnv },
        stdio: ['ignore', args[0] === 'seed' ? 'pipe' : 'ignore', 'pipe'],
      });
      children.push(child);
      let stderr = '';
      child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
      const done = new Promise((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (code, signal) =>
          code === 0 || signal === 'SIGTERM'
            ? resolve(undefined)
            : reject(new Error(`tdl ${args[0]} exited with ${code ?? signal}: ${stderr.trim()}`)),
        );
      });
      return { child, done };
    };
    const dht = ['--dht-bootstrap', '127.0.0.1:9'];
    await tdl([
      'create',
      path.join(data, 'train.bin'),
      '-o',
      torrent,
      '--tracker',
      trackerUrl,
      '--quiet',
      '--piece-length',
      '256K',
    ]).done;
    // Loopback only; a seeder orphaned by a killed build still leaves within a minute.
    const local = ['--port', '0', '--bind', '127.0.0.1'];
    const seed = tdl([
      'seed',
      torrent,
      '-o',
      data,
      ...local,
      '--seed-time',
      '1',
      '--no-dht',
      '--json',
    ]);
    seederPort = await new Promise((resolve, reject) => {
      let buf = '';
      seed.child.stdout.on('data', (d) => {
        buf += d;
        const m = /"event":"started"[^\n]*"port":(\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      seed.done.then(() => reject(new Error('the seeder ended early')), reject);
    });
    const out = path.join(work, 'out');
    await tdl(['download', torrent, '-o', out, '--quiet', ...local, ...dht], {
      TDL_WRITE_CODE_CACHE: CACHE,
    }).done;
    seed.child.kill('SIGTERM');
    await seed.done;
  } finally {
    clearTimeout(timer);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    tracker?.close();
    await rm(work, { recursive: true, force: true });
  }
}
