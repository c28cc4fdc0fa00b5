/**
 * A web seed served by Python's `http.server`, which ignores `Range` and answers every request
 * with the whole file (HTTP 200): a torrent still downloads from it alone, each reply read from
 * its file's start and the pieces still needed taken as they pass (in a multi-file torrent,
 * those wholly inside that file; a piece that spans files takes a request per file).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, spawnTracked, stopTracked, type Tracked } from '../../scripts/lib/real-peers.mjs';
import { runCli, tempDir } from '../helpers/cli.js';
import { randomBytesSeeded } from '../helpers/torrent.js';
import { programsGate } from './swarm.js';

const gate = programsGate(['libtorrent']);

describe.skipIf(gate.skip)("web seeds from Python's http.server (no Range)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: Tracked | null = null;
  let origin = '';
  const data = randomBytesSeeded(6 * 1024 * 1024 + 12_345, 'python-web-seed');

  beforeAll(async () => {
    gate.assertPresent();
    ({ dir, cleanup } = await tempDir('tdl-interop-webseed-'));
    const root = path.join(dir, 'www');
    await mkdir(path.join(root, 'album'), { recursive: true });
    await writeFile(path.join(root, 'one.bin'), data);
    // Files longer than a run of pieces (1 MiB), not on piece boundaries, and small ones: pieces
    // that span files, and requests that are not for a whole file, which a 200 would be.
    const half = 1536 * 1024;
    await mkdir(path.join(root, 'album', 'notes'));
    await writeFile(path.join(root, 'album', 'a.bin'), data.subarray(0, half + 1000));
    await writeFile(path.join(root, 'album', 'b.bin'), data.subarray(half, 2 * half + 777));
    for (let i = 1; i <= 5; i++) {
      await writeFile(path.join(root, 'album', 'notes', `n${i}.txt`), data.subarray(0, i * 9_999));
    }
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('http.server did not start')), 15_000);
      server = spawnTracked(
        'http.server',
        PYTHON,
        ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', root],
        {
          guard: true,
          onStdoutLine: (line) => {
            const m = /port (\d+)/.exec(line);
            if (m) {
              clearTimeout(timer);
              resolve(Number(m[1]));
            }
          },
        },
      );
    });
    origin = `http://127.0.0.1:${port}`;
  }, 30_000);

  afterAll(async () => {
    if (server) await stopTracked(server);
    await cleanup?.();
  });

  it('a single-file torrent downloads from it alone, byte for byte', async () => {
    const tp = path.join(dir, 'one.torrent');
    const made = await runCli([
      'create',
      path.join(dir, 'www', 'one.bin'),
      '-o',
      tp,
      '--web-seed',
      `${origin}/one.bin`,
      '--piece-length',
      '64K',
      '-q',
    ]);
    expect(made.code, made.stderr).toBe(0);
    const out = path.join(dir, 'one.out');
    const r = await runCli([
      'download',
      tp,
      '-o',
      out,
      '--no-dht',
      '--no-listen',
      '--timeout',
      '30',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  }, 60_000);

  it('a multi-file torrent downloads from it alone, byte for byte', async () => {
    const tp = path.join(dir, 'album.torrent');
    const made = await runCli([
      'create',
      path.join(dir, 'www', 'album'),
      '-o',
      tp,
      '--web-seed',
      `${origin}/`,
      '--piece-length',
      '64K',
      '-q',
    ]);
    expect(made.code, made.stderr).toBe(0);
    const out = path.join(dir, 'album.out');
    const r = await runCli([
      'download',
      tp,
      '-o',
      out,
      '--no-dht',
      '--no-listen',
      '--timeout',
      '30',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const names = ['a.bin', 'b.bin', ...[1, 2, 3, 4, 5].map((i) => `notes/n${i}.txt`)];
    for (const name of names) {
      const want = await readFile(path.join(dir, 'www', 'album', name));
      expect((await readFile(path.join(out, name))).equals(want), name).toBe(true);
    }
  }, 60_000);
});
