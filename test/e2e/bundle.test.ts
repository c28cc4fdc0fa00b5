/**
 * The shipped bundle (dist/bundle/, made by scripts/bundle.mjs after tsc) keeps what the
 * separate modules of dist/ did: it needs nothing outside itself, prints the package's version,
 * loads undici with its named exports (a .torrent URL), logs with DEBUG set, and runs the
 * hashing worker of `tdl create` (started from source text built with Function#toString). Its
 * script comes with a code cache that this Node accepts.
 *
 * Runs `node dist/bundle/main.js`: build first (`npm run build`; `npm test` does it).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { builtinModules } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, MAIN } from '../helpers/tdl-process.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const BUNDLE = path.dirname(MAIN);
/** Required inside a try by a bundled package, which does without it (debug's colours). */
const OPTIONAL = new Set(['supports-color']);

beforeAll(() => assertBuilt());

function tdl(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { env: { ...process.env, DEBUG: '', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('the shipped bundle', () => {
  it('imports nothing but its own files and Node built-ins', async () => {
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const files = (await readdir(BUNDLE)).filter((f) => f.endsWith('.js') || f.endsWith('.cjs'));
    expect(files).toEqual(expect.arrayContaining(['main.js', 'tdl.js', 'undici.cjs']));
    const outside: string[] = [];
    for (const f of files) {
      const text = await readFile(path.join(BUNDLE, f), 'utf8');
      // Static imports, dynamic imports and every require().
      const specs = [
        ...text.matchAll(/^(?:import|export)\s[^;]*?from\s*["']([^"']+)["']/gm),
        ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
        ...text.matchAll(/\b(?:__)?require\(\s*["']([^"']+)["']\s*\)/g),
      ].map((m) => m[1]!);
      for (const s of specs) {
        if (s.startsWith('./') || s.startsWith('../') || s.startsWith('node:')) continue;
        if (builtins.has(s) || OPTIONAL.has(s)) continue;
        outside.push(`${f}: ${s}`);
      }
    }
    expect(outside).toEqual([]);
  });

  it("ships tdl.js with a code cache that this Node's V8 accepts, in ASCII only", async () => {
    // As main.js compiles it: under the same V8 flags, set first (read from main.js itself).
    const entry = await readFile(path.join(BUNDLE, 'main.js'), 'utf8');
    const flags = [...entry.matchAll(/setFlagsFromString\('([^']+)'\)/g)].map((m) => m[1]!);
    expect(flags).toContain('--liftoff-only');
    const check = [
      ...flags.map((f) => `require('node:v8').setFlagsFromString(${JSON.stringify(f)});`),
      "const fs = require('node:fs');",
      `const file = ${JSON.stringify(path.join(BUNDLE, 'tdl.js'))};`,
      "const s = new (require('node:vm').Script)(fs.readFileSync(file, 'utf8'),",
      "  { filename: file, cachedData: fs.readFileSync(file + '.cache') });",
      'console.log(s.cachedDataRejected);',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['-e', check], (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    expect(out.trim()).toBe('false');
    const bytes = await readFile(path.join(BUNDLE, 'tdl.js'));
    expect(bytes.findIndex((b) => b > 0x7f)).toBe(-1);
  });

  it('--version prints the version of package.json', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
    const r = await tdl(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('fetches a .torrent URL (undici, by its named exports) and logs with DEBUG set', async () => {
    const t = makeTorrent({
      name: 'data.bin',
      pieceLength: 16384,
      files: { data: randomBytesSeeded(40_000, 'bundle-url') },
      announce: 'http://127.0.0.1:1/announce',
    });
    const server = createServer((_req, res) => res.end(t.torrent));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fx.onClose(() => new Promise((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/data.torrent`;
    const r = await tdl(['info', url, '--json'], { DEBUG: 'tdl:*' });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).infoHash).toBe(t.infoHash.toString('hex'));
    expect(r.stderr).toMatch(/tdl:torrent/);
  }, 60_000);

  it('a download loads only the built-ins its sources need: no zlib, dns or perf_hooks without UDP trackers or the DHT', async () => {
    // Each built-in is milliseconds of every start (docs/DESIGN.md, "Start-up and the shipped
    // bundle"): an HTTP tracker and --no-dht need none of these. (node:dgram comes with
    // node:child_process, which `listen` loads through node:cluster.)
    let announced = 0;
    const tracker = createServer((_req, res) => {
      announced++;
      res.end('d8:intervali1800e5:peers0:e');
    });
    await new Promise<void>((resolve) => tracker.listen(0, '127.0.0.1', resolve));
    fx.onClose(() => new Promise((resolve) => tracker.close(() => resolve())));
    const port = (tracker.address() as AddressInfo).port;
    const t = makeTorrent({
      name: 'data.bin',
      pieceLength: 16384,
      files: { data: randomBytesSeeded(40_000, 'bundle-builtins') },
      announce: `http://127.0.0.1:${port}/announce`,
    });
    const torrent = path.join(fx.dir, 'builtins.torrent');
    await writeFile(torrent, t.torrent);
    const list = path.join(fx.dir, 'modules.txt');
    const preload = path.join(fx.dir, 'record-modules.cjs');
    await writeFile(
      preload,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')));\n`,
    );
    const args = [
      ...['--require', preload, MAIN, 'download', torrent, '-o', path.join(fx.dir, 'out')],
      ...['--no-dht', '--timeout', '1', '-q'],
    ];
    const code = await new Promise<number>((resolve) => {
      execFile(
        process.execPath,
        args,
        { env: { ...process.env, DEBUG: '' }, timeout: 60_000 },
        (err) => resolve(err ? (typeof err.code === 'number' ? err.code : -1) : 0),
      );
    });
    expect(code).toBe(4); // no peer within --timeout
    expect(announced).toBeGreaterThan(0);
    const loaded = new Set(
      (await readFile(list, 'utf8')).split('\n').map((l) => l.replace(/^NativeModule /, '')),
    );
    expect(loaded.has('http')).toBe(true);
    expect(
      ['zlib', 'dns/promises', 'perf_hooks', 'worker_threads', 'https'].filter((m) =>
        loaded.has(m),
      ),
    ).toEqual([]);
  }, 60_000);

  it('create and verify hash with their worker threads (over their 64 MiB thresholds)', async () => {
    // Sparse: 80 MiB of zeros, above the 64 MiB from which create starts workers and verify
    // its helper thread.
    const MiB = 1024 * 1024;
    const file = path.join(fx.dir, 'zeros.bin');
    await writeFile(file, '');
    await truncate(file, 80 * MiB);
    const out = path.join(fx.dir, 'zeros.torrent');
    const r = await tdl(['create', file, '-o', out, '--piece-length', '1M'], {
      DEBUG: 'tdl:create',
    });
    expect(r.code, r.stderr).toBe(0);
    // Every core hashes (at most 8); on one core the main thread alone.
    const cores = Math.min(os.availableParallelism(), 8);
    expect(r.stderr).toContain(`jobs on ${cores} thread`);
    const meta = parseTorrent(await readFile(out));
    const zero = createHash('sha1').update(Buffer.alloc(MiB)).digest();
    expect(meta.pieceCount).toBe(80);
    for (let i = 0; i < 80; i++) {
      expect(Buffer.from(meta.pieceHashes.subarray(i * 20, i * 20 + 20)).equals(zero)).toBe(true);
    }
    const verify = () => tdl(['verify', out, '-o', fx.dir], { DEBUG: 'tdl:hash' });
    const whole = await verify();
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stderr).toContain(`on ${Math.min(cores, 2)} thread`);
    // A byte in piece 1 (the main thread's first read of four pieces) and in piece 5 (the
    // helper's first).
    const h = await open(file, 'r+');
    await h.write(Buffer.from([1]), 0, 1, 1 * MiB + 7);
    await h.write(Buffer.from([1]), 0, 1, 5 * MiB + 7);
    await h.close();
    const bad = await verify();
    expect(bad.code, bad.stderr).toBe(5);
    expect(bad.stdout).toMatch(/valid: +78\.0 MiB of 80\.0 MiB \(97\.5%\), 78 of 80 pieces/);
    expect(bad.stdout).toMatch(/corrupt: +2 pieces/);
  }, 60_000);
});
