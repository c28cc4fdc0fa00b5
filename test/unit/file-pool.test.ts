/**
 * The bounded pool of open files: its size formula, the limit parser, LRU eviction, and that a
 * handle in use is never closed under its user.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FD_RESERVE,
  FilePool,
  MAX_POOL,
  MIN_POOL,
  poolCapacity,
} from '../../src/storage/file-pool.js';
import { parseFdLimit } from '../../src/fd-limit.js';
import { tempDir } from '../helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-pool-'));
});
afterEach(async () => {
  await cleanup();
});

describe('pool size', () => {
  it('takes a quarter of the limit, leaves room for sockets, and stays within its bounds', () => {
    expect(poolCapacity(1024, 64)).toBe(256);
    expect(poolCapacity(256, 64)).toBe(64);
    expect(poolCapacity(256, 150)).toBe(256 - 150 - FD_RESERVE);
    expect(poolCapacity(64, 64)).toBe(MIN_POOL);
    expect(poolCapacity(1_048_576, 64)).toBe(MAX_POOL);
  });

  it('reads the soft limit out of /proc/self/limits', () => {
    const text = [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             63432                63432                processes ',
      'Max open files            256                  1048576              files     ',
    ].join('\n');
    expect(parseFdLimit(text)).toBe(256);
    expect(parseFdLimit(text.replace(' 256 ', ' unlimited '))).toBe(1_048_576);
    expect(parseFdLimit('nothing here')).toBeNull();
  });
});

describe('FilePool', () => {
  async function files(n: number): Promise<string[]> {
    const ps: string[] = [];
    for (let i = 0; i < n; i++) {
      const p = path.join(dir, `f${i}`);
      await writeFile(p, `file ${i}`);
      ps.push(p);
    }
    return ps;
  }

  it('keeps at most its capacity open, closing the least recently used', async () => {
    const ps = await files(5);
    const pool = new FilePool<FileHandle>(2, (h) => h.close());
    const opened: FileHandle[] = [];
    const opener = (i: number) => async () => {
      const h = await open(ps[i]!, 'r');
      opened.push(h);
      return h;
    };
    const read = (i: number) =>
      pool.use(i, opener(i), async (h) => (await h.read(Buffer.alloc(6), 0, 6, 0)).bytesRead);
    await read(0);
    await read(1);
    await read(0); // 1 is now the least recently used
    await read(2);
    expect(pool.has(0)).toBe(true);
    expect(pool.has(1)).toBe(false);
    expect(pool.size).toBe(2);
    expect(pool.opens).toBe(3);
    for (let i = 0; i < 5; i++) await read(i);
    expect(pool.peak).toBe(2);
    await pool.close();
    expect(pool.size).toBe(0);
    // Every handle ever opened is closed.
    for (const h of opened) expect(h.fd).toBe(-1);
  });

  it('never closes a handle in use: the next opener waits for a release', async () => {
    const ps = await files(3);
    const pool = new FilePool<FileHandle>(1, (h) => h.close());
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const first = pool.use(
      0,
      () => open(ps[0]!, 'r'),
      async (h) => {
        entered();
        await held;
        // Still open although another file wanted the only slot meanwhile.
        return (await h.read(Buffer.alloc(6), 0, 6, 0)).bytesRead;
      },
    );
    await inside;
    let secondDone = false;
    const second = pool
      .use(
        1,
        () => open(ps[1]!, 'r'),
        async () => 1,
      )
      .then((v) => {
        secondDone = true;
        return v;
      });
    await new Promise((r) => setImmediate(r));
    expect(secondDone).toBe(false);
    release();
    expect(await first).toBe(6);
    expect(await second).toBe(1);
    expect(pool.peak).toBe(1);
    await pool.close();
  });

  it('closing while a read is under way closes that descriptor only once the read is done', async () => {
    const ps = await files(2);
    const pool = new FilePool<number>(4, async (fd) => closeSync(fd));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    let fd = -1;
    const reading = pool.use(
      0,
      async () => openSync(ps[0]!, 'r'),
      async (h) => {
        fd = h;
        entered();
        await held;
        return readSync(h, Buffer.alloc(6), 0, 6, 0);
      },
    );
    await inside;
    await pool.use(
      1,
      async () => openSync(ps[1]!, 'r'),
      async () => 0,
    );
    let closed = false;
    const closing = pool.close().then(() => (closed = true));
    await new Promise((r) => setImmediate(r));
    // The idle file is closed; the one being read waits for its reader.
    expect(closed).toBe(false);
    expect(() => fstatSync(fd)).not.toThrow();
    release();
    expect(await reading).toBe(6);
    await closing;
    expect(() => fstatSync(fd)).toThrow();
    await expect(
      pool.use(
        0,
        async () => openSync(ps[0]!, 'r'),
        async () => 0,
      ),
    ).rejects.toThrow(/closed/);
  });

  it('shares one open between concurrent users of a file, and does not cache a failed open', async () => {
    const ps = await files(1);
    const pool = new FilePool<FileHandle>(4, (h) => h.close());
    let opens = 0;
    const opener = async () => {
      opens++;
      return open(ps[0]!, 'r');
    };
    await Promise.all([1, 2, 3].map(() => pool.use(0, opener, async () => {})));
    expect(opens).toBe(1);
    await expect(
      pool.use(
        1,
        () => open(path.join(dir, 'missing'), 'r'),
        async () => {},
      ),
    ).rejects.toThrow(/ENOENT/);
    expect(pool.has(1)).toBe(false);
    await pool.close();
  });
});
