#!/usr/bin/env node
'use strict';
/**
 * The `tdl` executable (dist/bundle/main.js, copied there by scripts/bundle.mjs). It runs
 * tdl.js, the whole CLI as one classic script, compiled with V8's code cache made at build time
 * (tdl.js.cache): the functions a download runs are read back compiled instead of being parsed
 * and compiled at every start (docs/DESIGN.md, "Start-up and the shipped bundle").
 *
 * A cache V8 rejects (another Node or V8 version, other V8 flags, a tdl.js of another length), a
 * cache older than tdl.js (V8 would take an edited tdl.js of the same length) or a missing one
 * costs nothing but reading it: V8 compiles the source as usual.
 *
 * TDL_WRITE_CODE_CACHE=<file>: write the cache of this run to <file> at exit, with every function
 * compiled by then (the build's training run; not for users).
 */
const { isAscii } = require('node:buffer');
const { readFileSync, statSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const v8 = require('node:v8');
const vm = require('node:vm');

// V8 accepts a cache only under the flags it was made with: these flags (src/cli/main.ts sets
// them too, for the unbundled build) must be set before compiling, here and in the training run.
v8.setFlagsFromString('--liftoff-only');
v8.setFlagsFromString('--semi-space-growth-factor=1');

const file = path.join(__dirname, 'tdl.js');
const bytes = readFileSync(file);
// tdl.js is ASCII (esbuild escapes everything else), and for ASCII bytes latin1 gives the same
// string as UTF-8 without the decoder: about 6 ms less of every start.
const source = isAscii(bytes) ? bytes.latin1Slice(0, bytes.length) : bytes.toString('utf8');
/** tdl.js evaluated: `(function (require, __tdlUrl, __filename, __dirname) { … })`. */
let tdl;
if (process.sourceMapsEnabled) {
  // --enable-source-maps: Node maps stack traces only for code its module loader compiled, not
  // node:vm's, so compile it as a CommonJS module (no code cache then). `//` keeps the lines
  // where the map has them.
  const Module = require('node:module');
  const m = new Module(file, module);
  m.filename = file;
  m._compile(`module.exports = ${source.replace(/^#!/, '//')}`, file);
  tdl = m.exports;
} else {
  const cacheOut = process.env['TDL_WRITE_CODE_CACHE'];
  let cachedData;
  if (!cacheOut) {
    try {
      // V8 checks only the source's length: a cache older than tdl.js (an edited bundle) would
      // run the old functions' code. npm's tarballs give both files one date, which passes.
      if (statSync(`${file}.cache`).mtimeMs >= statSync(file).mtimeMs) {
        cachedData = readFileSync(`${file}.cache`);
      }
    } catch {
      // no cache: compile from source
    }
  }
  const script = new vm.Script(source, { filename: file, cachedData });
  if (cacheOut) {
    process.once('exit', () => writeFileSync(cacheOut, script.createCachedData()));
  }
  tdl = script.runInThisContext();
}
// Node's require from this folder (the built-ins, debug's optional supports-color, undici.cjs)
// and the URL that stands for import.meta.url.
tdl(require, pathToFileURL(file).href, file, __dirname);
