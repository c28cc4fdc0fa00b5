/**
 * Two tdl processes starting on the same output at the same moment, with no lock or with a
 * stale one (its process gone): exactly one takes `<output>.tdl-lock`. Runs the built lock module
 * (dist/) in separate processes, which start taking the lock at the same agreed instant. And
 * `tdl seed`, which holds no lock while it serves, on an output a running download holds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockOutput } from '../../src/storage/lock.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const LOCK_MODULE = fileURLToPath(new URL('../../dist/storage/lock.js', import.meta.url));

// Waits for the instant, takes the lock, holds it a moment, says whether it got it.
const CHILD = `
const { lockOutput } = await import(process.argv[1]);
const [root, at] = process.argv.slice(2);
while (Date.now() < Number(at)) {}
try {
  const release = await lockOutput(root);
  process.stdout.write('got');
  await new Promise((r) => setTimeout(r, 300));
  await release();
} catch {
  process.stdout.write('busy');
}`;

let dir: string;
let cleanup: () => Promise<void>;
const children = new Set<ChildProcess>();
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-lock-race-'));
});
afterEach(async () => {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  await cleanup();
});

function contender(root: string, at: number): Promise<string> {
  const c = spawn(process.execPath, [
    '--input-type=module',
    '-e',
    CHILD,
    LOCK_MODULE,
    root,
    String(at),
  ]);
  children.add(c);
  let out = '';
  c.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  return new Promise((resolve) =>
    c.on('close', () => {
      children.delete(c);
      resolve(out);
    }),
  );
}

describe('the output lock between processes', () => {
  it('of two processes racing for a free or a stale lock, exactly one takes it', async () => {
    expect(existsSync(LOCK_MODULE), `${LOCK_MODULE}: run npm run build`).toBe(true);
    for (let trial = 0; trial < 12; trial++) {
      const root = path.join(dir, `out${trial}`);
      // Three trials in four find a lock whose process is gone.
      if (trial % 4 !== 3) await writeFile(`${root}.tdl-lock`, '999999999\n');
      const at = Date.now() + 1000;
      const got = await Promise.all([contender(root, at), contender(root, at)]);
      expect(got.sort(), `trial ${trial}`).toEqual(['busy', 'got']);
      expect((await readdir(dir)).filter((n) => n.startsWith(`out${trial}.`))).toEqual([]);
    }
  }, 120_000);
});

describe('a seed on an output a download holds', () => {
  it('stops with exit 6, renaming and removing nothing, and finishes once the download is gone', async () => {
    const a = randomBytesSeeded(40_000, 'held-a');
    const b = randomBytesSeeded(70_000, 'held-b');
    const t = makeTorrent({
      name: 'held',
      pieceLength: 16 * 1024,
      files: [
        { path: ['a.bin'], data: a },
        { path: ['b.bin'], data: b },
      ],
    });
    const torrent = path.join(dir, 'held.torrent');
    await writeFile(torrent, t.torrent);
    const out = path.join(dir, 'held');
    // What a running download has there: a.bin complete under its working name (with the
    // first bytes of b.bin that its last piece shares), b.bin begun.
    await mkdir(out);
    await writeFile(path.join(out, 'a.bin.part'), a);
    await writeFile(path.join(out, 'b.bin.part'), b.subarray(0, 20_000));
    const seedArgs = ['seed', torrent, '-o', out, '--select', '1', '--no-dht', '--port', '0'];
    const release = await lockOutput(out);
    try {
      const r = await runCli([...seedArgs, '--seed-time', '0']);
      expect(r.code, r.stderr).toBe(6);
      expect(r.stderr).toContain(`${out} is in use by another tdl (pid ${process.pid})`);
      expect((await readdir(out)).sort()).toEqual(['a.bin.part', 'b.bin.part']);
    } finally {
      await release();
    }
    // The download gone, the seed gives the complete file its final name, as before.
    const r = await runCli([...seedArgs, '--seed-time', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['a.bin', 'b.bin.part']);
    expect(existsSync(`${out}.tdl-lock`)).toBe(false);
    // Final names everywhere: a seed then takes no lock at all (one held is no matter).
    const again = await lockOutput(out);
    try {
      const s = await runCli([...seedArgs, '--seed-time', '0']);
      expect(s.code, s.stderr).toBe(0);
    } finally {
      await again();
    }
  }, 60_000);
});

describe('a folder in the place of a running download', () => {
  it('is not made: `-o X/` while a download of `-o X` runs stops with exit 6', async () => {
    const data = randomBytesSeeded(40_000, 'folder-in-use');
    const t = makeTorrent({ name: 'one.bin', pieceLength: 16 * 1024, files: { data } });
    const torrent = path.join(dir, 'one.torrent');
    await writeFile(torrent, t.torrent);
    // The run of `-o X`, which will give its file the name X.
    const x = path.join(dir, 'x');
    const release = await lockOutput(x);
    try {
      for (const o of [`${x}/`, `${x}/deeper/`, path.join(x, 'deeper', 'one.bin')]) {
        const r = await runCli(['download', torrent, '-o', o, '--no-dht', '--port', '0']);
        expect(r.code, r.stderr).toBe(6);
        expect(r.stderr).toContain(
          `tdl: ${x} is the output of another tdl (pid ${process.pid}), which writes a file there`,
        );
        expect(existsSync(x)).toBe(false);
      }
    } finally {
      await release();
    }
    // That run gone, nothing stands in the way (no peer to be found there: exit 4).
    const r = await runCli(['download', torrent, '-o', `${x}/`, '--no-dht', '--timeout', '1']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).not.toContain('another tdl');
  }, 60_000);
});
