/**
 * An output whose opening fails part-way (a disk out of space or inodes once the top folder is
 * made) leaves none of the folders it made: the next run would take the empty top folder for a
 * place to put the torrent in, one level down.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiskError } from '../../src/errors.js';
import { DiskStorage } from '../../src/storage/disk.js';
import { planOutput } from '../../src/storage/output.js';
import { tempDir } from '../helpers/cli.js';
import { handTorrent as torrent } from '../helpers/torrent.js';

/** `mkdir` of a folder named `full` fails as on a file system out of inodes. */
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const mkdirSync = ((p: string, ...rest: unknown[]) => {
    if (path.basename(String(p)) === 'full') {
      throw Object.assign(new Error(`ENOSPC: no space left on device, mkdir '${p}'`), {
        code: 'ENOSPC',
        syscall: 'mkdir',
        path: p,
      });
    }
    return (fs.mkdirSync as (...a: unknown[]) => unknown)(p, ...rest);
  }) as typeof fs.mkdirSync;
  return { ...fs, default: { ...fs, mkdirSync }, mkdirSync };
});

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-open-fail-'));
});
afterEach(async () => {
  await cleanup();
});

describe('DiskStorage.open failing part-way', () => {
  it('removes the folders it made, the top one included', async () => {
    const t = torrent('multi', 4096, [
      { path: ['a', 'one.bin'], length: 5000 },
      { path: ['a', 'full', 'two.bin'], length: 5000 },
    ]);
    const out = path.join(dir, 'x');
    const plan = await planOutput(t.meta, out);
    const err = await DiskStorage.open(plan, t.layout).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskError);
    expect((err as Error).message).toMatch(/cannot create folder .*full: no space left on device/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(dir)).toBe(true);
  });
});
