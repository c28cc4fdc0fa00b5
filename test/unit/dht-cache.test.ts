import { spawnSync } from 'node:child_process';
import { access, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  decodeCache,
  defaultCacheFile,
  encodeCache,
  loadCache,
  MAX_CACHE_BYTES,
  saveCache,
} from '../../src/dht/cache.js';
import { Dht, SAVE_EVERY_MS } from '../../src/dht/dht.js';
import { DhtError } from '../../src/errors.js';
import { encode } from '../../src/metainfo/bencode.js';
import { account } from '../helpers/passwd-home.js';

// The passwd entry's home, as each test sets it (test/helpers/passwd-home.ts).
vi.mock('node:os', async (original) =>
  (await import('../helpers/passwd-home.js')).osWithAccount(original),
);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tdl-dht-cache-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const nodes = [
  { id: Buffer.alloc(20, 1), host: '10.0.0.1', port: 6881 },
  { id: Buffer.alloc(20, 2), host: '10.0.0.2', port: 6882 },
];

describe('DHT cache file', () => {
  it('default location follows XDG_CACHE_HOME, else ~/.cache', () => {
    expect(defaultCacheFile({ XDG_CACHE_HOME: '/x/cache' })).toBe('/x/cache/tdl/dht.dat');
    expect(defaultCacheFile({ XDG_CACHE_HOME: 'relative' })).toMatch(/\.cache\/tdl\/dht\.dat$/);
    expect(defaultCacheFile({})).toMatch(/\.cache\/tdl\/dht\.dat$/);
    expect(defaultCacheFile({ HOME: '/h' })).toBe('/h/.cache/tdl/dht.dat');
    expect(defaultCacheFile({ XDG_CACHE_HOME: 'relative', HOME: '/h' })).toBe(
      '/h/.cache/tdl/dht.dat',
    );
    // A relative HOME is no home: nothing is made in the current folder. The passwd entry's
    // home is used instead, when there is one.
    account.home = '/passwd-home';
    try {
      expect(defaultCacheFile({ HOME: 'rel' })).toBe('/passwd-home/.cache/tdl/dht.dat');
      expect(defaultCacheFile({})).toBe('/passwd-home/.cache/tdl/dht.dat');
      account.home = null;
      expect(defaultCacheFile({ HOME: 'rel' })).toBeNull();
      expect(defaultCacheFile({})).toBeNull();
    } finally {
      account.home = undefined;
    }
  });

  it('with no home folder, the DHT runs without a cache and says so', async () => {
    const saved = { HOME: process.env['HOME'], XDG: process.env['XDG_CACHE_HOME'] };
    process.env['HOME'] = 'relative';
    delete process.env['XDG_CACHE_HOME'];
    account.home = null;
    let dht: Dht;
    try {
      dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [] });
    } finally {
      account.home = undefined;
      process.env['HOME'] = saved.HOME;
      if (saved.XDG !== undefined) process.env['XDG_CACHE_HOME'] = saved.XDG;
    }
    const warnings: string[] = [];
    dht.on('warning', (w) => warnings.push(w));
    try {
      await dht.start();
    } finally {
      await dht.stop();
    }
    expect(warnings).toEqual([
      'the DHT keeps no cache: no home folder is known (set XDG_CACHE_HOME)',
    ]);
  });

  it('round-trips atomically and leaves no temporary file', async () => {
    const file = join(dir, 'sub', 'dht.dat');
    await saveCache(file, { id: Buffer.alloc(20, 9), nodes });
    expect(await loadCache(file)).toEqual({ id: Buffer.alloc(20, 9), nodes });
    expect(await readdir(join(dir, 'sub'))).toEqual(['dht.dat']);
    expect(await loadCache(join(dir, 'missing.dat'))).toBeNull();
  });

  it('refuses corrupt or hostile files with a DhtError', async () => {
    const bad = [
      Buffer.from('garbage'),
      encode({ id: Buffer.alloc(19), nodes: Buffer.alloc(0) }),
      encode({ id: Buffer.alloc(20), nodes: Buffer.alloc(27) }),
      encode([1, 2]),
      Buffer.concat([encodeCache({ id: Buffer.alloc(20), nodes }), Buffer.from('x')]),
      Buffer.from('d2:id20:' + 'a'.repeat(20) + '5:nodesd'.repeat(100)),
    ];
    for (const b of bad) expect(() => decodeCache(b)).toThrow(DhtError);
    const big = join(dir, 'big.dat');
    await writeFile(big, Buffer.alloc(MAX_CACHE_BYTES + 1));
    await expect(loadCache(big)).rejects.toThrow(DhtError);
    await expect(loadCache(dir)).rejects.toThrow(DhtError);
    // Port 0 entries are dropped, not fatal.
    const p0 = encode({
      id: Buffer.alloc(20),
      nodes: Buffer.concat([Buffer.alloc(20, 1), Buffer.from([10, 0, 0, 1, 0, 0])]),
    });
    expect(decodeCache(p0).nodes).toEqual([]);
  });

  it('a FIFO in the place of the cache is refused, not waited on', async () => {
    const file = join(dir, 'fifo.dat');
    spawnSync('mkfifo', [file]);
    await expect(loadCache(file)).rejects.toThrow(/not a regular file/);
  });

  it('the service warns about a corrupt cache and carries on', async () => {
    const file = join(dir, 'corrupt.dat');
    await writeFile(file, 'not a cache');
    const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: file });
    const warnings: string[] = [];
    dht.on('warning', (w) => warnings.push(w));
    try {
      await dht.start();
      expect(warnings.join('\n')).toMatch(/ignoring the DHT cache/);
      expect(dht.port).toBeGreaterThan(0);
    } finally {
      await dht.stop();
    }
  });

  it('a cache that cannot be written is a warning once, not at every save', async () => {
    const file = join(dir, 'unwritable.dat');
    await mkdir(file); // a folder in its place: every save fails the same way
    const other = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: null });
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: file });
    const warnings: string[] = [];
    dht.on('warning', (w) => warnings.push(w));
    try {
      await other.start();
      await dht.start();
      // A node to save.
      dht.addContacts([{ host: '127.0.0.1', port: other.port }]);
      await expect.poll(() => dht.nodeCount()).toBe(1);
      await vi.advanceTimersByTimeAsync(3 * SAVE_EVERY_MS);
      await dht.stop(); // saves once more, after the periodic saves
    } finally {
      vi.useRealTimers();
      await dht.stop();
      await other.stop();
    }
    const failures = warnings.filter((w) => w.includes('cannot write cache'));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain(file);
  });

  it('a cache whose folder cannot be made is said once, at start', async () => {
    const blocker = join(dir, 'not-a-folder');
    await writeFile(blocker, 'in the way');
    const file = join(blocker, 'dht.dat');
    const dht = new Dht({ port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: file });
    const warnings: string[] = [];
    dht.on('warning', (w) => warnings.push(w));
    try {
      await dht.start();
    } finally {
      await dht.stop();
    }
    const cannot = warnings.filter((w) => w.startsWith('cannot write the DHT cache'));
    expect(cannot).toEqual([
      `cannot write the DHT cache ${file}: file already exists (each run starts without it)`,
    ]);
  });

  it('keeps its node id across runs, but two nodes running at once never share one', async () => {
    const file = join(dir, 'shared.dat');
    const kept = Buffer.alloc(20, 0x5a);
    await saveCache(file, { id: kept, nodes });
    const opts = { port: 0, bind: '127.0.0.1', bootstrap: [], cacheFile: file };
    const a = new Dht(opts);
    const b = new Dht(opts);
    await a.start();
    await b.start();
    try {
      // The first takes the cache's id; the second, beside it, one of its own.
      expect(a.nodeId.equals(kept)).toBe(true);
      expect(b.nodeId.equals(kept)).toBe(false);
      // The second writes nothing, though it knows a node (it would save it otherwise): the
      // cache keeps the first one's id.
      b.addContacts([{ host: '127.0.0.1', port: a.port }]);
      await expect.poll(() => b.nodeCount()).toBe(1);
      await b.stop();
      expect((await loadCache(file))!.id.equals(kept)).toBe(true);
    } finally {
      await a.stop();
      await b.stop();
    }
    // With the first gone, the next run takes the id again (also after a crash: a lock whose
    // process is gone is taken over).
    await writeFile(`${file}.lock`, '999999999\n');
    const c = new Dht(opts);
    await c.start();
    await c.stop();
    expect(c.nodeId.equals(kept)).toBe(true);
    await expect(access(`${file}.lock`)).rejects.toThrow();
  });
});
