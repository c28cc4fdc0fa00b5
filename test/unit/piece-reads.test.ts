import { closeSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskError } from '../../src/errors.js';
import { FS_PARALLEL } from '../../src/storage/fs-util.js';
import { readRuns, type ReadSource, type Run } from '../../src/storage/piece-reads.js';
import { tempDir } from '../helpers/cli.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

let cleanup: (() => Promise<void>) | null = null;
afterEach(async () => {
  await cleanup?.();
  cleanup = null;
});

/** Files 0..n-1 of `size` bytes each, read through a source that counts its readers. */
async function source(n: number, size: number, failAt = -1) {
  const t = await tempDir('tdl-reads-');
  cleanup = t.cleanup;
  const data = randomBytesSeeded(n * size, 'piece-reads');
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    paths.push(path.join(t.dir, `f${i}`));
    await writeFile(paths[i]!, data.subarray(i * size, (i + 1) * size));
  }
  const seen = { now: 0, most: 0, started: [] as number[] };
  const src: ReadSource = {
    parts: () => null,
    onDisk: () => true,
    isPadding: () => false,
    holds: () => true,
    copyOnly: () => false,
    currentPath: (i) => paths[i]!,
    unselectedPaths: () => null,
    async withFile(i, fn) {
      seen.started.push(i);
      seen.now++;
      seen.most = Math.max(seen.most, seen.now);
      const fd = openSync(paths[i]!, 'r');
      try {
        await new Promise((r) => setTimeout(r, 2));
        if (i === failAt) throw Object.assign(new Error('EIO'), { code: 'EIO' });
        return await fn(fd);
      } finally {
        closeSync(fd);
        seen.now--;
      }
    },
  };
  const runs: Run[] = paths.map((_, i) => ({
    fileIndex: i,
    fileOffset: 0,
    at: i * size,
    length: size,
  }));
  return { src, runs, data, seen };
}

describe('readRuns (a batch over many small files)', () => {
  it('fills every stretch, several files at once but never more than FS_PARALLEL', async () => {
    const { src, runs, data, seen } = await source(100, 1000);
    const buf = Buffer.alloc(data.length);
    await readRuns(src, runs, buf);
    expect(buf.equals(data)).toBe(true);
    expect(seen.most).toBeGreaterThan(1);
    expect(seen.most).toBeLessThanOrEqual(FS_PARALLEL);
  });

  it('a failed read is a DiskError naming its file, and no read starts after it', async () => {
    const { src, runs, data, seen } = await source(100, 1000, 20);
    const err = await readRuns(src, runs, Buffer.alloc(data.length)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskError);
    expect((err as Error).message).toContain(`${path.sep}f20`);
    // Those already under way end; none beyond them begins.
    expect(seen.started.length).toBeLessThanOrEqual(20 + FS_PARALLEL);
    expect(seen.now).toBe(0);
  });
});
