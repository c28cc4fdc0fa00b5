/**
 * A web seed served by Python's `http.server`, which ignores `Range` and answers every request
 * with the whole file (HTTP 200): a single-file torrent still downloads from it alone, each
 * reply read from the file's start and the pieces still needed taken as they pass. A multi-file
 * torrent cannot be served that way (its pieces span files): the message says why.
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
    // Each file longer than a run of pieces (1 MiB): no request can be for a whole file, which
    // a 200 would serve.
    const half = 1536 * 1024;
    await writeFile(path.join(root, 'album', 'a.bin'), data.subarray(0, half));
    await writeFile(path.join(root, 'album', 'b.bin'), data.subarray(half, 2 * half + 777));
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

  it('a multi-file torrent: exit 4, the message names the ignored Range', async () => {
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
    const r = await runCli([
      'download',
      tp,
      '-o',
      path.join(dir, 'album.out'),
      '--no-dht',
      '--no-listen',
      '--timeout',
      '3',
    ]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('server ignored the Range header (HTTP 200)');
  }, 60_000);
});
