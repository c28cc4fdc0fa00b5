/**
 * Growth of `tdl info` with the number of files: a 100,000-file torrent (MAX_FILES) is parsed
 * and listed in linear time. The bound is generous (busy 2-core machines); the figures that
 * matter are in `npm run bench` and docs/BENCHMARKS.md.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { encode } from '../../src/metainfo/bencode.js';
import { MAX_FILES, parseTorrent } from '../../src/metainfo/torrent.js';
import { tempDir } from '../helpers/cli.js';

const GENEROUS_MS = 30_000;
let torrent: Buffer;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('tdl-scale-'));
  const files = [];
  let total = 0;
  for (let i = 0; i < MAX_FILES; i++) {
    const length = 1000 + (i % 5000);
    files.push({ length, path: [`dir${i % 300}`, `sub${i % 7}`, `file-${i}.dat`] });
    total += length;
  }
  const pl = 4 * 1024 * 1024;
  torrent = encode({
    info: {
      name: 'big',
      'piece length': pl,
      pieces: Buffer.alloc(20 * Math.ceil(total / pl)),
      files,
    },
  });
});
afterAll(async () => {
  await cleanup?.();
});

describe('a 100,000-file torrent', () => {
  it('parses in linear time, collisions checked', () => {
    const t0 = performance.now();
    const m = parseTorrent(torrent);
    expect(performance.now() - t0).toBeLessThan(GENEROUS_MS);
    expect(m.files).toHaveLength(MAX_FILES);
    expect(m.files[MAX_FILES - 1]!.path).toEqual(['dir99', 'sub4', `file-${MAX_FILES - 1}.dat`]);
  });

  it('tdl info lists it in batches, never as one string', async () => {
    const file = path.join(dir, 'big.torrent');
    await writeFile(file, torrent);
    const sizes: number[] = [];
    let lines = 0;
    const t0 = performance.now();
    const code = await run(['info', file], {
      stdout: {
        write: (s: string) => {
          sizes.push(s.length);
          for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) lines++;
        },
      },
      stderr: { write: () => {} },
    });
    expect(code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(GENEROUS_MS);
    expect(lines).toBeGreaterThan(MAX_FILES);
    expect(Math.max(...sizes)).toBeLessThan(65 * 1024);
  });
});

describe('a torrent listing 300,000 web seeds', () => {
  it('parses in linear time, duplicates dropped', () => {
    const urls: string[] = [];
    for (let i = 0; i < 300_000; i++) urls.push(`http://seed.example/${i}/`);
    urls.push('http://seed.example/7/');
    const t = encode({
      'url-list': urls,
      httpseeds: urls,
      info: { name: 'x', 'piece length': 16384, pieces: Buffer.alloc(20), length: 10 },
    });
    const t0 = performance.now();
    const m = parseTorrent(t);
    expect(performance.now() - t0).toBeLessThan(GENEROUS_MS);
    expect(m.urlList).toHaveLength(300_000);
    expect(m.httpSeeds).toHaveLength(300_000);
    expect(m.urlList[299_999]).toBe('http://seed.example/299999/');
  }, 120_000);
});
